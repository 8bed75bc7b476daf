"""A reference MCP aggregator: many downstream MCP servers behind one authenticated endpoint.

    python examples/aggregator.py --port 0 --jwt-secret SECRET \\
        --server alpha=http://127.0.0.1:9001/mcp --server beta=http://127.0.0.1:9002/mcp

Upstream it is an MCP server (the official SDK's low-level ``Server``, Streamable HTTP
at ``/mcp``, both the 2025-11-25 handshake era and the 2026-07-28 era). Every request
needs ``Authorization: Bearer <HS256 JWT>`` with ``exp`` and ``sub``; ``sub`` is the
principal. Downstream it is one `mcpconn.Supervisor`: one connection per (server,
principal), created on the principal's first request, carrying the caller's own bearer.

What mcpconn does here, and what the seed bug got wrong: every upstream request
publishes its bearer *before* any downstream call, so a token that expired while the
user was idle is never sent downstream; a principal the downstream server rejects is
parked (no traffic) and answered at once with "re-authentication required" until the
user comes back with a new token, which wakes the connection for that very request.

Tools are re-exposed as ``NAME_TOOL``, prompts as ``NAME_PROMPT``, resources as
``NAME+URI``. ``GET /_aggregator/status`` (loopback, no auth) shows every connection.

This file is the process (command line, socket, signals); the aggregator itself is the
``aggregation`` package beside it, read from ``aggregation/routing.py`` on.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import re
import signal
import socket
import sys
import warnings
from collections.abc import Iterator

import anyio
import uvicorn
from aggregation import Aggregator, JWTVerifier, build_server
from aggregation.limits import MARGIN
from mcp.server.auth.settings import AuthSettings
from mcp.shared.exceptions import MCPDeprecationWarning
from pydantic import AnyHttpUrl
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import mcpconn

# logging/setLevel is deprecated in 2026-07-28, but session-era clients still send it
warnings.filterwarnings("ignore", category=MCPDeprecationWarning)


class QuietServer(uvicorn.Server):
    """uvicorn minus its signal handling: it re-raises the signal after shutdown."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def refuse(request: mcpconn.TokenRequest) -> str:
    """We cannot mint users' tokens: only their next request can bring a new one."""
    raise mcpconn.ReauthRequired(principal=request.principal)


async def main(args: argparse.Namespace) -> None:
    timeouts = mcpconn.Timeouts(connect=5.0, request=30.0, close=2.0)
    servers = {
        name: mcpconn.ServerConfig(
            name, url, transport=args.transport, timeouts=timeouts, allow_insecure_http=True
        )
        for name, url in args.server
    }
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))  # loopback only
    # stale_window=0: no refresh ahead (only the user's next request can bring a new token)
    async with mcpconn.TokenSource(refuse, margin=MARGIN, stale_window=0.0) as tokens:
        agg = Aggregator(servers, tokens)

        async def status(request: Request) -> JSONResponse:
            if request.client is None or request.client.host not in ("127.0.0.1", "::1"):
                return JSONResponse({"error": "loopback only"}, status_code=403)
            return JSONResponse(agg.status())

        app = build_server(agg).streamable_http_app(
            auth=AuthSettings(issuer_url=AnyHttpUrl("http://127.0.0.1/"), resource_server_url=None),
            token_verifier=JWTVerifier(args.jwt_secret),
            custom_starlette_routes=[Route("/_aggregator/status", status)],
        )
        config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2)
        web = QuietServer(config)
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with agg.running(), anyio.create_task_group() as tg:
                tg.start_soon(web.serve, [sock])
                while not web.started:  # noqa: ASYNC110 (uvicorn has no started event)
                    await anyio.sleep(0.01)
                print(f"PORT {sock.getsockname()[1]}", flush=True)
                async for _ in signals:  # one signal, even one sent during start-up
                    web.should_exit = True  # uvicorn stops; then the supervisor closes all
                    break


def parse_args(argv: list[str]) -> argparse.Namespace:
    def server(value: str) -> tuple[str, str]:
        name, sep, url = value.partition("=")
        if not sep or not re.fullmatch(r"[a-z0-9-]+", name) or not url:
            raise argparse.ArgumentTypeError(f"expected NAME=URL, NAME in [a-z0-9-]+: {value!r}")
        return name, url

    parser = argparse.ArgumentParser(description="A reference MCP aggregator on mcpconn.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--jwt-secret", required=True)
    parser.add_argument("--server", type=server, action="append", required=True)
    parser.add_argument("--transport", choices=("auto", "streamable-http", "sse"), default="auto")
    args = parser.parse_args(argv)
    if len({name for name, _ in args.server}) != len(args.server):
        parser.error("server names must be unique")
    return args


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    anyio.run(main, parse_args(sys.argv[1:]))
