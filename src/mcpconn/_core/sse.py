"""A bounded, incremental ``text/event-stream`` decoder: bytes in, events out.

Sans-IO and stdlib-only: the shell feeds whatever chunks the socket gives it
and gets back the `ServerSentEvent` values those bytes completed. Decoders such
as httpx-sse have no size limit of their own, so a hostile server could make
them buffer without end; this decoder refuses a line longer than
``max_line_bytes`` (checked as the bytes arrive, before any newline) and an
event whose data exceeds ``max_event_bytes``, by raising `SSELimitExceeded`.
After that the decoder is broken for good: close the stream.

Theory of operation (WHATWG HTML, "Interpreting an event stream"):

* Work on bytes. A line ends in CRLF, CR or LF; ``bytes.splitlines`` splits on
  exactly those three (unlike ``str.splitlines``). A CR that ends one chunk may
  be the first half of a CRLF whose LF opens the next chunk: we remember it and
  drop that LF. One UTF-8 BOM at the very start of the stream is stripped.
* Every field value is decoded with ``errors="replace"``. Line terminators,
  ``:`` and space are ASCII, so decoding per value gives the same text as
  decoding the whole stream first, as the spec does.
* ``data`` lines are joined with LF; ``id`` containing NUL is ignored; ``retry``
  counts only if it is all ASCII digits and at most `MAX_RETRY_MS` (read with
  `bounds.parse_digits`: 400 digits are ignored like any garbage, not an
  overflow); unknown fields and ``:`` comments are ignored.
* A blank line dispatches. First the "last event ID buffer" becomes
  `last_event_id`, *even when no event is dispatched*: this is how an MCP
  "priming event" (an id with no data) gives us a ``Last-Event-ID`` to resume
  with. Then, if the data is empty, nothing is dispatched.

One deliberate difference from the letter of the spec, for MCP: the spec
dispatches an event whose data is the empty string if it had a ``data:`` line
(``id: 7\\ndata:\\n\\n``, which is what the official SDK sends as a priming
event). Such an event is never an MCP message, so by default it is not
dispatched either; its id still updates `last_event_id`. Pass
``dispatch_empty_data=True`` for the exact WHATWG behaviour.

`retry` is the last valid ``retry:`` seen on the stream (milliseconds; ``0`` is
valid SSE, and whether it is a usable wait hint is `bounds.wait_hint`'s call); a
dispatched event's own ``retry`` is the one seen within that event, as in httpx-sse.
At the end of the stream (`close`) an unterminated line or event is discarded.
"""

from __future__ import annotations

from typing import NamedTuple

from .._exceptions import SSELimitExceeded
from .bounds import MAX_HINT_SECONDS, parse_digits

__all__ = ["MAX_RETRY_MS", "SSEDecoder", "ServerSentEvent"]

#: The largest ``retry:`` taken (milliseconds): the longest wait hint we believe.
MAX_RETRY_MS = int(MAX_HINT_SECONDS * 1000)

_BOM = b"\xef\xbb\xbf"
#: Builds an event without NamedTuple's Python-level ``__new__`` (once per event).
_event = tuple.__new__
_LF = 0x0A
_CR = 0x0D


class ServerSentEvent(NamedTuple):
    """One dispatched event. ``event`` is ``"message"`` when the stream named none."""

    event: str
    data: str
    id: str = ""
    retry: int | None = None


