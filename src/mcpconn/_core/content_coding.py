"""Content-Encoding, decoded with bounded output: a small gzip body cannot become a huge one.

httpx decodes a compressed body one network read at a time, and each read is
inflated in full: a 200 KB gzip of zeros becomes 200 MB in memory before any
limit of ours sees a byte (gzip reaches ~1000:1). The shell therefore reads the
raw body and feeds it here; `ContentDecoder.feed` yields the decoded bytes in
pieces of at most ``max_piece``, so the caller's byte limits (`Limits`) stop a
bomb after at most one piece too many.

We announce what we decode (`ACCEPT_ENCODING`); a server that uses another
coding anyway is a `ProtocolError`, as is a body that does not decode.
Sans-IO and stdlib-only (zlib).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

from .._exceptions import ProtocolError

__all__ = ["ACCEPT_ENCODING", "ContentDecoder"]

#: What every request announces: the codings `ContentDecoder` reads.
ACCEPT_ENCODING = "gzip, deflate"
_MAX_PIECE = 64 << 10
# zlib wbits: gzip or zlib header detected (gzip), zlib header (deflate), none (raw).
_GZIP, _ZLIB, _RAW = 47, 15, -15


class ContentDecoder:
    """Decodes one response body's ``Content-Encoding`` (``None``/``identity``: as is)."""

    __slots__ = ("_coding", "_head", "_max", "_zlib")

    def __init__(self, content_encoding: str | None, *, max_piece: int = _MAX_PIECE) -> None:
        codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
        codings = [c for c in codings if c and c != "identity"]
        if len(codings) > 1 or (codings and codings[0] not in ("gzip", "x-gzip", "deflate")):
            # Not quoted: the header is the server's text.
            raise ProtocolError("the response uses a content coding we did not accept")
        self._coding = codings[0] if codings else None
        self._max = max_piece
        # "deflate" means zlib-wrapped, but some servers send it raw: until the two
        # header bytes have passed, keep them to restart as raw deflate.
        self._head: bytes | None = b"" if self._coding == "deflate" else None
        wbits = _ZLIB if self._coding == "deflate" else _GZIP
        self._zlib = zlib.decompressobj(wbits) if self._coding else None

    @property
    def identity(self) -> bool:
        """The body is as sent (no coding): `feed` hands back each piece as it is."""
        return self._zlib is None

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The decoded bytes ``data`` completes, in pieces of at most ``max_piece``."""
        if not data:
            return
        if self._zlib is None:
            yield data
            return
        if self._head is not None:
            self._head += data
        pending = data
        while True:
            try:
                piece = self._zlib.decompress(pending, self._max)
            except zlib.error as exc:
                if self._head is None:
                    raise ProtocolError(f"the {self._coding} body does not decode") from exc
                self._zlib, pending, self._head = zlib.decompressobj(_RAW), self._head, None
                continue
            if self._head is not None and len(self._head) >= 2:
                self._head = None  # a valid zlib header: later errors are real
            if piece:
                yield piece
            pending = self._zlib.unconsumed_tail
            if self._zlib.eof or (not pending and len(piece) < self._max):
                return
