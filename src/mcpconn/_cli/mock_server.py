"""``mcpconn mock-server``: the mock MCP server in its own process (for benchmarks).

Prints its URLs, then serves until SIGINT or SIGTERM. Bad option values give
one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
from typing import Any

import anyio

__all__ = ["add_mock_server_parser", "serve_mock_server"]

_ERAS = ("streamable-http", "sse", "stateless")


def add_mock_server_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``mock-server`` subcommand to an argparse ``add_subparsers()`` object."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "mock-server",
        help="run the mock MCP server (all protocol eras, JWT auth, fault injection)",
        description="Run the mcpconn mock MCP server on loopback until SIGINT/SIGTERM.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", default="0", help="port to bind (default 0: any free port)")
    parser.add_argument(
        "--secret", default=None, help="HS256 secret for tokens (default: a random one, printed)"
    )
    parser.add_argument(
        "--token-lifetime",
        default="60",
        help="seconds of validity of tokens minted by the control endpoint (default 60)",
    )
    parser.add_argument("--no-auth", action="store_true", help="accept requests without a token")
    parser.add_argument(
        "--json-response", action="store_true", help="answer POSTs with JSON, not SSE"
    )
    parser.add_argument("--page-size", default="50", help="tools per tools/list page")
    parser.add_argument("--extra-tools", default="0", help="padding tools to list")
    parser.add_argument("--session-idle-timeout", default=None, help="seconds; expired -> 404")
    parser.add_argument("--sse-retry", default="1", help="seconds sent as SSE retry:")
    parser.add_argument(
        "--eras", default=",".join(_ERAS), help=f"comma-separated subset of {','.join(_ERAS)}"
    )
    parser.add_argument("--no-get-listener", action="store_true", help="405 on GET /mcp")
    parser.add_argument(
        "--lean",
        action="store_true",
        help="least work per request (for load tests): a token's signature checked once, "
        "plain requests parsed without h11, short answers written in one send, garbage "
        "collected rarely",
    )
    parser.add_argument(
        "--ready-file", default=None, help="write the URLs and secret as JSON here once listening"
    )
    parser.set_defaults(handler=serve_mock_server)
    return parser


class _BadArgument(Exception):
    pass


def _number(value: Any, name: str, *, minimum: float = 0.0, integer: bool = False) -> Any:
    try:
        number = int(value) if integer else float(value)
    except (TypeError, ValueError):
        kind = "an integer" if integer else "a number"
        raise _BadArgument(f"--{name} must be {kind}, not {value!r}") from None
    if number < minimum or number != number:
        raise _BadArgument(f"--{name} must be at least {minimum:g}, not {value!r}")
    return number


def _options(args: argparse.Namespace) -> dict[str, Any]:
    port = _number(args.port, "port", integer=True)
    if port > 65535:
        raise _BadArgument(f"--port must be at most 65535, not {args.port!r}")
    eras = [e.strip() for e in str(args.eras).split(",") if e.strip()]
    unknown = sorted(set(eras) - set(_ERAS))
    if unknown or not eras:
        raise _BadArgument(f"--eras must be a subset of {','.join(_ERAS)}, not {args.eras!r}")
    timeout = args.session_idle_timeout
    return {
        "host": args.host,
        "port": port,
        "secret": args.secret,
        "lifetime": _number(args.token_lifetime, "token-lifetime", minimum=0.001),
        "require_auth": not args.no_auth,
        "json_response": bool(args.json_response),
        "page_size": _number(args.page_size, "page-size", minimum=1, integer=True),
        "extra_tools": _number(args.extra_tools, "extra-tools", integer=True),
        "session_idle_timeout": None
        if timeout is None
        else _number(timeout, "session-idle-timeout", minimum=0.001),
        "sse_retry": _number(args.sse_retry, "sse-retry"),
        "eras": eras,
        "get_listener": not args.no_get_listener,
        "lean": bool(args.lean),
        "ready_file": args.ready_file,
    }


async def serve_mock_server(args: argparse.Namespace) -> int:
    """Run the server until SIGINT/SIGTERM; returns the exit status."""
    from ..testing import JWTIssuer, MockServer
    from ..testing._lean import few_collections

    try:
        opts = _options(args)
    except _BadArgument as exc:
        print(f"mcpconn mock-server: error: {exc}", file=sys.stderr)
        return 2
    issuer = JWTIssuer(opts["secret"])
    server = MockServer(
        host=opts["host"],
        port=opts["port"],
        issuer=issuer,
        require_auth=opts["require_auth"],
        json_response=opts["json_response"],
        page_size=opts["page_size"],
        extra_tools=opts["extra_tools"],
        session_idle_timeout=opts["session_idle_timeout"],
        sse_retry=opts["sse_retry"],
        eras=opts["eras"],
        get_listener=opts["get_listener"],
        lean=opts["lean"],
        control=True,
        token_lifetime=opts["lifetime"],
    )
    collector = few_collections() if opts["lean"] else contextlib.nullcontext()
    with collector, anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        try:
            async with server:
                info = {
                    "url": server.url,
                    "sse_url": server.sse_url,
                    "control_url": server.control_url,
                    "secret": issuer.secret,
                    "pid": os.getpid(),
                }
                print(f"mcpconn mock server (pid {info['pid']}), Ctrl-C to stop", flush=True)
                print(f"  MCP endpoint (sessions + 2026-07-28): {server.url}", flush=True)
                print(f"  legacy HTTP+SSE:                      {server.sse_url}", flush=True)
                print(f"  control:                              {server.control_url}", flush=True)
                if opts["secret"] is None:
                    print(f"  token secret (HS256):                 {issuer.secret}", flush=True)
                if opts["ready_file"]:
                    await anyio.Path(opts["ready_file"]).write_text(json.dumps(info))
                async for _ in signals:
                    break
        except OSError as exc:
            print(
                f"mcpconn mock-server: error: cannot listen: {exc.strerror or exc}", file=sys.stderr
            )
            return 1
    return 0