class SSEDecoder:
    """Incremental, bounded SSE decoder; any chunking of a stream gives the same events.

    Memory held between calls is `buffered_bytes`, at most
    ``max_event_bytes + 2 * max_line_bytes + 1`` (a pending line, the data so far,
    the event type), plus `last_event_id` (one line at most).
    """

    __slots__ = (
        "_bom_pending",
        "_cr",
        "_data",
        "_data_len",
        "_event",
        "_event_retry",
        "_failed",
        "_id_buffer",
        "_max_event",
        "_max_line",
        "_min_dispatch",
        "_more",
        "_pending",
        "last_event_id",
        "retry",
    )

    def __init__(
        self,
        *,
        max_line_bytes: int = 1 << 20,
        max_event_bytes: int = 4 << 20,
        last_event_id: str = "",
        dispatch_empty_data: bool = False,
    ) -> None:
        if max_line_bytes < 1 or max_event_bytes < 0:
            raise ValueError("SSE limits must be positive")
        self._max_line = max_line_bytes
        self._max_event = max_event_bytes
        # Joined data is empty when no data line was seen (len 0) or one empty
        # one (len 1, see _data_len); the spec dispatches the latter.
        self._min_dispatch = 0 if dispatch_empty_data else 1
        #: The id of the last dispatched (or priming) event: send it as Last-Event-ID.
        self.last_event_id: str = last_event_id
        #: The last ``retry:`` field seen on this stream, in milliseconds.
        self.retry: int | None = None
        self._id_buffer = last_event_id
        self._failed: tuple[str, int] | None = None
        self._reset_stream()

    def _reset_stream(self) -> None:
        # Byte buffers, not lists of pieces: many tiny pieces would cost far
        # more memory than the bytes they hold, and the limits count bytes.
        self._pending = bytearray()  # the unterminated line
        self._cr = False  # the previous chunk ended in CR: drop a leading LF
        self._bom_pending = True
        self._reset_event()

    def _reset_event(self) -> None:
        self._data = b""  # the first data line (the common case: one line)
        self._more: bytearray | None = None  # all data lines, once there are two
        self._data_len = 0  # sum of len(line) + 1 over data lines
        self._event = b""
        self._event_retry: int | None = None

    @property
    def buffered_bytes(self) -> int:
        """Bytes held between calls: the pending line, the event's data and type."""
        return len(self._pending) + self._data_len + len(self._event)

    def _fail(self, what: str, limit: int) -> SSELimitExceeded:
        self._failed = (what, limit)
        self._reset_stream()
        return SSELimitExceeded(what, limit)

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Consume ``chunk``; return the events it completed, in order.

        Raises `SSELimitExceeded` (and keeps raising it) once a limit is broken;
        the events completed in that same chunk are dropped with the stream.
        """
        if self._failed is not None:
            raise SSELimitExceeded(*self._failed)
        if not chunk:
            return []
        if self._cr:
            self._cr = False
            if chunk[0] == _LF:
                chunk = chunk[1:]
                if not chunk:
                    return []
        pending = self._pending
        if self._bom_pending:
            head = bytes(pending) + chunk
            if len(head) < 3 and _BOM.startswith(head):
                self._pending = bytearray(head)
                return []
            self._bom_pending = False
            chunk = head[3:] if head.startswith(_BOM) else head
            pending = self._pending = bytearray()
            if not chunk:
                return []
        max_line = self._max_line
        if b"\n" not in chunk and b"\r" not in chunk:
            # No line end yet: keep the bytes, but refuse to keep too many.
            if len(pending) + len(chunk) > max_line:
                raise self._fail("line", max_line)
            pending += chunk
            return []
        # bytes, not the transport's bytearray: slicing and comparing bytes is cheaper.
        data = b"".join((pending, chunk)) if pending else bytes(chunk)
        if b"\r" in data:
            unix = data.replace(b"\r\n", b"\n")  # CRLF servers (the official SDK's)
            if b"\r" in unix:  # a lone CR, or one that may pair with the next chunk's LF
                return self._lines(self._split_any(data))
            data = unix
        # The common case: LF only. One C-level split over the whole chunk; its last
        # piece is the unterminated line (b"" when the chunk ends in LF).
        lines = data.split(b"\n")
        rest = lines.pop()
        self._pending = bytearray(rest)
        if len(data) > max_line and (len(rest) > max_line or max(map(len, lines)) > max_line):
            raise self._fail("line", max_line)
        return self._lines(lines)

    def _split_any(self, data: bytes) -> list[bytes]:
        """Lines ended by CRLF, CR or LF (``bytes.splitlines``), the rest kept pending."""
        lines = data.splitlines()
        last = data[-1]
        if last in (_CR, _LF):
            self._cr = last == _CR
            self._pending = bytearray()
        else:
            self._pending = bytearray(lines.pop())
        max_line = self._max_line
        if len(data) > max_line and (
            len(self._pending) > max_line or (lines and max(map(len, lines)) > max_line)
        ):
            raise self._fail("line", max_line)
        return lines

    def _lines(self, lines: list[bytes]) -> list[ServerSentEvent]:
        # The hot loop: state lives in locals and is written back at the end; the
        # usual fields (``data: ``, ``id: ``, ``event: message``) are matched whole
        # before the general ``name: value`` split.
        events: list[ServerSentEvent] = []
        data = self._data
        more = self._more
        data_len = self._data_len
        event = self._event
        event_retry = self._event_retry
        id_buffer = self._id_buffer
        min_dispatch = self._min_dispatch
        limit = self._max_event + 1  # data_len counts one LF too many
        for line in lines:
            if not line:
                self.last_event_id = id_buffer
                if data_len > min_dispatch:
                    text = (data if more is None else more).decode("utf-8", "replace")
                    if not event or event == b"message":
                        kind = "message"
                    else:
                        kind = event.decode("utf-8", "replace")
                    events.append(_event(ServerSentEvent, (kind, text, id_buffer, event_retry)))
                if data_len:
                    data = b""
                    more = None
                    data_len = 0
                event = b""
                event_retry = None
                continue
            if line.startswith(b"data:"):
                name = b"data"
                value = line[6:] if line.startswith(b" ", 5) else line[5:]
            elif line == b"event: message":
                event = b"message"
                continue
            elif line.startswith(b"id: "):
                name = b"id"
                value = line[4:]
            else:
                name, colon, value = line.partition(b":")
                if colon:
                    if not name:
                        continue  # a comment
                    if value.startswith(b" "):
                        value = value[1:]
            if name == b"data":
                data_len += len(value) + 1
                if data_len > limit:
                    raise self._fail("event", self._max_event)
                if data_len == len(value) + 1:  # the first data line
                    data = value
                else:
                    if more is None:
                        more = bytearray(data)
                    more += b"\n"
                    more += value
            elif name == b"id":
                if b"\0" not in value:
                    id_buffer = value.decode("utf-8", "replace")
            elif name == b"event":
                event = value
            elif name == b"retry":
                retry = parse_digits(value, high=MAX_RETRY_MS)
                if retry is not None:
                    self.retry = event_retry = retry
        self._data = data
        self._more = more
        self._data_len = data_len
        self._event = event
        self._event_retry = event_retry
        self._id_buffer = id_buffer
        return events

    def close(self) -> list[ServerSentEvent]:
        """End of stream: discard any unterminated line and event (per the spec).

        Always returns ``[]``; `last_event_id` and `retry` survive, and the
        decoder is ready for the next stream (a reconnection).
        """
        if self._failed is None:
            self._reset_stream()
        return []
