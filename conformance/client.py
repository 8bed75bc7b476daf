"""mcpconn as the client under test of the official MCP conformance suite.

The suite starts a scenario server and runs ``python client.py <server-url>``
with ``MCP_CONFORMANCE_SCENARIO`` (scenario name), ``MCP_CONFORMANCE_PROTOCOL_VERSION``
(the era to speak) and, for some scenarios, ``MCP_CONFORMANCE_CONTEXT`` (JSON) set.
Everything on the wire goes through mcpconn's public API; this file only plays the
embedding application: it picks what to call, answers server-to-client requests
(elicitation, sampling, roots) and, for the skills extension, acts as the host.

Exit status 0 means the client finished its part; the suite judges the wire. This file
is the process; ``scenarios.py`` is what each scenario does, ``answers.py`` what the
client answers a server's questions, ``token_providers.py`` how the auth scenarios
obtain tokens.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Literal, cast

import anyio
from answers import HANDLERS
from clientlog import log
from scenarios import SCENARIOS, basic
from token_providers import NON_INTERACTIVE, GrantProvider, LoginProvider, no_token

import mcpconn

JSON = dict[str, Any]
TransportKind = Literal["auto", "streamable-http", "sse"]

SCENARIO_TIMEOUT = float(os.environ.get("CONFORMANCE_CLIENT_TIMEOUT", "25"))
READY_TIMEOUT = 10.0
SUPPORTED_VERSIONS = ("2026-07-28", "2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")


def server_config(url: str, version: str | None, *, auth: bool) -> mcpconn.ServerConfig:
    """Defaults, except what the suite dictates; CONFORMANCE_TRANSPORT / CONFORMANCE_LISTEN=0
    exist only to diagnose a failure (run.sh never sets them)."""
    transport = cast(TransportKind, os.environ.get("CONFORMANCE_TRANSPORT", "auto"))
    listen = os.environ.get("CONFORMANCE_LISTEN", "1") != "0"
    if version is not None and version not in SUPPORTED_VERSIONS:
        log(f"suite asked for protocol {version}, which mcpconn does not speak; using default")
        version = None
    return mcpconn.ServerConfig(
        "conformance",
        url,
        transport=transport,
        forward_token=auth,
        protocol_version=version,
        listen=listen,
    )


async def until_ready(conn: Any, refused: anyio.Event) -> None:
    """READY, or fail fast when the provider refused or the deadline passed."""
    with anyio.move_on_after(READY_TIMEOUT):
        async with anyio.create_task_group() as tg:

            async def ready() -> None:
                await conn.wait_for(mcpconn.State.READY)
                tg.cancel_scope.cancel()

            async def refusal() -> None:
                await refused.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(ready)
            tg.start_soon(refusal)
    if conn.state is not mcpconn.State.READY:
        last = getattr(conn, "last_error", None)
        raise RuntimeError(f"not READY: {conn!r}, last error {last!r}")


async def main(url: str) -> int:
    scenario = os.environ.get("MCP_CONFORMANCE_SCENARIO", "tools_call")
    version = os.environ.get("MCP_CONFORMANCE_PROTOCOL_VERSION") or None
    ctx: JSON = json.loads(os.environ.get("MCP_CONFORMANCE_CONTEXT") or "{}")
    run = SCENARIOS.get(scenario, basic)
    auth = scenario.startswith("auth/")
    provider: GrantProvider | LoginProvider = (
        GrantProvider(scenario, url, ctx) if scenario in NON_INTERACTIVE else LoginProvider(ctx)
    )
    cfg = server_config(url, version, auth=auth)
    log(f"scenario={scenario} version={cfg.protocol_version} transport={cfg.transport} url={url}")
    with anyio.fail_after(SCENARIO_TIMEOUT):
        async with (
            mcpconn.TokenSource(provider if auth else no_token) as tokens,
            mcpconn.Supervisor(tokens, request_handlers=HANDLERS) as sup,
        ):
            conn = await sup.connect(cfg, "conformance")
            await until_ready(conn, provider.refused)
            async with anyio.create_task_group() as tg:

                async def drain() -> None:
                    async for note in conn.notifications():
                        log("notification:", json.dumps(note)[:200])

                tg.start_soon(drain)
                await run(conn, ctx)
                tg.cancel_scope.cancel()
    log("done")
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: client.py <server-url>  (MCP_CONFORMANCE_SCENARIO names the scenario)")
    sys.exit(anyio.run(main, sys.argv[1]))
