"""Scenario 7, chaos: a few hundred listeners under random faults for a bounded time.

Phase A (resumable faults only: listener streams cut cleanly or mid-event,
streams closed by the server, slow or failing POSTs): every notification the
server emitted must reach every connection (GET streams resume with
``Last-Event-ID``). Phase B adds everything else (401 bursts, 5xx, 429 with
Retry-After, session expiry, dropped connections, garbage and oversized SSE,
non-JSON bodies, stalls). Then faults stop and every connection must come
back to READY. Throughout: no unhandled exception (no ``logger.exception``
record from mcpconn, nothing escaping the supervisor), and client memory and
open sockets flat from the warm-up (phase A) to the end.

Memory: phase B runs in rounds; after phase A (the warm-up: pools, caches and
every recovery path used once) and after each round (faults cleared, every
connection READY again) the client is measured after ``gc.collect()``, the
lowest of five samples 0.5 s apart (three in a quick run; calls keep running).
"Flat" is the least-squares slope over the rounds of B, not the first reading
against the last: a leak grows with every round of faults, while the raw RSS
also carries glibc's high-water mark (freed buffers of oversized lines, bursts
of reconnects) that the process no longer uses; ``malloc_trim`` hands those
pages back, so the RSS after it is what the process really holds.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import gc
import random
import sys
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


def _malloc_trim() -> Any:
    """glibc's ``malloc_trim`` (None elsewhere): returns free heap pages to the system."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return getattr(libc, "malloc_trim", None)


def heap_sample(trim: Any) -> dict[str, int]:
    """The client's memory after a full collection: live objects, pymalloc blocks, RSS
    as it is and (glibc) after ``malloc_trim``, i.e. without the allocator's free pages."""
    gc.collect()
    sample = {"objects": len(gc.get_objects()), "blocks": sys.getallocatedblocks()}
    sample["rss"] = rss_bytes()
    if trim is not None:
        trim(0)
    sample["rss_trimmed"] = rss_bytes()
    return sample


async def heap_floor(trim: Any, samples: int = 5, gap: float = 0.5) -> dict[str, int]:
    """The lowest of a few samples ``gap`` s apart (the raw RSS: the first, untrimmed).

    Calls and reconnects still run, so one sample may catch a burst of buffers in
    flight; a leak raises the floor, which a burst does not.
    """
    taken = [heap_sample(trim)]
    for _ in range(samples - 1):
        await anyio.sleep(gap)
        taken.append(heap_sample(trim))
    floor = {key: min(s[key] for s in taken) for key in taken[0]}
    floor["rss"] = taken[0]["rss"]
    return floor


def growth(values: list[int]) -> float:
    """Least-squares slope x (len - 1), in % of the first value: the growth the trend
    line shows over the rounds (one noisy reading does not make a trend)."""
    count = len(values)
    if count < 2 or not values[0]:
        return 0.0
    mean_x = (count - 1) / 2
    mean_y = sum(values) / count
    num = sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values))
    den = sum((i - mean_x) ** 2 for i in range(count))
    return 100 * num / den * (count - 1) / values[0]


