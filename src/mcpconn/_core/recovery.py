"""What a session does about a failed request or listener: decided here, done by the session.

Sans-IO, in the shape of tenacity's ``iter()``: `recover` looks at the era's
rules, the error and what this call already tried, and returns the one step to
take (`Recovery`) or None (raise the error as it is). The session only carries
the step out and asks again. Each step is taken at most once per call, so no
server can keep a call looping.

* `Recovery.REINITIALIZE`: the server forgot our ``Mcp-Session-Id`` (a 404 on a
  request that carried it). Initialize again (single-flight across concurrent
  callers), then re-issue the request; for the listener, end it with
  `SessionReinitialized` (listen again at once). Never for ``initialize`` itself.
* `Recovery.REISSUE`: the response stream broke after the request left
  (`StreamLost`) in an era without resumption: send it again with a new id.
* `Recovery.RELIST_TOOLS`: HeaderMismatch on ``tools/call``: the tools'
  ``x-mcp-header`` annotations may have changed; re-read ``tools/list``, retry.
"""

from __future__ import annotations

import enum
from collections.abc import Collection

from .._exceptions import JSONRPCError, SessionExpired
from .eras import HEADER_MISMATCH, EraRules, StreamLost

__all__ = ["LISTENER", "Recovery", "recover"]

#: The ``method`` of the listener stream (it is no request of ours).
LISTENER = None


class Recovery(enum.Enum):
    """One step of recovery, carried out by the session before it tries again."""

    REINITIALIZE = "reinitialize"
    REISSUE = "reissue"
    RELIST_TOOLS = "relist-tools"


def recover(
    rules: EraRules,
    error: BaseException,
    *,
    method: str | None,
    tried: Collection[Recovery] = (),
) -> Recovery | None:
    """The step to take about ``error`` from ``method`` (`LISTENER`: the listener).

    ``tried`` holds the steps this call already took; a step is never taken twice.
    """
    step = _step(rules, error, method)
    return None if step is None or step in tried else step


def _step(rules: EraRules, error: BaseException, method: str | None) -> Recovery | None:
    if isinstance(error, SessionExpired):
        if rules.reinitialize_on_expiry and method != "initialize":
            return Recovery.REINITIALIZE
        return None
    if method is LISTENER:
        return None  # the listener only ever re-initializes
    if isinstance(error, StreamLost):
        return Recovery.REISSUE if rules.reissue_lost_stream else None
    if (
        isinstance(error, JSONRPCError)
        and error.code == HEADER_MISMATCH
        and method == "tools/call"
        and rules.relist_on_header_mismatch
    ):
        return Recovery.RELIST_TOOLS
    return None
