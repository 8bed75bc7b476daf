"""Bodies that are small on the wire and huge in memory, over real loopback sockets.

The JSON and SSE limits count decoded bytes, but httpx inflates each network read
whole, and reads the whole body of a 401 it retries in place. A 200 KB gzip of
zeros used to take ~140 MiB before our limit saw it; a 60 MB 401 body took
~125 MiB. Now bodies are read raw and inflated in bounded pieces, and only a 401
declaring a small uncompressed body is retried in place.
"""

from __future__ import annotations

import gzip
import itertools
import json
import tracemalloc
import zlib
from typing import Any

import anyio
import pytest

import mcpconn
from mcpconn import Limits, State, Supervisor, TokenRequest, TokenSource
from mcpconn._core.content_coding import ACCEPT_ENCODING
from mcpconn.testing import JWTProvider, MockServer

from ._raw import FAST, RawRequest, config, head, init_result, no_leaks, raw_server

Stream = Any
LIMIT = 1 << 20


def gzip_bomb(size: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    return packer.compress(b"\0" * size) + packer.flush()


async def send_coded(stream: Stream, payload: bytes, coding: str) -> None:
    hdrs = {
        "content-type": "application/json",
        "content-encoding": coding,
        "content-length": str(len(payload)),
        "mcp-session-id": "raw-session",
    }
    await stream.send(head(200, hdrs) + payload)


async def test_a_gzip_reply_is_read_and_a_gzip_bomb_stops_at_the_limit() -> None:
    bomb = gzip_bomb(64 << 20)  # 64 MiB of zeros, 64 times the limit
    assert len(bomb) < 100_000

    async def initialize(stream: Stream, req: RawRequest) -> None:
        await send_coded(
            stream, gzip.compress(json.dumps(init_result(req.message)).encode()), "gzip"
        )

    async def call(stream: Stream, req: RawRequest) -> None:
        await send_coded(stream, bomb, "gzip")

    async with no_leaks(), raw_server(on_initialize=initialize, on_request=call) as raw:
        async with (
            MockServer() as issuer,
            TokenSource(JWTProvider(issuer.issuer)) as tokens,
            Supervisor(tokens, backoff=FAST) as sup,
        ):
            limits = Limits(max_json_response_bytes=LIMIT)
            conn = await sup.connect(config(raw.url, limits=limits, listen=False), "alice")
            with anyio.fail_after(10):
                await conn.wait_for(State.READY)  # the gzip initialize reply was read
                tracemalloc.start()
                try:
                    with pytest.raises(mcpconn.ProtocolError, match="exceeds the limit"):
                        await conn.call_tool("x", {})
                    _, peak = tracemalloc.get_traced_memory()
                finally:
                    tracemalloc.stop()
    assert peak < 16 << 20, f"peak traced memory {peak / 2**20:.1f} MiB"
    assert all(r.headers.get("accept-encoding") == ACCEPT_ENCODING for r in raw.requests)


@pytest.mark.parametrize(
    ("coding", "body", "match"),
    [
        ("gzip", b"not gzip at all", "does not decode"),
        ("br", b"\x0b\x02\x80{}\x03", "did not accept"),
        ("gzip, gzip", gzip.compress(gzip.compress(b"{}", mtime=0), mtime=0), "did not accept"),
    ],
)
async def test_a_body_that_does_not_decode_is_a_typed_error(
    coding: str, body: bytes, match: str
) -> None:
    async def initialize(stream: Stream, req: RawRequest) -> None:
        await send_coded(stream, body, coding)

    async with no_leaks(), raw_server(on_initialize=initialize) as raw:
        async with (
            MockServer() as issuer,
            TokenSource(JWTProvider(issuer.issuer)) as tokens,
            Supervisor(tokens, backoff=FAST) as sup,
        ):
            conn = await sup.connect(config(raw.url), "alice")
            changes = sup.state_changes()
            with anyio.fail_after(10):
                while not isinstance(conn.last_error, mcpconn.ProtocolError):
                    await changes.__anext__()
            await changes.aclose()
            assert match in str(conn.last_error)


async def test_a_huge_401_body_is_never_read() -> None:
    issued = itertools.count()

    async def provider(request: TokenRequest) -> str:
        return f"opaque-token-{next(issued):04d}-for-the-401-body-test"

    sent = [0]

    async def rejected(stream: Stream, req: RawRequest) -> None:
        hdrs = {"www-authenticate": "Bearer error=invalid_token", "content-length": str(60 << 20)}
        await stream.send(head(401, hdrs))
        chunk = b"x" * 65536
        try:
            for _ in range(60 << 4):
                await stream.send(chunk)
                sent[0] += len(chunk)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            return

    tracemalloc.start()
    try:
        async with no_leaks(), raw_server(on_initialize=rejected) as raw:
            async with TokenSource(provider) as tokens, Supervisor(tokens, backoff=FAST) as sup:
                conn = await sup.connect(config(raw.url), "alice")
                with anyio.fail_after(20):
                    await conn.wait_for(State.NEEDS_REAUTH)
                assert isinstance(conn.last_error, mcpconn.Unauthorized)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 24 << 20, f"peak traced memory {peak / 2**20:.1f} MiB"
    assert sent[0] < 20 << 20  # the client hung up instead of reading 60 MB per 401
