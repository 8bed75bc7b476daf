"""The bounded SSE decoder against the WHATWG event-stream rules and its own limits."""

from __future__ import annotations

import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sse_reference import decode, ev, reference

from mcpconn._core import sse as _sse
from mcpconn._core.sse import SSEDecoder
from mcpconn._exceptions import ProtocolError, SSELimitExceeded

# --- WHATWG examples -------------------------------------------------------


def test_spec_example_multiline_data() -> None:
    stream = b"data: YHOO\ndata: +2\ndata: 10\n\n"
    assert decode(stream) == [("message", "YHOO\n+2\n10", "", None)]


def test_spec_example_ids_and_unterminated_last_event() -> None:
    stream = (
        b": test stream\n\ndata: first event\nid: 1\n\n"
        b"data:second event\nid\n\ndata:  third event\n"
    )
    decoder = SSEDecoder()
    events = [ev(e) for e in decoder.feed(stream)]
    assert events == [("message", "first event", "1", None), ("message", "second event", "", None)]
    assert decoder.close() == []
    assert decoder.last_event_id == ""  # the bare `id` reset it


def test_spec_example_empty_data_events_strict() -> None:
    stream = b"data\n\ndata\ndata\n\ndata:"
    assert decode(stream, dispatch_empty_data=True) == [
        ("message", "", "", None),
        ("message", "\n", "", None),
    ]
    # MCP default: an event whose data is the empty string is not a message.
    assert decode(stream) == [("message", "\n", "", None)]


def test_spec_example_one_space_removed() -> None:
    assert decode(b"data:test\n\ndata: test\n\n") == [("message", "test", "", None)] * 2
    assert decode(b"data:  two\n\n") == [("message", " two", "", None)]


# --- limits ------------------------------------------------------------------


def test_line_at_limit_passes_and_one_more_fails() -> None:
    assert decode(b"data: " + b"x" * 10 + b"\n\n", max_line_bytes=16) == [
        ("message", "x" * 10, "", None)
    ]
    with pytest.raises(SSELimitExceeded) as info:
        decode(b"data: " + b"x" * 11 + b"\n\n", max_line_bytes=16)
    assert (info.value.what, info.value.limit) == ("line", 16)
    assert isinstance(info.value, ProtocolError)


def test_long_line_detected_before_its_newline() -> None:
    decoder = SSEDecoder(max_line_bytes=100)
    decoder.feed(b"data: " + b"x" * 90)
    with pytest.raises(SSELimitExceeded):
        decoder.feed(b"x" * 5)  # 101 bytes pending, no newline yet
    assert decoder.buffered_bytes == 0


def test_long_unterminated_tail_in_a_chunk_with_newlines() -> None:
    decoder = SSEDecoder(max_line_bytes=100)
    with pytest.raises(SSELimitExceeded):
        decoder.feed(b"data: a\n\n" + b"y" * 101)


def test_one_byte_chunks_never_buffer_past_the_limit() -> None:
    decoder = SSEDecoder(max_line_bytes=64)
    with pytest.raises(SSELimitExceeded):  # noqa: PT012
        for _ in range(1000):
            decoder.feed(b"z")
            assert decoder.buffered_bytes <= 64


def test_event_data_limit_across_lines() -> None:
    ok = b"data: 12345\ndata: 1234\n\n"  # "12345\n1234" is 10 bytes
    assert decode(ok, max_event_bytes=10) == [("message", "12345\n1234", "", None)]
    with pytest.raises(SSELimitExceeded) as info:
        decode(b"data: 12345\ndata: 12345\n\n", max_event_bytes=10)
    assert (info.value.what, info.value.limit) == ("event", 10)


def test_event_limit_is_per_event() -> None:
    stream = b"data: 1234567890\n\n" * 50
    assert len(decode(stream, max_event_bytes=10)) == 50


def test_real_memory_tracks_buffered_bytes() -> None:
    """Many tiny lines or chunks must not cost an object each: the limits count bytes."""
    lines = [b"data: x\n" * 1000] * 20  # one event of 20k one-byte data lines
    pieces = [b"ab"] * 10_000  # a 20 kB line arriving two bytes at a time
    decoder = SSEDecoder()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for chunk in lines:
            decoder.feed(chunk)
        for chunk in pieces:
            decoder.feed(chunk)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert decoder.buffered_bytes == 40_000 + 20_000
    assert held < 2 * decoder.buffered_bytes


