"""W3C trace context for ``_meta``: the active OpenTelemetry span, when there is one.

The official SDK, fastmcp and mcp-go all propagate ``traceparent`` (and
``tracestate``) in a request's ``_meta``, so a downstream server's spans join
the aggregator's trace. OpenTelemetry is optional: without it, or without an
active span, nothing is added (an empty context is not even offered to the
propagators: ~2 us a call). A caller's own ``meta`` keys win.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["trace_meta"]

_KEYS = ("traceparent", "tracestate")


def _load() -> tuple[Callable[[dict[str, Any]], None], Callable[[], Any]] | None:
    try:
        from opentelemetry import context, propagate
    except ImportError:  # pragma: no cover - the otel extra is not installed
        return None
    return propagate.inject, context.get_current


_otel = _load()
_inject = _otel[0] if _otel else None
_current = _otel[1] if _otel else None


def trace_meta() -> dict[str, str]:
    """``traceparent``/``tracestate`` of the current context (empty when none is active)."""
    if _inject is None or _current is None:
        return {}
    if not _current():  # an empty context (no span, no baggage): nothing to propagate
        return {}
    carrier: dict[str, Any] = {}
    try:
        _inject(carrier)
    except Exception:  # a broken propagator must not fail the call
        return {}
    return {key: str(carrier[key]) for key in _KEYS if key in carrier}
