"""A JSON-RPC POST's request head, written here with h11 tracking only its framing.

h11 validates every header of every request it sends (about a tenth of a tool
call's client CPU, profiled: a dozen headers, most the same on every call).
`request_head` gives h11 an `h11.Request` with the request line and only the
headers its state machine reads (Host, Content-Length, Transfer-Encoding,
Connection, Upgrade, Expect), so h11 still frames the body and decides on
keep-alive, and writes the whole head itself: every other header checked
against the same RFC 9110 grammar h11 uses (a token name, a value without
CR, LF, NUL or edge whitespace), the check of a non-secret line remembered,
and h11's event (immutable) too, per distinct request line and framing.
A line that fails raises `h11.LocalProtocolError`, as h11 would.
"""

from __future__ import annotations

from collections.abc import Iterable

import h11

__all__ = ["request_head"]

#: RFC 9110's token characters (a header name) and a field value's (VCHAR, obs-text,
#: SP, HTAB): a line is checked by deleting them (``bytes.translate``, no regex over a
#: credential of hundreds of bytes on every request) and looking at what is left.
_TOKEN_BYTES = b"-!#$%&'*+.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_VALUE_BYTES = bytes(range(0x21, 0x7F)) + bytes(range(0x80, 0x100)) + b" \t"
_EDGE = (b" ", b"\t")
#: what h11's state machine reads from a request: handed to h11 (it validates them)
_FOR_H11 = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "upgrade", "expect"}
)
#: lines never remembered (a credential stays in no cache)
_SECRET = frozenset({"authorization", "proxy-authorization", "cookie"})
_MAX_REMEMBERED = 512
_checked: dict[tuple[str, str], bytes] = {}
_events: dict[tuple[bytes, bytes, tuple[tuple[bytes, bytes], ...]], h11.Request] = {}


def request_head(
    method: bytes, target: bytes, headers: Iterable[tuple[str, str]], host: bytes, length: int
) -> tuple[h11.Request, bytes]:
    """The event for h11 (``h11.send`` it, drop its bytes) and the head bytes to send.

    ``headers`` lack Host and Content-Length: ``host`` and ``length`` give them."""
    framing: list[tuple[bytes, bytes]] = [(b"host", host), (b"content-length", b"%d" % length)]
    lines = [b"Host: ", host, b"\r\nContent-Length: %d\r\n" % length]
    for name, value in headers:
        lower = name.lower()
        if lower in _FOR_H11:
            pair = (_ascii(name), _ascii(value))
            framing.append(pair)
            lines.append(b"%s: %s\r\n" % pair)
            continue
        line = _checked.get((name, value))
        if line is None:
            line = _line(name, value)
            if lower not in _SECRET:
                if len(_checked) >= _MAX_REMEMBERED:
                    _checked.clear()
                _checked[name, value] = line
        lines.append(line)
    lines.append(b"\r\n")
    raw = b"%s %s HTTP/1.1\r\n%s" % (method, target, b"".join(lines))
    return _event(method, target, framing), raw


def _event(method: bytes, target: bytes, framing: list[tuple[bytes, bytes]]) -> h11.Request:
    """h11's (immutable) event, validated by h11 once per distinct framing; a target with
    a query (which may carry a credential) is never remembered."""
    if b"?" in target:
        return h11.Request(method=method, target=target, headers=framing)
    key = (method, target, tuple(framing))
    event = _events.get(key)
    if event is None:
        event = h11.Request(method=method, target=target, headers=framing)
        if len(_events) >= _MAX_REMEMBERED:
            _events.clear()
        _events[key] = event
    return event


def _line(name: str, value: str) -> bytes:
    raw_name, raw_value = _ascii(name), _ascii(value)
    if not raw_name or raw_name.translate(None, _TOKEN_BYTES):
        raise h11.LocalProtocolError("Illegal header name")
    if raw_value.translate(None, _VALUE_BYTES) or raw_value[:1] in _EDGE or raw_value[-1:] in _EDGE:
        raise h11.LocalProtocolError("Illegal header value")
    return b"%s: %s\r\n" % (raw_name, raw_value)


def _ascii(text: str) -> bytes:
    try:
        return text.encode("ascii")
    except UnicodeEncodeError:
        raise h11.LocalProtocolError("a header that is not ASCII") from None
