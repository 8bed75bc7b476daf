"""Scenario 2, revoked: N live listeners whose principals the server revokes.

mcpconn (default `Backoff`: 3 auth attempts) against the seed's fixed
1-second retry loop, over the same window, on the same server process. Every
mcpconn listener is READY (its stream open) first; then the server revokes
every principal (one control request) and cuts every stream. Measured: the
seconds from the cut until every listener is parked (target <= 10 s), the
requests after that (target 0), the expired tokens the server saw (target 0),
and, sampled every 0.5 s from the server's per-principal counters, the
requests per second (drawn to docs/revoked.png) and per listener, and the log
lines each side printed. The retry budget is sized for N listeners on one
server (`_storm`; ``MCPCONN_BENCH_REVOKED_BUDGET=default`` for the default).
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
from typing import Any

import anyio
import httpx
from _baselines import retry_loop_listener
from _harness import (
    DOCS,
    LogCounter,
    MockProcess,
    Result,
    ShardedTransport,
    progress,
    run_scenario,
)

from mcpconn import (
    Backoff,
    ReconnectPolicy,
    ServerConfig,
    State,
    StormControl,
    Supervisor,
    TokenSource,
)
from mcpconn.testing import JWTIssuer, JWTProvider

SAMPLE = 0.5
#: The issue's target: every revoked listener parked within this many seconds.
PARK_WITHIN = 10.0


def _total(stats: dict[str, Any], prefix: str, key: str = "by_principal") -> int:
    return sum(v for k, v in stats[key].items() if k.startswith(prefix))


def _storm(n: int) -> StormControl:
    """The per-server budgets, sized for ``n`` listeners on one server.

    Every listener retry after a clean stream end draws from the server's retry
    budget; the default (20/s, burst 100) is sized for a handful of listeners
    per server and resumes 1,000 at 20 per second, by design.
    ``MCPCONN_BENCH_REVOKED_BUDGET=default`` runs with it anyway.
    """
    if os.environ.get("MCPCONN_BENCH_REVOKED_BUDGET") == "default":
        return StormControl()
    return StormControl(retry_rate=max(20.0, n / 5), retry_burst=max(100.0, float(n)))


async def _all_parked(conns: list[Any], holder: dict[str, Any]) -> None:
    """When every listener is parked (``holder["parked_at"]``; None: not in the window)."""
    holder["parked_at"] = None
    while "series" not in holder:
        if all(c.state is State.NEEDS_REAUTH for c in conns):
            holder["parked_at"] = anyio.current_time()
            return
        await anyio.sleep(0.1)


async def _sample(mock: MockProcess, prefix: str, window: float) -> list[tuple[float, int]]:
    """(seconds since start, cumulative requests of ``prefix`` principals) every SAMPLE s."""
    start = anyio.current_time()
    series = [(0.0, _total(await mock.stats(), prefix))]
    while (now := anyio.current_time()) - start < window:
        await anyio.sleep(SAMPLE - (now - start) % SAMPLE)
        series.append((anyio.current_time() - start, _total(await mock.stats(), prefix)))
    return series


async def _revoke_all(mock: MockProcess, principals: list[str]) -> None:
    await mock.post("revoke", principals=principals)  # one request: the cut is prompt


def _last_seconds(series: list[tuple[float, int]], seconds: float) -> int:
    """Requests in the last ``seconds`` of a cumulative series (samples may be sparse)."""
    end_t, end_c = series[-1]
    start_c = series[0][1]
    for t, c in series:
        if t <= end_t - seconds:
            start_c = c
    return end_c - start_c


def _after(series: list[tuple[float, int]], t: float | None) -> int | None:
    """Requests in a cumulative series from the first sample at or after ``t`` to its end."""
    if t is None:
        return None
    later = [c for at, c in series if at >= t]
    return series[-1][1] - later[0] if later else 0


def _fmt_s(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def _rates(series: list[tuple[float, int]]) -> list[tuple[float, float]]:
    return [
        (t1, (c1 - c0) / (t1 - t0)) for (t0, c0), (t1, c1) in itertools.pairwise(series) if t1 > t0
    ]


def _plot(ours: list[tuple[float, float]], loop: list[tuple[float, float]], n: int) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib not installed: no picture (pip install 'mcpconn[bench]')"
    fig, ax = plt.subplots(figsize=(8, 4), dpi=120)
    ax.plot(
        [t for t, _ in loop],
        [r for _, r in loop],
        label="fixed 1-second retry loop (seed)",
        color="#d62728",
    )
    ax.plot(
        [t for t, _ in ours],
        [r for _, r in ours],
        label="mcpconn (parks in NEEDS_REAUTH)",
        color="#1f77b4",
        linewidth=2,
    )
    ax.set_xlabel("seconds since the principals were revoked")
    ax.set_ylabel("server requests per second")
    ax.set_title(f"{n:,} listeners whose principal was revoked")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    DOCS.mkdir(exist_ok=True)
    path = DOCS / "revoked.png"
    fig.savefig(path)
    plt.close(fig)
    return f"picture: {path.relative_to(DOCS.parent)}"


async def scenario(args: argparse.Namespace) -> Result:
    n = 100 if args.quick else int(os.environ.get("MCPCONN_BENCH_REVOKED_N", "1000"))
    window = 10.0 if args.quick else 30.0
    silence = 2.0 if args.quick else 3.0
    backoff = Backoff()  # the defaults a user gets: 1 s initial, x1.6, 3 auth attempts
    per_listener = 1 + 1 + backoff.auth_attempts
    result = Result(
        "revoked", {"listeners": n, "window_s": window, "auth_attempts": backoff.auth_attempts}
    )
    async with MockProcess() as mock:
        issuer = JWTIssuer(mock.secret)
        provider = JWTProvider(issuer, lifetime=600)
        ours = [f"p{i:04d}" for i in range(n)]
        theirs = [f"b{i:04d}" for i in range(n)]
        # -- the seed's 1-second loop ------------------------------------------------
        progress(f"baseline: {n} fixed 1-second retry loops for {window:g} s")
        await _revoke_all(mock, theirs)
        counts = {"requests": 0, "log_lines": 0}
        logging.getLogger("baseline").addHandler(logging.NullHandler())
        logging.getLogger("baseline").propagate = False
        shards = ShardedTransport(max(1, n // 25))  # keep the baseline itself cheap
        async with httpx.AsyncClient(timeout=30, transport=shards) as client:
            until = anyio.current_time() + window
            async with anyio.create_task_group() as tg:
                for who in theirs:
                    tg.start_soon(
                        retry_loop_listener,
                        client,
                        mock.url,
                        issuer.mint(who, lifetime=600),
                        until,
                        counts,
                    )
                loop_series = await _sample(mock, "b", window)
        # -- mcpconn ----------------------------------------------------------------
        policy = ReconnectPolicy(backoff=backoff, storm_control=_storm(n))
        async with TokenSource(provider) as tokens, Supervisor(tokens, policy=policy) as sup:
            config = ServerConfig("mock", mock.url, transport="streamable-http")
            progress(f"mcpconn: connecting {n} listeners")
            conns = [await sup.connect(config, who) for who in ours]
            with anyio.fail_after(180):
                for conn in conns:
                    await conn.wait_for(State.READY)
                await mock.poll_until(lambda s: s["open_streams"] >= n)  # all listening
            progress("mcpconn: all listening; revoking every principal")
            before = await mock.stats()
            with LogCounter() as ours_logs:
                holder: dict[str, Any] = {}

                async def sampler() -> None:  # from before the first revocation
                    holder["series"] = await _sample(mock, "p", window)

                async with anyio.create_task_group() as tg:
                    start = anyio.current_time()
                    tg.start_soon(sampler)
                    tg.start_soon(_all_parked, conns, holder)
                    await _revoke_all(mock, ours)
                    await mock.post("close-streams")  # the server cuts every stream now
                    cut = anyio.current_time()
                series = holder["series"]
                stats = await mock.stats()
                parked_set = [c.principal for c in conns if c.state is State.NEEDS_REAUTH]
                await anyio.sleep(silence)  # the parked ones must stay silent
                later = await mock.stats()
            parked = len(parked_set)
            counts_later, counts_then = later["by_principal"], stats["by_principal"]
            from_parked = sum(counts_later.get(p, 0) - counts_then.get(p, 0) for p in parked_set)
            each = [counts_later.get(p, 0) - before["by_principal"].get(p, 0) for p in ours]
            expired = _total(later, "p", "expired_by_principal") - _total(
                before, "p", "expired_by_principal"
            )
            sup_stats = sup.statistics()
    ours_total = series[-1][1] - series[0][1]
    loop_total = loop_series[-1][1] - loop_series[0][1]
    quiet = _last_seconds(series, 5.0)
    result.row("listeners", n, n)
    result.row(f"server requests in {window:g} s", ours_total, loop_total)
    result.row("requests per listener (max)", max(each), f"~{loop_total / n:.1f}")
    result.row(
        "requests in the last 5 s",
        quiet,
        _last_seconds(loop_series, 5.0),
    )
    result.row(f"parked in NEEDS_REAUTH after {window:g} s", parked, "n/a (loops forever)")
    parked_at = holder["parked_at"]
    all_parked = None if parked_at is None else parked_at - cut
    result.row("seconds from the cut until every listener was parked", _fmt_s(all_parked), "never")
    after = _after(series, None if parked_at is None else parked_at - start)
    result.row("server requests after every one was parked", _fmt_s(after), "")
    result.row("expired tokens the server saw", expired, "")
    result.row("log lines (WARNING+)", ours_logs.count, counts["log_lines"])
    result.row("log lines per listener", ours_logs.count / n, counts["log_lines"] / n)
    ratio = loop_total / max(1, ours_total)
    result.row("server requests, 1-s loop / mcpconn", f"{ratio:.1f}x", "")
    result.target(
        "requests per listener",
        f"<= 1 + 1 + {backoff.auth_attempts}",
        max(each),
        max(each) <= per_listener,
    )
    result.row(f"requests from parked listeners in the next {silence:g} s", from_parked, "")
    result.target(
        "requests while parked", "0 (and some parked)", from_parked, parked > 0 and not from_parked
    )
    result.target(
        f"every listener parked within {PARK_WITHIN:g} s",
        f"{n} in <= {PARK_WITHIN:g} s",
        _fmt_s(all_parked),
        all_parked is not None and all_parked <= PARK_WITHIN,
    )
    result.target("requests after every one was parked", "0", _fmt_s(after), after == 0)
    result.target("expired tokens sent", "0", expired, expired == 0)
    result.target(
        "log lines per listener",
        "< 3 (and some parked)",
        ours_logs.count / n,
        parked > 0 and ours_logs.count < 3 * n,
    )
    ours_rates, loop_rates = _rates(series), _rates(loop_series)
    if not args.no_plot:
        result.notes.append(_plot(ours_rates, loop_rates, n))
    result.figures.update(
        per_listener_histogram={str(k): each.count(k) for k in sorted(set(each))},
        ours_series=series,
        loop_series=loop_series,
        log_levels=ours_logs.by_level,
        all_parked_s=all_parked,
        requests_after_all_parked=after,
        expired_tokens=expired,
        retry_budget="default"
        if os.environ.get("MCPCONN_BENCH_REVOKED_BUDGET") == "default"
        else "fleet",
        supervisor={
            "parks": sup_stats.parks,
            "unauthorized": sup_stats.unauthorized,
            "forced_refreshes": sup_stats.forced_refreshes,
            "provider_calls": sup_stats.token_provider_calls,
        },
    )
    return result


if __name__ == "__main__":
    run_scenario("revoked", scenario)
