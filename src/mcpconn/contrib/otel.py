"""OpenTelemetry metrics for a `Supervisor` (needs ``pip install mcpconn[otel]``).

    from opentelemetry import metrics
    instrument(sup, metrics.get_meter("mcpconn"))

Observable instruments read `Supervisor.statistics()` at collection time.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

try:
    from opentelemetry.metrics import CallbackOptions, Meter, Observation
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "mcpconn.contrib.otel needs opentelemetry-api: pip install 'mcpconn[otel]'"
    ) from exc

from ._figures import PER_SERVER, figures

if TYPE_CHECKING:
    from .._supervision.supervisor import Supervisor


def instrument(supervisor: Supervisor, meter: Meter) -> list[Any]:
    """Register one observable instrument per figure name; returns the instruments."""
    names: dict[str, tuple[str, str]] = {}
    for fig in figures(supervisor.statistics()):
        names.setdefault(fig.name, (fig.kind, fig.help))
    for name, kind_and_help in PER_SERVER.items():  # they appear once servers are known
        names.setdefault(name, kind_and_help)

    def callback_for(name: str) -> Any:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            return [
                Observation(fig.value, dict(fig.labels))
                for fig in figures(supervisor.statistics())
                if fig.name == name
            ]

        return observe

    instruments = []
    for name, (kind, text) in sorted(names.items()):
        make = (
            meter.create_observable_counter if kind == "counter" else meter.create_observable_gauge
        )
        instruments.append(make(name, callbacks=[callback_for(name)], description=text))
    return instruments
