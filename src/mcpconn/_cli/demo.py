"""``mcpconn demo``: the seed story (expired tokens, a 1-second 401 loop) fixed, live.

Everything runs in this process against an embedded `MockServer`: short-lived
JWTs, an idle gap past their expiry, a revoked principal whose listeners park,
and a re-login that wakes them. The numbers printed are the server's own
counters, so the demo shows what reached the wire, not what the client believes.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import anyio
import httpx

from .._config import ServerConfig
from .._core.backoff import Backoff
from .._core.machine import State
from .._supervision.connection import Connection
from .._supervision.supervisor import Supervisor
from .._tokens.source import TokenSource

__all__ = ["run_demo"]

PRINCIPALS = ("alice", "bob", "carol")
SERVERS = ("github", "jira")
REVOKED = "carol"


def _say(text: str = "") -> None:
    print(text, flush=True)


def _step(number: int, title: str) -> None:
    _say()
    _say(f"== {number}. {title} " + "=" * max(0, 66 - len(title)))


def _table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    _say("  " + line)
    _say("  " + "  ".join("-" * w for w in widths))
    for row in rows:
        _say("  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))


def _status(conns: list[Connection], server: Any) -> None:
    by_principal = server.stats().by_principal
    rows = [
        [c.server.name, c.principal, c.state.name, str(by_principal.get(c.principal, 0))]
        for c in conns
    ]
    _table(rows, ["server", "principal", "state", "server-side requests of the principal"])


async def _naive_call(url: str, token: str) -> int:
    """What the seed's client does after the idle gap: send the cached token as is."""
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "naive-cached-token-client", "version": "0"},
        },
    }
    headers = {
        "authorization": f"Bearer {token}",
        "accept": "application/json, text/event-stream",
    }
    async with httpx.AsyncClient() as client:
        response = await client.post(url, json=body, headers=headers)
    return response.status_code


