"""Reusing a ``server/discover`` answer (2026-07-28): what is kept, for how long, when.

Theory of operation. A ``server/discover`` answer says how long it may be
reused (``ttlMs``) and by whom (``cacheScope``: ``"public"`` for every
principal, otherwise only the one that asked). The supervisor's era cache keeps
it as a `Discovery` so a reconnect need not ask again, but a reconnect must
still prove, before the session counts as open, that the server is reachable and
accepts our token. That proof is the era's listener when it is a request of ours
(`EraRules.listener` ``"subscriptions-listen"``), which the session sends next
anyway: opened during the handshake, accepted (2xx, SSE) means proven. Without a
listener (``listen=False``) nothing else proves it, so discover is asked.

The decisions are here, the I/O in the session (`mcpconn._mcp.opening`):

* `discovery_of`: the answer as a `Discovery`, or None when its ``ttlMs`` is not
  a usable positive integer (missing, 0, negative, a string, a bool, a fraction,
  ``10**400``). At most `MAX_DISCOVERY_TTL`, whatever the server says, and only
  what the hello reads (capabilities, instructions, server info): nothing else
  of a server's answer is held for an hour.
* `is_fresh`: whether a kept answer may still stand in for a new one.
* `may_reuse`: whether the era and the config let a proof stand in for discover.
* `proof_refused`: a failed proof that is the server refusing our token (raised
  as a refused discover would be) rather than a reason to ask discover after all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._exceptions import Forbidden, Unauthorized
from .bounds import json_int
from .eras import EraRules

__all__ = [
    "MAX_DISCOVERY_TTL",
    "SERVER_INFO_KEY",
    "Discovery",
    "discovery_of",
    "is_fresh",
    "may_reuse",
    "proof_refused",
]

#: Seconds a ``server/discover`` answer is reused at most, whatever its ``ttlMs``.
MAX_DISCOVERY_TTL = 3600.0
#: Where a ``server/discover`` answer carries the server's name and version.
SERVER_INFO_KEY = "io.modelcontextprotocol/serverInfo"
_KEPT = ("capabilities", "instructions")


@dataclass(frozen=True)
class Discovery:
    """A ``server/discover`` answer (what the hello reads of it), reusable until ``expires_at``."""

    version: str
    result: dict[str, Any]
    expires_at: float
    #: ``cacheScope: "public"``: every principal may reuse it, not only the one that asked.
    public: bool = False


def discovery_of(version: str, result: dict[str, Any], now: float) -> Discovery | None:
    """The answer as a reusable `Discovery` while its ``ttlMs`` lasts (None: not reusable)."""
    ttl_ms = json_int(result.get("ttlMs"), low=1)
    if ttl_ms is None:
        return None
    ttl = min(ttl_ms / 1000.0, MAX_DISCOVERY_TTL)
    kept: dict[str, Any] = {key: result[key] for key in _KEPT if key in result}
    meta = result.get("_meta")
    if isinstance(meta, dict) and SERVER_INFO_KEY in meta:
        kept["_meta"] = {SERVER_INFO_KEY: meta[SERVER_INFO_KEY]}
    return Discovery(version, kept, now + ttl, public=result.get("cacheScope") == "public")


def is_fresh(discovery: Discovery, now: float) -> bool:
    return now < discovery.expires_at


def may_reuse(rules: EraRules, *, listen: bool) -> bool:
    """Whether this era's handshake may stand on a kept answer, proven by the first listen."""
    return rules.handshake == "discover" and rules.listener == "subscriptions-listen" and listen


def proof_refused(error: BaseException) -> bool:
    """The proof failed because the server refused our token: raise it, as from discover.

    Anything else (a 5xx, a broken stream, -32601 "no listener") says nothing
    against the token: forget the kept answer and ask ``server/discover``.
    """
    return isinstance(error, Unauthorized | Forbidden)
