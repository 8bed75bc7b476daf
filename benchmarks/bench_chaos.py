"""Scenario 7, chaos: a few hundred listeners under random faults for a bounded time.

Phase A (resumable faults only: listener streams cut cleanly or mid-event,
streams closed by the server, slow or failing POSTs): every notification the
server emitted must reach every connection (GET streams resume with
``Last-Event-ID``). Phase B adds everything else (401 bursts, 5xx, 429 with
Retry-After, session expiry, dropped connections, garbage and oversized SSE,
non-JSON bodies, stalls). Then faults stop and every connection must come
back to READY. Throughout: no unhandled exception (no ``logger.exception``
record from mcpconn, nothing escaping the supervisor), and client memory and
open sockets flat from start to end.
"""

from __future__ import annotations

import argparse
import random
from typing import Any

import anyio
from _harness import (
    LogCounter,
    MockProcess,
    Result,
    open_sockets,
    progress,
    rss_bytes,
    run_scenario,
)

from mcpconn import Backoff, Limits, ServerConfig, State, Supervisor, Timeouts, TokenSource
from mcpconn.testing import JWTIssuer, JWTProvider

RESUMABLE: list[dict[str, Any]] = [
    {"kind": "cut", "method": "GET"},
    {"kind": "cut_mid_event", "method": "GET"},
    {"kind": "status", "status": 503, "retry_after": 0.2, "method": "POST"},
    {"kind": "delay", "seconds": 0.5, "method": "POST"},
]
EVERYTHING: list[dict[str, Any]] = [
    *RESUMABLE,
    {"kind": "unauthorized"},
    {"kind": "status", "status": 500},
    {"kind": "status", "status": 502},
    {"kind": "rate_limited", "retry_after": 0.3},
    {"kind": "session_expired"},
    {"kind": "disconnect"},
    {"kind": "garbage", "method": "GET"},
    {"kind": "oversized", "size": 2 << 20, "method": "GET"},
    {"kind": "non_json", "method": "POST"},
    {"kind": "not_jsonrpc", "method": "POST"},
    {"kind": "stall", "after_headers": True, "method": "GET"},
]


