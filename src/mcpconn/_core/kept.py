"""An error kept for later keeps its data, not the frames it was raised through.

A connection keeps its last error (``last_error``) for as long as it stays in
its state: a thousand listeners parked after a 401 keep a thousand. An
exception's ``__traceback__`` holds every frame it passed through, and each
frame its locals: the request and its headers (the bearer token among them),
the response, the closures and scopes of the code that ran. Kept, those are a
few dozen objects per connection that every full garbage collection walks (in
a burst of reconnects the collector was most of the client's CPU) and
credentials alive long after they were replaced. `without_frames` drops the
tracebacks of an error and of every error chained to it (its cause, its
context, an exception group's members) and keeps everything else: type,
message, attributes, the chain itself. Only for an error whose raising is over
(one nobody re-raises); a traceback the embedder will see is left alone.
"""

from __future__ import annotations

from typing import TypeVar

__all__ = ["without_frames"]

E = TypeVar("E", bound=BaseException)

#: Chained errors looked at, at most (a chain is a handful; a hostile loop is not ours).
_MAX_CHAINED = 64


def without_frames(error: E) -> E:
    """``error`` itself, its traceback and those of the errors chained to it dropped."""
    stack: list[BaseException] = [error]
    seen: set[int] = set()
    while stack and len(seen) < _MAX_CHAINED:
        exc = stack.pop()
        if id(exc) in seen:
            continue
        seen.add(id(exc))
        exc.__traceback__ = None
        for linked in (exc.__cause__, exc.__context__):
            if linked is not None:
                stack.append(linked)
        if isinstance(exc, BaseExceptionGroup):
            stack.extend(exc.exceptions)
    return error
