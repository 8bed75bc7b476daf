"""A downstream MCP server on the official SDK for the aggregator tests.

``python downstream_sdk.py [--port=N]`` binds 127.0.0.1 port 0 (or N), prints the port
once uvicorn has started, then serves Streamable HTTP at ``/mcp`` until killed (the
handshake era and 2026-07-28 on one endpoint).
Tokens are HS256 JWTs signed with ``MCPCONN_TEST_SECRET``; ``exp`` is checked.
``--handshake-only`` answers 2026-07-28 requests 400, like a server from before that era.
"""

from __future__ import annotations

import os
import socket
import sys
import warnings
from typing import Any

import anyio
import jwt
import mcp_types as types
import uvicorn
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import Context, MCPServer
from pydantic import BaseModel

warnings.simplefilter("ignore")  # the logging capability is deprecated in 2026-07-28
MODERN = "2026-07-28"


class JWTVerifier:
    def __init__(self, secret: str) -> None:
        self.secret = secret

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            claims = jwt.decode(token, self.secret, algorithms=["HS256"])
        except jwt.PyJWTError:
            return None
        return AccessToken(
            token=token, client_id="e2e", scopes=[], expires_at=claims["exp"], subject=claims["sub"]
        )


class Answer(BaseModel):
    answer: str


def build() -> Any:
    server: MCPServer[Any] = MCPServer(
        "e2e-downstream",
        token_verifier=JWTVerifier(os.environ["MCPCONN_TEST_SECRET"]),
        auth=AuthSettings(issuer_url="http://127.0.0.1/issuer", resource_server_url=None),
    )

    @server.tool()
    def echo(text: str) -> str:
        """Return the text."""
        return text

    @server.tool()
    async def work(steps: int, ctx: Context) -> str:
        """Log once at info and once at debug, then report progress ``steps`` times."""
        await ctx.info("working")
        await ctx.debug("details")
        for i in range(steps):
            await ctx.report_progress(i + 1, steps, f"step {i + 1}")
        return f"did {steps} steps"

    @server.tool()
    async def announce(ctx: Context) -> str:
        """Say the tool list changed (GET stream, or 2026 subscriptions)."""
        if ctx.protocol_version == MODERN:
            await ctx.notify_tools_changed()
        else:
            await ctx.session.send_tool_list_changed()
        return "announced"

    @server.tool()
    async def confirm(question: str, ctx: Context) -> Any:
        """Ask the client a question (elicitation; MRTR on 2026-07-28) and return the answer."""
        if ctx.protocol_version != MODERN:
            reply = await ctx.elicit(question, Answer)
            return f"{reply.action}:{reply.data.answer if reply.action == 'accept' else ''}"
        answers = ctx.input_responses or {}
        if "q" not in answers:
            ask = types.ElicitRequest(
                params=types.ElicitRequestFormParams(
                    message=question,
                    requested_schema={
                        "type": "object",
                        "properties": {"answer": {"type": "string"}},
                        "required": ["answer"],
                    },
                )
            )
            return types.InputRequiredResult(input_requests={"q": ask}, request_state="asked")
        reply = answers["q"]
        content = getattr(reply, "content", None) or {}
        return f"{getattr(reply, 'action', '?')}:{content.get('answer', '')}"

    @server.prompt()
    def greeting(who: str) -> str:
        """Greets someone."""
        return f"Hello, {who}!"

    @server.resource("acc://greeting")
    def greeting_resource() -> str:
        """A fixed greeting."""
        return "hello from the sdk"

    return server.streamable_http_app()


def handshake_only(app: Any) -> Any:
    """An ASGI wrapper: a 2026-07-28 request gets a plain 400, as an older server answers."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        headers = dict(scope.get("headers") or [])
        if scope["type"] == "http" and headers.get(b"mcp-protocol-version") == MODERN.encode():
            await send({"type": "http.response.start", "status": 400, "headers": []})
            await send({"type": "http.response.body", "body": b"unsupported protocol version"})
            return
        await app(scope, receive, send)

    return wrapped


async def main(port: int, old: bool) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    app = handshake_only(build()) if old else build()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve, [sock])
        while not server.started:  # noqa: ASYNC110 (uvicorn offers no started event)
            await anyio.sleep(0.01)
        print(sock.getsockname()[1], flush=True)


if __name__ == "__main__":
    ports = [int(a[7:]) for a in sys.argv[1:] if a.startswith("--port=")]
    anyio.run(main, ports[-1] if ports else 0, "--handshake-only" in sys.argv)
