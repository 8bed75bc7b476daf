"""The supervisor's statistics as flat (name, help, kind, labels, value) rows.

Both metric adapters export exactly these rows, so Prometheus and
OpenTelemetry users see the same names.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from .._supervision.stats import SupervisorStatistics

Kind = Literal["counter", "gauge"]


@dataclass(frozen=True)
class Figure:
    name: str
    help: str
    kind: Kind
    labels: tuple[tuple[str, str], ...]
    value: float


_COUNTERS = {
    "connects": "Sessions opened (first connects and reconnects).",
    "reconnects": "Sessions opened beyond the first per connection.",
    "forced_refreshes": "Forced token refreshes after a 401.",
    "unauthorized": "401/403 answers that reached the state machine.",
    "transient_failures": "Network errors, 5xx, 429/503 and stream failures.",
    "parks": "Times a connection entered NEEDS_REAUTH.",
    "notifications": "Notifications received from servers.",
    "token_refreshes": "Tokens obtained from the provider.",
    "token_provider_calls": "Calls made to the token provider.",
}


#: The per-server figures, name -> (kind, help): an adapter that registers its
#: instruments up front (OpenTelemetry) needs them before any server is known.
PER_SERVER: dict[str, tuple[Kind, str]] = {
    "mcpconn_server_connections": ("gauge", "Connections per server."),
    "mcpconn_server_parked": ("gauge", "Parked connections per server."),
    "mcpconn_retry_budget_available": (
        "gauge",
        "Retry budget tokens left per server (negative: retries queued).",
    ),
    "mcpconn_retry_budget_exhausted": (
        "counter",
        "Retries that had to wait for the server's retry budget.",
    ),
}


def figures(stats: SupervisorStatistics) -> Iterator[Figure]:
    """Every number worth exporting; tokens never appear here."""
    for field, text in _COUNTERS.items():
        yield Figure(f"mcpconn_{field}", text, "counter", (), float(getattr(stats, field)))
    for state, count in stats.by_state.items():
        yield Figure(
            "mcpconn_connections",
            "Connections by state.",
            "gauge",
            (("state", state.name),),
            float(count),
        )
    for server, s in stats.servers.items():
        labels = (("server", server),)
        parked = float(sum(n for st, n in s.by_state.items() if st.name == "NEEDS_REAUTH"))
        values = {
            "mcpconn_server_connections": s.connections,
            "mcpconn_server_parked": parked,
            "mcpconn_retry_budget_available": s.retry_budget_available,
            "mcpconn_retry_budget_exhausted": float(s.retry_budget_exhausted),
        }
        for name, (kind, text) in PER_SERVER.items():
            yield Figure(name, text, kind, labels, values[name])
