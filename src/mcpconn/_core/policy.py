"""The reconnection policy: one object, validated when it is built.

Everything that decides how often a connection may knock on a server lives
here: the backoff curve (`Backoff`), the per-server budgets (`StormControl`),
the jitter that spreads wake-ups, how long a session or stream must last to
count as productive, and the optional slow probe of parked connections. A
value that would make a connection spin (a zero probe interval, a NaN) is
refused at construction, not discovered in production.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .backoff import Backoff
from .settings import number

__all__ = ["ReconnectPolicy", "StormControl"]


def _positive(name: str, value: float) -> None:
    number(value, name, above=True)


def _non_negative(name: str, value: float) -> None:
    number(value, name)


@dataclass(frozen=True)
class StormControl:
    """Per-server limits shared by all of that server's connections.

    ``retry_rate``/``retry_burst``: a token bucket every reconnect draws from
    (gRPC/Finagle-style retry budget); when it is empty a retry waits its turn
    instead of joining a stampede. ``connect_rate``/``connect_burst``: start-up
    connects are staggered the same way.
    """

    retry_rate: float = 20.0
    retry_burst: float = 100.0
    connect_rate: float = 200.0
    connect_burst: float = 100.0

    def __post_init__(self) -> None:
        _positive("retry_rate", self.retry_rate)
        _positive("connect_rate", self.connect_rate)
        number(self.retry_burst, "retry_burst", low=1)
        number(self.connect_burst, "connect_burst", low=1)


@dataclass(frozen=True)
class ReconnectPolicy:
    """How a supervisor's connections reconnect.

    ``backoff``: the curve and its limits (a `ServerConfig` may bring its own).
    ``storm_control``: the per-server budgets. ``wake_jitter``: seconds (uniform)
    spreading the reconnects a published token wakes. ``productive_after``: seconds
    a session or listener stream must last before the curve starts over.
    ``probe_interval``: seconds between slow re-checks of parked connections
    (``None``: never; a parked connection waits for a published token).
    """

    backoff: Backoff = field(default_factory=Backoff)
    storm_control: StormControl = field(default_factory=StormControl)
    wake_jitter: float = 0.25
    productive_after: float = 60.0
    probe_interval: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.backoff, Backoff):
            raise TypeError("backoff must be a Backoff")
        if not isinstance(self.storm_control, StormControl):
            raise TypeError("storm_control must be a StormControl")
        _non_negative("wake_jitter", self.wake_jitter)
        _positive("productive_after", self.productive_after)
        if self.probe_interval is not None:
            _positive("probe_interval", self.probe_interval)
