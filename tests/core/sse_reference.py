"""What the SSE decoder tests compare against: the decoder driven in chunks, and the spec.

`reference` is the WHATWG event-stream algorithm written literally (decode everything,
split lines, interpret), so a property test can hold the bounded decoder to it.
"""

from __future__ import annotations

import contextlib
import re

from helpers.sse_lines import field
from mcpconn._core.sse import MAX_RETRY_MS, ServerSentEvent, SSEDecoder

Ev = tuple[str, str, str, int | None]


def ev(event: ServerSentEvent) -> Ev:
    return (event.event, event.data, event.id, event.retry)


def decode(stream: bytes, chunks: list[int] | None = None, **kwargs: object) -> list[Ev]:
    """Feed ``stream`` cut at ``chunks`` (offsets) and return every event as a tuple."""
    decoder = SSEDecoder(**kwargs)  # type: ignore[arg-type]
    cuts = sorted({c for c in (chunks or []) if 0 < c < len(stream)})
    out: list[Ev] = []
    start = 0
    for cut in [*cuts, len(stream)]:
        out += [ev(e) for e in decoder.feed(stream[start:cut])]
        start = cut
    out += [ev(e) for e in decoder.close()]
    return out


def reference(
    stream: bytes, *, dispatch_empty_data: bool = False
) -> tuple[list[Ev], str, int | None]:
    """The spec's algorithm, literally: decode everything, split lines, interpret."""
    text = stream.decode("utf-8", "replace")
    text = text.removeprefix("\ufeff")
    lines = re.split(r"\r\n|\r|\n", text)[:-1]  # the last piece is unterminated
    events: list[Ev] = []
    data: list[str] | None = None
    event_type = ""
    id_buffer = last_id = ""
    retry = event_retry = None
    for line in lines:
        if line == "":
            last_id = id_buffer
            if data is not None:
                joined = "\n".join(data)
                if joined or dispatch_empty_data:
                    events.append((event_type or "message", joined, last_id, event_retry))
            data, event_type, event_retry = None, "", None
            continue
        parsed = field(line)
        if parsed is None:
            continue
        name, value = parsed
        if name == "data":
            data = [*(data or []), value]
        elif name == "event":
            event_type = value
        elif name == "id" and "\0" not in value:
            id_buffer = value
        elif name == "retry" and value and all("0" <= c <= "9" for c in value):
            with contextlib.suppress(ValueError):  # too many digits for int()
                if int(value) <= MAX_RETRY_MS:  # our one bound on top of the spec
                    retry = event_retry = int(value)
    return events, last_id, retry