async def run_demo(speed: float = 1.0) -> int:
    """Run the demo; returns the exit status (0 when every claim held)."""
    from ..testing import JWTProvider, MockServer

    logging.basicConfig(
        level=logging.WARNING,
        format="  log  %(levelname)s %(name)s: %(message)s",
        stream=sys.stdout,  # interleaved with the story, in order
        force=True,
    )
    speed = max(speed, 0.1)
    lifetime = 3 if speed <= 1.5 else 2  # JWT exp is whole seconds: 2 s is the shortest sane
    margin = 0.5
    ok = True
    async with MockServer(sse_retry=0.2) as server:
        provider = JWTProvider(server.issuer, lifetime=lifetime)
        backoff = Backoff(initial=0.2, max_delay=2.0, auth_attempts=2)
        _say("mcpconn demo: the seed bug (expired JWTs forwarded after an idle gap, then a")
        _say("1-second 401 retry loop) against a real MCP server on loopback.")
        _say(f"mock server: {server.url} (checks every JWT's signature and exp)")
        async with (
            TokenSource(provider, margin=margin) as tokens,
            Supervisor(tokens, backoff=backoff) as sup,
        ):
            # 1 ---------------------------------------------------------------------
            _step(1, f"tokens live {lifetime} s; one listener per (server, principal)")
            configs = [
                ServerConfig(name, server.url, transport="streamable-http") for name in SERVERS
            ]
            conns = [await sup.connect(cfg, who) for who in PRINCIPALS for cfg in configs]
            with anyio.fail_after(15):
                for conn in conns:
                    await conn.wait_for(State.READY)
                for conn in conns:
                    await conn.call_tool("echo", {"text": f"hello from {conn.principal}"})
            stale = server.mint("alice", lifetime=lifetime)  # what a naive cache would keep
            _say(f"  {len(conns)} connections READY, one tools/call each: all succeeded")
            _status(conns, server)

            # 2 ---------------------------------------------------------------------
            gap = max(lifetime + 0.5, 6.0 / speed)
            _step(2, f"idle for {gap:.1f} s: longer than the tokens live")
            waited = 0.0
            while waited < gap:
                chunk = min(1.0, gap - waited)
                await anyio.sleep(chunk)
                waited += chunk
                print(f"\r  idle... {waited:4.1f}/{gap:.1f} s", end="", flush=True)
            _say()
            calls_before = provider.total_calls
            with anyio.fail_after(15):
                for conn in conns:
                    await conn.call_tool("echo", {"text": "after the gap"})
            stats = server.stats()
            _say(f"  next tools/call on all {len(conns)} connections: succeeded")
            _say(f"  expired tokens seen by the server: {stats.expired_tokens_seen}")
            _say(f"  401s seen by the server:           {stats.unauthorized_total}")
            _say(
                f"  provider refreshes during the gap: {provider.total_calls - calls_before} "
                f"(total provider calls {provider.total_calls})"
            )
            ok &= stats.expired_tokens_seen == 0
            status = await _naive_call(server.url, stale)
            _say(
                f"  for contrast, a client caching the token without reading exp (the seed): "
                f"HTTP {status}"
            )

            # 3 ---------------------------------------------------------------------
            _step(3, f"{REVOKED!r} is revoked on the server (her provider still mints tokens)")
            mine = [c for c in conns if c.principal == REVOKED]
            before = server.stats().by_principal.get(REVOKED, 0)
            server.revoke(REVOKED)
            server.close_streams(REVOKED)
            with anyio.fail_after(20):
                for conn in mine:
                    await conn.wait_for(State.NEEDS_REAUTH)
            spent = server.stats().by_principal.get(REVOKED, 0) - before
            limit = len(mine) * (1 + 1 + backoff.auth_attempts)
            _say(
                f"  {len(mine)} listeners parked in NEEDS_REAUTH after {spent} requests "
                f"(at most {limit}: 1 + 1 forced refresh + {backoff.auth_attempts} attempts each)"
            )
            parked_at = server.stats().by_principal.get(REVOKED, 0)
            watch = max(2, round(5 / speed))
            for second in range(1, watch + 1):
                await anyio.sleep(1.0)
                now = server.stats().by_principal.get(REVOKED, 0)
                _say(
                    f"  t+{second}s  server requests from {REVOKED}: {now} "
                    f"({'standing still' if now == parked_at else 'MOVING'})"
                )
                ok &= now == parked_at
            _say(f"  a 1-second retry loop would have sent {watch * len(mine)} by now")
            _status(conns, server)

            # 4 ---------------------------------------------------------------------
            _step(4, f"{REVOKED!r} logs in again: tokens.publish(...)")
            server.restore(REVOKED)
            started = anyio.current_time()
            tokens.publish(REVOKED, server.mint(REVOKED, lifetime=lifetime))
            with anyio.fail_after(10):
                for conn in mine:
                    await conn.wait_for(State.READY)
                elapsed = anyio.current_time() - started
                for conn in mine:
                    await conn.call_tool("echo", {"text": "welcome back"})
            _say(f"  all {len(mine)} of her listeners READY {elapsed * 1000:.0f} ms after publish")

            # 5 ---------------------------------------------------------------------
            _step(5, "summary")
            _status(conns, server)
            st, sv = sup.statistics(), server.stats()
            _say()
            _table(
                [
                    ["server: requests", str(sv.requests_total)],
                    ["server: expired tokens seen", str(sv.expired_tokens_seen - 1)],
                    ["server: 401 responses", str(sv.unauthorized_total - 1)],
                    ["client: provider calls", str(st.token_provider_calls)],
                    ["client: connects", str(st.connects)],
                    ["client: parks", str(st.parks)],
                    ["client: READY now", str(st.by_state[State.READY])],
                ],
                ["figure (the naive contrast request excluded)", "value"],
            )
            ok &= st.by_state[State.READY] == len(conns)
    _say()
    _say("demo complete: " + ("every claim held" if ok else "a claim did NOT hold (see above)"))
    return 0 if ok else 1
