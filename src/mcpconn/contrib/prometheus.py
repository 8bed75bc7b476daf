"""Prometheus collector for a `Supervisor` (needs ``pip install mcpconn[prometheus]``).

    from prometheus_client import REGISTRY
    REGISTRY.register(SupervisorCollector(sup))

The collector reads `Supervisor.statistics()` at scrape time: nothing is
updated on the hot path.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

try:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "mcpconn.contrib.prometheus needs prometheus-client: pip install 'mcpconn[prometheus]'"
    ) from exc

from ._figures import figures

if TYPE_CHECKING:
    from .._supervision.supervisor import Supervisor


class SupervisorCollector:
    """A custom collector: one scrape, one statistics snapshot."""

    def __init__(self, supervisor: Supervisor) -> None:
        self._supervisor = supervisor

    def describe(self) -> list[Any]:
        return []  # unchecked collector: families depend on the servers seen

    def collect(self) -> Iterator[Any]:
        families: dict[str, Any] = {}
        for fig in figures(self._supervisor.statistics()):
            family = families.get(fig.name)
            if family is None:
                label_names = [name for name, _ in fig.labels]
                # prometheus_client appends _total to counters itself
                if fig.kind == "counter":
                    family = CounterMetricFamily(fig.name, fig.help, labels=label_names)
                else:
                    family = GaugeMetricFamily(fig.name, fig.help, labels=label_names)
                families[fig.name] = family
            family.add_metric([value for _, value in fig.labels], fig.value)
        yield from families.values()
