"""``mcpconn demo --aggregator``: the reference aggregator (``examples/aggregator.py``), live.

Two embedded mock servers downstream, the example aggregator in front of them in a
process of its own, and mcpconn as the upstream client of two users. What it shows
is counted by the downstream servers themselves: both servers' tools behind one
endpoint, each user's own token forwarded, no expired token sent after an idle gap
past the tokens' expiry, and a clean exit on SIGTERM. It needs a source checkout
(``examples/``) and the official SDK the example runs on (the ``test`` extra).
"""

from __future__ import annotations

import json
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import httpx

from .._config import ServerConfig
from .._core.machine import State
from .._supervision.supervisor import Supervisor
from .._tokens.source import TokenSource
from .demo import _say, _step, _table

__all__ = ["run_aggregator_demo"]

PRINCIPALS = ("alice", "bob")
DOWNSTREAM = ("alpha", "beta")
LIFETIME = 4  # seconds a user's token lives (JWT exp is whole seconds)
QUICK_LIFETIME = 2  # with --quick or --speed above 1.5: the shortest sane whole-second exp
STARTUP = 60.0  # the example imports the SDK and uvicorn: seconds on a small box


async def _announced_port(proc: anyio.abc.Process) -> int:
    """The port of the aggregator's first stdout line, ``PORT n``."""
    assert proc.stdout is not None
    line = b""
    with anyio.fail_after(STARTUP):
        while not line.endswith(b"\n"):
            line += await proc.stdout.receive(1)  # never read past the line
    words = line.decode().split()
    if len(words) != 2 or words[0] != "PORT":
        raise RuntimeError(f"the aggregator announced {line[:80]!r}, not a port")
    return int(words[1])


def _tail(errors: Any) -> str:
    """The last of what the aggregator wrote on stderr."""
    errors.seek(0)
    text: str = errors.read().decode(errors="replace")
    return text[-2000:]


async def run_aggregator_demo(script: Path, speed: float = 1.0) -> int:
    """Run the demo against ``script``; returns the exit status (0 when every claim held).

    Above ``speed`` 1.5 (``--quick``) the tokens live 2 s instead of 4 and the idle gap
    past their expiry is as much shorter.
    """
    lifetime = LIFETIME if speed <= 1.5 else QUICK_LIFETIME
    from ..testing import JWTIssuer, JWTProvider, MockServer

    issuer = JWTIssuer()  # one secret: the aggregator checks the tokens it forwards
    claims: list[tuple[str, bool]] = []
    async with MockServer(issuer=issuer) as alpha, MockServer(issuer=issuer) as beta:
        servers = {"alpha": alpha, "beta": beta}
        command = [sys.executable, str(script), "--port", "0", "--jwt-secret", issuer.secret]
        for name, server in servers.items():
            command += ["--server", f"{name}={server.url}"]
        _say("mcpconn demo --aggregator: examples/aggregator.py in front of two mock servers,")
        _say("mcpconn as the upstream client of two users (every figure is a server's own count)")
        for attempt in (1, 2):  # a start-up that dies before its port is shown, then retried once
            with tempfile.TemporaryFile() as errors:
                async with await anyio.open_process(command, stderr=errors) as proc:
                    try:
                        try:
                            port = await _announced_port(proc)
                        except anyio.EndOfStream:
                            with anyio.fail_after(20):
                                died = await proc.wait()
                            why = f"the aggregator exited ({died}) before its port:"
                            why += "\n" + _tail(errors)
                            if attempt == 1:
                                _say(f"  {why}\n  starting it again")
                                continue
                            raise RuntimeError(why) from None
                        base = f"http://127.0.0.1:{port}"
                        claims += await _story(
                            base, servers, JWTProvider(issuer, lifetime=lifetime)
                        )
                    finally:
                        if proc.returncode is None:
                            proc.send_signal(signal.SIGTERM)
                    with anyio.fail_after(20):
                        status = await proc.wait()
                _step(5, "SIGTERM: the aggregator closes every connection and exits")
                _say(f"  exit status {status}")
                claims.append(("the aggregator exited 0 on SIGTERM", status == 0))
                if status != 0:
                    _say(_tail(errors))
            break
    _say()
    for claim, held in claims:
        _say(f"  [{'ok' if held else 'FAILED'}] {claim}")
    if all(held for _, held in claims):
        _say("demo complete: every claim held")
        return 0
    _say("demo FAILED: a claim did not hold")
    return 1


async def _story(base: str, servers: dict[str, Any], provider: Any) -> list[tuple[str, bool]]:
    claims = []
    lifetime = provider.lifetime
    config = ServerConfig("aggregator", f"{base}/mcp", listen=False)
    async with (
        TokenSource(provider, margin=min(1.0, lifetime / 4)) as tokens,
        Supervisor(tokens) as sup,
    ):
        _step(1, "one endpoint: both servers' tools, renamed NAME_TOOL")
        conns = {who: await sup.connect(config, who) for who in PRINCIPALS}
        with anyio.fail_after(20):
            for conn in conns.values():
                await conn.wait_for(State.READY)
            names = sorted(tool["name"] for tool in await conns["alice"].list_tools())
        _say(f"  alice sees {len(names)} tools: {', '.join(names[:8])}, ...")
        claims.append(("both servers' echo tools behind one endpoint",
                       {"alpha_echo", "beta_echo"} <= set(names)))  # fmt: skip

        _step(2, "each user's own token goes downstream")
        with anyio.fail_after(20):
            for who, conn in conns.items():
                for name in DOWNSTREAM:
                    await conn.call_tool(f"{name}_echo", {"text": f"hi from {who}"})
        rows = [
            [name, who, str(server.stats().by_principal.get(who, 0))]
            for name, server in servers.items()
            for who in PRINCIPALS
        ]
        _table(rows, ["downstream", "principal", "requests it saw with that user's token"])
        claims.append(("every downstream server saw every user's own token",
                       all(int(row[2]) > 0 for row in rows)))  # fmt: skip

        _step(3, f"an idle gap past the tokens' expiry ({lifetime} s), then a call")
        await anyio.sleep(lifetime + 1.0)  # the seed's idle gap, scaled down
        with anyio.fail_after(20):
            result = await conns["alice"].call_tool("beta_echo", {"text": "after the gap"})
        _say(f"  the call after the gap: {'ok' if 'after the gap' in str(result) else result}")
        expired = sum(s.stats().expired_tokens_seen for s in servers.values())
        refused = sum(s.stats().unauthorized_total for s in servers.values())
        _say(f"  expired tokens seen downstream: {expired}; 401s downstream: {refused}")
        claims.append(("the call after the gap succeeded", "after the gap" in str(result)))
        claims.append(("no expired token and no 401 downstream", expired == refused == 0))

        _step(4, "GET /_aggregator/status: the aggregator's connections")
        async with httpx.AsyncClient() as http:
            status = (await http.get(f"{base}/_aggregator/status")).json()
        rows = [[c["server"], c["principal"], c["state"]] for c in status["connections"]]
        _table(sorted(rows), ["server", "principal", "state"])
        claims.append(("one connection per (server, principal)", len(rows) == 4))
        _say(f"  statistics: {json.dumps(status['statistics'])[:150]}...")
    return claims