async def scenario(args: argparse.Namespace) -> Result:
    n = 40 if args.quick else 300
    phase = 5.0 if args.quick else 20.0
    call_every = (0.5, 1.5) if args.quick else (5.0, 15.0)  # ~n/10 calls/s in a full run
    rng = random.Random(5)
    result = Result("chaos", {"connections": n, "phase_s": phase, "seed": 5})
    received: dict[str, set[int]] = {}
    emitted: list[tuple[int, float]] = []  # (seq, phase) for every emit
    calls = {"ok": 0, "failed": 0}
    escaped: list[str] = []
    async with MockProcess("--sse-retry", "0.1") as mock:
        provider = JWTProvider(JWTIssuer(mock.secret), lifetime=3600)
        config = ServerConfig(
            "chaos",
            mock.url,
            transport="streamable-http",
            protocol_version="2025-11-25",  # GET listeners, resumable with Last-Event-ID
            timeouts=Timeouts(read=3.0, request=5.0, close=1.0),
            limits=Limits(max_sse_line_bytes=1 << 20, notification_buffer=1 << 16),
        )
        backoff = Backoff(initial=0.1, max_delay=1.0, auth_attempts=3)
        with LogCounter() as warnings, LogCounter(level=40) as errors:
            try:
                async with (
                    TokenSource(provider) as tokens,
                    Supervisor(tokens, backoff=backoff) as sup,
                    anyio.create_task_group() as tg,
                ):
                    progress(f"connecting {n} listeners")
                    conns = [await sup.connect(config, f"c{i:03d}") for i in range(n)]

                    async def consume(conn: Any) -> None:
                        seen = received.setdefault(conn.principal, set())
                        async for note in conn.notifications():
                            seq = (note.get("params") or {}).get("seq")
                            if isinstance(seq, int):
                                seen.add(seq)

                    async def caller(conn: Any) -> None:
                        while True:
                            await anyio.sleep(rng.uniform(*call_every))
                            try:
                                await conn.call_tool("echo", {"text": "x"}, timeout=5)
                                calls["ok"] += 1
                            except Exception:  # a failed call under chaos is expected
                                calls["failed"] += 1

                    current = {"tag": 0.0}  # 0: warm-up, 1: phase A, 2: phase B, 3: after

                    async def emitter() -> None:
                        # from the start: a listener with no traffic for `read` s times out
                        seq = 0
                        while True:
                            await mock.post(
                                "emit", method="notifications/message", params={"seq": seq}
                            )
                            emitted.append((seq, current["tag"]))
                            seq += 1
                            await anyio.sleep(0.2)

                    for conn in conns:
                        tg.start_soon(consume, conn)
                    tg.start_soon(emitter)
                    with anyio.fail_after(200):
                        for conn in conns:
                            await conn.wait_for(State.READY)
                        await mock.poll_until(lambda s: s["open_streams"] >= n)
                    for conn in conns:
                        tg.start_soon(caller, conn)
                    rss0, sockets0 = rss_bytes(), open_sockets()

                    async def chaos(kinds: list[dict[str, Any]]) -> None:
                        while True:
                            await anyio.sleep(rng.uniform(0.1, 0.4))
                            roll = rng.random()
                            if roll < 0.1:
                                await mock.post("close-streams")
                            elif roll < 0.15 and kinds is EVERYTHING:
                                await mock.post(
                                    "expire-sessions", principal=f"c{rng.randrange(n):03d}"
                                )
                            else:
                                fault = dict(rng.choice(kinds))
                                fault["times"] = rng.randint(1, 5)
                                await mock.post("faults", **fault)

                    for tag, kinds in ((1.0, RESUMABLE), (2.0, EVERYTHING)):
                        progress(f"phase {'A' if tag == 1.0 else 'B'}: {phase:g} s of faults")
                        current["tag"] = tag
                        with anyio.CancelScope() as scope:
                            async with anyio.create_task_group() as inner:
                                inner.start_soon(chaos, kinds)
                                await anyio.sleep(phase)
                                scope.cancel()
                        await mock.clear_faults()
                        current["tag"] = tag + 0.5  # draining: not counted
                        if tag == 1.0:
                            with anyio.move_on_after(20):  # let resumed streams catch up
                                for conn in conns:
                                    await conn.wait_for(State.READY)
                                await anyio.sleep(2.0)
                            rss_a, sockets_a = rss_bytes(), open_sockets()
                    recovered_in = -1.0
                    started = anyio.current_time()
                    await anyio.sleep(4.0)  # a stream stalled in phase B times out (read=3 s)
                    with anyio.move_on_after(60):
                        while sup.statistics().by_state[State.READY] < n:
                            for conn in conns:
                                await conn.wait_for(State.READY)
                        recovered_in = anyio.current_time() - started
                    states = sup.statistics().by_state
                    rss1, sockets1 = rss_bytes(), open_sockets()
                    tg.cancel_scope.cancel()
            except Exception as exc:  # the figure we report: something escaped
                escaped.append(f"{type(exc).__name__}: {exc}"[:300])
                raise
        server = await mock.stats()
    phase_a = [seq for seq, tag in emitted if tag == 1.0]
    missing = {
        f"c{i:03d}": sorted(set(phase_a) - received.get(f"c{i:03d}", set())) for i in range(n)
    }
    lost = sum(len(v) for v in missing.values())
    unhandled = errors.count
    result.row("connections", n)
    result.row(
        "fault rules + stream cuts injected (server 4xx/5xx)",
        sum(v for k, v in server["by_status"].items() if k >= "400"),
    )
    result.row("notifications emitted in phase A (x connections)", f"{len(phase_a)} x {n}")
    result.row("lost in phase A (resumable)", lost)
    result.row("tool calls ok / failed", f"{calls['ok']} / {calls['failed']}")
    result.row("unhandled exceptions (ERROR log records)", unhandled)
    result.row("READY at the end", f"{states[State.READY]} / {n}")
    result.row("all READY again after faults stopped (s, incl. 4 s wait)", recovered_in)
    result.row(
        "client RSS start / after A / end (MiB)",
        f"{rss0 / 2**20:.1f} / {rss_a / 2**20:.1f} / {rss1 / 2**20:.1f}",
    )
    result.row(
        "client open sockets start / after A / end", f"{sockets0} / {sockets_a} / {sockets1}"
    )
    result.row("WARNING log lines", warnings.count)
    growth = (rss1 - rss0) / rss0
    result.target(
        "unhandled exceptions", "0", unhandled + len(escaped), not unhandled and not escaped
    )
    result.target("lost notifications (resumable)", "0", lost, lost == 0)
    result.target(
        "all READY after faults stop", f"{n}", states[State.READY], states[State.READY] == n
    )
    result.target("memory flat", "< +10 % RSS", 100 * growth, growth < 0.10)
    result.target("sockets flat", f"<= {sockets0} + 5%", sockets1, sockets1 <= sockets0 * 1.05 + 2)
    result.figures.update(
        server_stats=server,
        error_levels=errors.by_level,
        errors=errors.samples,
        warnings=warnings.samples,
        escaped=escaped,
        missing={k: v for k, v in missing.items() if v},
    )
    return result


if __name__ == "__main__":
    run_scenario("chaos", scenario)
