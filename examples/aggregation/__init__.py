"""The parts of the reference aggregator (``examples/aggregator.py`` runs them as a process).

Read in this order:

- `routing` — `Aggregator`: who asks, their (server, principal) connections, the calls;
- `mcp_server` — the upstream SDK server whose handlers call the aggregator;
- `upstream` — the upstream request a downstream call serves (questions, progress, logs);
- `input_rounds` — 2026 multi-round-trip input passed up and brought back;
- `list_changes` — downstream ``list_changed`` told to that principal's clients only;
- `upstream_auth` — the HS256 JWT check whose ``sub`` is the principal;
- `shaping`, `limits` — conversions, and every bound in one place.
"""

from .mcp_server import build_server
from .routing import Aggregator
from .upstream_auth import JWTVerifier

__all__ = ["Aggregator", "JWTVerifier", "build_server"]