def test_failure_is_sticky() -> None:
    decoder = SSEDecoder(max_line_bytes=8)
    with pytest.raises(SSELimitExceeded):
        decoder.feed(b"123456789")
    with pytest.raises(SSELimitExceeded):
        decoder.feed(b"data: a\n\n")
    assert decoder.close() == []
    with pytest.raises(SSELimitExceeded):
        decoder.feed(b"data: a\n\n")


def test_bad_limits_rejected() -> None:
    with pytest.raises(ValueError, match="positive"):
        SSEDecoder(max_line_bytes=0)


@pytest.mark.parametrize("eol", [b"\n", b"\r\n"])
def test_usual_fields_and_bytearray_chunks(eol: bytes) -> None:
    """The fast paths (``data: ``, ``id: ``, ``event: message``, the transport's
    bytearrays, CRLF folded to LF) give what the general rules give."""
    lines = [b"id: 1", b"event: message", b"data: {}", b"", b"id:2", b"event: messages"]
    lines += [b"data:x", b"data", b"", b"event: message", b"data:  y", b"", b""]
    stream = eol.join(lines)
    expected = [("message", "{}", "1", None), ("messages", "x\n", "2", None)]
    expected.append(("message", " y", "2", None))
    assert decode(stream) == expected
    decoder = SSEDecoder()
    got = [
        ev(e) for i in range(0, len(stream), 7) for e in decoder.feed(bytearray(stream[i : i + 7]))
    ]
    assert got == expected


def test_module_exports() -> None:
    assert _sse.__all__ == ["MAX_RETRY_MS", "SSEDecoder", "ServerSentEvent"]


# --- properties ----------------------------------------------------------------

FRAGMENTS = [
    b"data",
    b"data:",
    b"data: ",
    b"id:",
    b"id: ",
    b"event:",
    b"event: ",
    b"event: message",
    b"message",
    b"retry:",
    b"retry: ",
    b":",
    b" ",
    b"\r",
    b"\n",
    b"\r\n",
    b"\n\n",
    b"x",
    b"12",
    b"\xef\xbb\xbf",
    b"\x00",
    b"\xff",
    b"\xe2\x82",
    "\u00e9\U0001f600".encode(),
]
streams = st.one_of(
    st.lists(st.sampled_from(FRAGMENTS), max_size=60).map(b"".join),
    st.binary(max_size=300),
)
cut_points = st.lists(st.integers(min_value=0, max_value=400), max_size=30)


@settings(max_examples=300, deadline=None)
@given(stream=streams, cuts=cut_points, strict=st.booleans())
def test_chunking_never_changes_the_events(stream: bytes, cuts: list[int], strict: bool) -> None:
    whole = SSEDecoder(dispatch_empty_data=strict)
    whole_events = [ev(e) for e in whole.feed(stream)]
    expected, last_id, retry = reference(stream, dispatch_empty_data=strict)
    assert whole_events == expected
    assert (whole.last_event_id, whole.retry) == (last_id, retry)
    assert decode(stream, cuts, dispatch_empty_data=strict) == expected


@settings(max_examples=300, deadline=None)
@given(stream=streams, cuts=cut_points)
def test_limits_hold_for_any_input(stream: bytes, cuts: list[int]) -> None:
    max_line, max_event = 8, 12
    bound = max_event + 2 * max_line + 1
    decoder = SSEDecoder(max_line_bytes=max_line, max_event_bytes=max_event)
    raised = False
    start = 0
    for cut in [*sorted(c for c in cuts if c < len(stream)), len(stream)]:
        try:
            decoder.feed(stream[start:cut])
        except SSELimitExceeded:
            raised = True
            break
        finally:
            assert decoder.buffered_bytes <= bound
        start = max(start, cut)
    decoder.close()
    # Whether a limit is broken depends on the stream, never on its chunking.
    try:
        SSEDecoder(max_line_bytes=max_line, max_event_bytes=max_event).feed(stream)
    except SSELimitExceeded:
        assert raised
    else:
        assert not raised
