"""A downstream MCP server on the official SDK for the aggregator tests.

``python downstream_sdk.py [--port=N]`` binds 127.0.0.1 port 0 (or N), prints the port
once uvicorn has started, then serves Streamable HTTP at ``/mcp`` until killed (the
handshake era and 2026-07-28 on one endpoint).
Tokens are HS256 JWTs signed with ``MCPCONN_TEST_SECRET``; ``exp`` is checked.
``--handshake-only`` answers 2026-07-28 requests 400, like a server from before that era.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Any

import anyio
import jwt
import mcp_types as types
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import Context, MCPServer
from pydantic import BaseModel

# a child process: the shared test helpers are one directory up
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from helpers.sdk_child import add_common_tools, serve_and_announce

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

    add_common_tools(server, debug_line=True)

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
    await serve_and_announce(handshake_only(build()) if old else build(), port)


if __name__ == "__main__":
    ports = [int(a[7:]) for a in sys.argv[1:] if a.startswith("--port=")]
    anyio.run(main, ports[-1] if ports else 0, "--handshake-only" in sys.argv)