async def scenario(args: argparse.Namespace) -> Result:
    n = 40 if args.quick else 300
    phase = 5.0 if args.quick else 20.0
    rounds = 4 if args.quick else 6  # phase B: rounds of round_s s of faults each
    round_s = phase / 2 if args.quick else phase / 4
    trim = _malloc_trim()
    samples = 3 if args.quick else 5  # per heap reading (the quick run's time limit is 60 s)
    call_every = (0.5, 1.5) if args.quick else (5.0, 15.0)  # ~n/10 calls/s in a full run
    rng = random.Random(5)
    result = Result(
        "chaos",
        {"connections": n, "phase_s": phase, "rounds_b": rounds, "round_s": round_s, "seed": 5},
    )
    heap: list[dict[str, int]] = []  # after phase A, then after each round of phase B
    received: dict[str, set[int]] = {}
    emitted: list[tuple[int, float]] = []  # (seq, phase) for every emit
    # Only phase A's seqs are checked, so only they are kept: 300 sets of every seq
    # (distinct int objects) would grow the client's heap by ~10 MiB over the run.
    phase_a_seqs: set[int] = set()
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
                            if isinstance(seq, int) and seq in phase_a_seqs:
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
                            tag = current["tag"]
                            if tag == 1.0:  # before the emit: it may arrive before the post returns
                                phase_a_seqs.add(seq)
                            await mock.post(
                                "emit", method="notifications/message", params={"seq": seq}
                            )
                            emitted.append((seq, tag))
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

                    async def faults(kinds: list[dict[str, Any]], seconds: float) -> None:
                        with anyio.move_on_after(seconds):
                            await chaos(kinds)
                        await mock.clear_faults()

                    progress(f"phase A: {phase:g} s of faults")
                    current["tag"] = 1.0
                    await faults(RESUMABLE, phase)
                    current["tag"] = 1.5  # draining: not counted
                    with anyio.move_on_after(20):  # let resumed streams catch up
                        for conn in conns:
                            await conn.wait_for(State.READY)
                        await anyio.sleep(2.0)
                    sockets_a = open_sockets()
                    heap.append(await heap_floor(trim, samples))
                    current["tag"] = 2.0
                    for r in range(rounds):
                        progress(f"phase B, round {r + 1}/{rounds}: {round_s:g} s of faults")
                        await faults(EVERYTHING, round_s)
                        with anyio.move_on_after(30):
                            for conn in conns:
                                await conn.wait_for(State.READY)
                        heap.append(await heap_floor(trim, samples))
                    current["tag"] = 2.5
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
    rss_a = heap[0]["rss"]
    result.row(
        "client RSS start / after A / end (MiB)",
        f"{rss0 / 2**20:.1f} / {rss_a / 2**20:.1f} / {rss1 / 2**20:.1f}",
    )
    rounds_b = heap[1:]

    def series(key: str, scale: float = 1.0, fmt: str = "{:,.0f}") -> str:
        return " / ".join(fmt.format(h[key] / scale) for h in heap)

    result.row("after A / each round of B: live objects (gc'd)", series("objects"))
    result.row("after A / each round of B: allocated blocks", series("blocks"))
    result.row("after A / each round of B: RSS (MiB)", series("rss", 2**20, "{:.1f}"))
    result.row(
        "after A / each round of B: RSS after malloc_trim (MiB)"
        + ("" if trim is not None else " (no glibc: untrimmed)"),
        series("rss_trimmed", 2**20, "{:.1f}"),
    )
    heap_growth = growth([h["blocks"] for h in rounds_b])
    objects_growth = growth([h["objects"] for h in rounds_b])
    rss_growth = growth([h["rss_trimmed"] for h in rounds_b])
    result.row(
        "trend over the rounds of B: live objects / blocks (%)",
        f"{objects_growth:+.2f} / {heap_growth:+.2f}",
    )
    result.row(
        "trend over the rounds of B: RSS, raw / after malloc_trim (%)",
        f"{growth([h['rss'] for h in rounds_b]):+.1f} / {rss_growth:+.1f}",
    )
    result.row(
        "client open sockets start / after A / end", f"{sockets0} / {sockets_a} / {sockets1}"
    )
    result.row("WARNING log lines", warnings.count)
    result.target(
        "unhandled exceptions", "0", unhandled + len(escaped), not unhandled and not escaped
    )
    result.target("lost notifications (resumable)", "0", lost, lost == 0)
    result.target(
        "all READY after faults stop", f"{n}", states[State.READY], states[State.READY] == n
    )
    result.target(
        "memory flat",
        "< +10 % RSS after malloc_trim, trend over the rounds of faults",
        rss_growth,
        rss_growth < 10,
    )
    result.target(
        "live heap flat",
        "< +2 % allocated blocks (gc'd), trend over the rounds of faults",
        heap_growth,
        heap_growth < 2,
    )
    # from the warm-up on, as memory: "start" is before the callers' keep-alive POST
    # connections exist (quick run: 40 listeners + 3, then +5-10 with calls in flight)
    result.target(
        "sockets flat",
        f"<= {sockets_a} (after A) + 5%",
        sockets1,
        sockets1 <= sockets_a * 1.05 + 2,
    )
    result.figures.update(
        server_stats=server,
        error_levels=errors.by_level,
        errors=errors.samples,
        warnings=warnings.samples,
        escaped=escaped,
        missing={k: v for k, v in missing.items() if v},
        heap=heap,
    )
    return result


if __name__ == "__main__":
    run_scenario("chaos", scenario)
