"""Content-Encoding decoded in bounded pieces: round trips, bombs, garbage, unknown codings."""

from __future__ import annotations

import gzip
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcpconn._core.content_coding import ACCEPT_ENCODING, ContentDecoder
from mcpconn._exceptions import ProtocolError


def deflate(data: bytes, wbits: int) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, wbits)
    return packer.compress(data) + packer.flush()


CODINGS = {
    "gzip": lambda data: gzip.compress(data),
    "x-gzip": lambda data: gzip.compress(data),
    "deflate": lambda data: deflate(data, 15),  # zlib-wrapped, as HTTP means it
    "Deflate ": lambda data: deflate(data, -15),  # raw deflate, as some servers send it
    "identity": lambda data: data,
    "": lambda data: data,
}


def decode(coding: str | None, body: bytes, cuts: list[int], max_piece: int) -> list[bytes]:
    decoder = ContentDecoder(coding, max_piece=max_piece)
    pieces: list[bytes] = []
    start = 0
    for cut in [*sorted(c % (len(body) + 1) for c in cuts), len(body)]:
        pieces += decoder.feed(body[start:cut])
        start = max(start, cut)
    return pieces


@settings(max_examples=150, deadline=None)
@given(
    data=st.binary(max_size=5000) | st.integers(0, 100_000).map(lambda n: b"a" * n),
    coding=st.sampled_from(sorted(CODINGS)),
    cuts=st.lists(st.integers(min_value=0), max_size=6),
    max_piece=st.integers(min_value=1, max_value=4096),
)
def test_any_body_in_any_chunking_decodes_in_bounded_pieces(
    data: bytes, coding: str, cuts: list[int], max_piece: int
) -> None:
    body = CODINGS[coding](data)
    pieces = decode(coding or None, body, cuts, max_piece)
    assert b"".join(pieces) == data
    if coding.strip() not in ("identity", ""):
        assert all(0 < len(piece) <= max_piece for piece in pieces)


def test_a_bomb_comes_out_one_bounded_piece_at_a_time() -> None:
    bomb = gzip.compress(b"\0" * (50 << 20))  # 50 MiB of zeros in ~50 KB
    assert len(bomb) < 100_000
    pieces = ContentDecoder("gzip", max_piece=64 << 10).feed(bomb)
    seen = 0
    for piece in pieces:
        assert len(piece) <= 64 << 10
        seen += len(piece)
        if seen > 1 << 20:  # the caller's limit: it stops pulling, nothing more inflates
            break
    assert seen <= (1 << 20) + (64 << 10)


@pytest.mark.parametrize("coding", ["br", "zstd", "compress", "gzip, gzip", "gzip, br", "x"])
def test_a_coding_we_did_not_accept_is_a_protocol_error(coding: str) -> None:
    with pytest.raises(ProtocolError, match="did not accept"):
        ContentDecoder(coding)


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
def test_garbage_that_does_not_decode_is_a_protocol_error(coding: str) -> None:
    decoder = ContentDecoder(coding)
    with pytest.raises(ProtocolError, match="does not decode"):
        list(decoder.feed(b"this is not compressed at all"))


def test_identity_codings_pass_through() -> None:
    assert list(ContentDecoder(None).feed(b"abc")) == [b"abc"]
    assert list(ContentDecoder("identity, IDENTITY").feed(b"abc")) == [b"abc"]
    assert list(ContentDecoder(None).feed(b"")) == []


def test_we_announce_what_we_decode() -> None:
    for coding in ACCEPT_ENCODING.split(", "):
        ContentDecoder(coding)


@pytest.mark.parametrize(
    ("coding", "identity"),
    [(None, True), ("", True), ("identity", True), (" Identity ", True), ("gzip", False),
     ("deflate", False)],
)  # fmt: skip
def test_identity_says_whether_a_body_is_as_sent(coding: str | None, identity: bool) -> None:
    assert ContentDecoder(coding).identity is identity
