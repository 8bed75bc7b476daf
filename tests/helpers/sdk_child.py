"""What the official-SDK servers run as child processes (interop peer, e2e downstream) share.

Each serves on loopback and announces its port on stdout: the parent reads that one line
(`helpers.subprocesses.first_line`) to know the child is listening.
"""

from __future__ import annotations

import socket
import warnings
from typing import Any

import anyio
import uvicorn
from mcp.server.mcpserver import Context, MCPServer


async def serve_and_announce(app: Any, port: int = 0) -> None:
    """Serve ``app`` on 127.0.0.1:``port`` (0: any free port); print the port once listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve, [sock])
        while not server.started:  # noqa: ASYNC110 (uvicorn offers no started event)
            await anyio.sleep(0.01)
        print(sock.getsockname()[1], flush=True)


def add_common_tools(server: MCPServer[Any], *, debug_line: bool) -> None:
    """``echo``, ``work`` (logs, then progress) and ``announce``: what both SDK peers offer."""

    @server.tool()
    def echo(text: str) -> str:
        """Return the text."""
        return text

    @server.tool()
    async def work(steps: int, ctx: Context) -> str:
        """Log once at info (and once at debug), then report progress ``steps`` times."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the logging capability is deprecated in 2026
            await ctx.info("working")
            if debug_line:
                await ctx.debug("details")
        for i in range(steps):
            await ctx.report_progress(i + 1, steps, f"step {i + 1}")
        return f"did {steps} steps"

    @server.tool()
    async def announce(ctx: Context) -> str:
        """Say the tool list changed: on the GET stream, or to 2026 subscriptions."""
        if ctx.protocol_version == "2026-07-28":
            await ctx.notify_tools_changed()
        else:
            await ctx.session.send_tool_list_changed()
        return "announced"
