"""The mock server's lean mode: one signature check per token, short answers in one send,
plain requests without h11: the same checks, and odd requests answered byte for byte alike."""

from __future__ import annotations

import gc
import json
import re
from typing import Any

import anyio
import anyio.abc
import h11
import pytest
from mock_client import hdrs, init_params, meta, modern, rpc

from mcpconn import ServerConfig, State, Supervisor, TokenSource
from mcpconn._http import make_client
from mcpconn.testing import Fault, JWTIssuer, JWTProvider, MockServer, _lean
from mcpconn.testing._events import encode_json
from mcpconn.testing._lean import few_collections
from mcpconn.testing._lean_http import _header_line


class CountingIssuer(JWTIssuer):
    """A real issuer that counts the signatures it checks."""

    def __init__(self) -> None:
        super().__init__()
        self.verified = 0

    def verify(self, raw: str, *, now: float | None = None) -> dict[str, Any]:
        self.verified += 1
        return super().verify(raw, now=now)


async def test_lean_checks_a_signature_once_and_serves_a_whole_client() -> None:
    issuer = CountingIssuer()
    async with (
        MockServer(issuer=issuer, lean=True, eras=["stateless"]) as server,
        TokenSource(JWTProvider(issuer, lifetime=60)) as tokens,
        Supervisor(tokens) as sup,
    ):
        conn = await sup.connect(ServerConfig("lean", server.url), "alice")
        with anyio.fail_after(10):
            await conn.wait_for(State.READY)
            await server.wait_for_streams(1)  # the subscriptions/listen stream
            seen: list[Any] = []
            async with conn.notifications() as notes:
                server.emit("notifications/tools/list_changed")
                async for note in notes:  # the acknowledgement may still be on its way
                    seen.append(note["method"])
                    if note["method"] != "notifications/subscriptions/acknowledged":
                        break
            progress: list[float] = []

            def on_progress(note: dict[str, Any]) -> None:
                progress.append(note["progress"])

            result = await conn.call_tool("progress", {"steps": 2}, on_progress=on_progress)
        assert seen[-1] == "notifications/tools/list_changed"
        assert result["isError"] is False and progress == [1, 2]
        stats = server.stats()
        assert stats.requests_total >= 3 and stats.by_status.keys() == {200}
        assert issuer.verified == 1  # one token, many requests


async def test_lean_still_judges_expiry_and_revocation() -> None:
    issuer = CountingIssuer()
    async with MockServer(issuer=issuer, lean=True) as server:
        token = server.mint("alice", lifetime=60)
        assert server.verified is not None
        claims = issuer.verify(token)
        server.verified.put(token, claims)
        assert server.verified.get(token, server.now()) == claims
        assert server.verified.get(token, claims["exp"]) is None  # expired: verify again


async def test_lean_judges_audience_expiry_and_revocation_on_every_request() -> None:
    issuer = CountingIssuer()
    async with (
        MockServer(issuer=issuer, lean=True, audience="api://mock") as server,
        make_client(timeout=5.0, trust_env=False) as client,
    ):
        token = server.mint("alice", lifetime=60)
        body = rpc(1, "initialize", init_params())

        async def status(raw: str) -> tuple[int, str]:
            response = await client.post(server.url, json=body, headers=hdrs(raw))
            return response.status_code, response.headers.get("www-authenticate", "")

        assert (await status(token))[0] == 200
        assert (await status(token))[0] == 200
        assert issuer.verified == 1  # remembered...
        elsewhere = issuer.mint("alice", lifetime=60, audience="api://other")
        code, challenge = await status(elsewhere)
        assert code == 401 and "token audience does not match" in challenge
        server.revoke("alice")
        code, challenge = await status(token)  # ...but judged every time
        assert code == 401 and "principal revoked" in challenge
        server.restore("alice")
        assert (await status(token))[0] == 200
        server.clock_offset = 120.0  # past the remembered token's expiry
        code, challenge = await status(token)
        assert code == 401 and "token expired" in challenge
        assert server.stats().expired_tokens_seen == 1
        server.clock_offset = 0.0
        assert (await status(token))[0] == 200


#: Raw requests, plain and not (a chunked body, HTTP/1.0, no Host, a bad header line,
#: obs-text, Expect, an oversized or conflicting Content-Length, Connection: close,
#: pipelining, a handover then a plain request on the same connection), with the number
#: of answers each gets and whether the server closes the connection after them.
_GET_NOPE = b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
_RAW_REQUESTS = [
    (_GET_NOPE, 1, False),
    (b"PUT /mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer TOKEN\r\n\r\n", 1, False),
    (b"POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", 1, False),
    (
        b"POST /mcp HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
        + _GET_NOPE,
        2,
        False,
    ),
    (b"GET /nope HTTP/1.0\r\n\r\n", 1, True),
    (b"GET /nope HTTP/1.1\r\n\r\n", 1, True),
    (b"GET /nope HTTP/1.1\r\nHost: x\r\nbad header\r\n\r\n", 1, True),
    (b"GET /nope HTTP/1.1\r\nHost: x\r\nX-Name: caf\xe9\r\n\r\n", 1, False),
    (b"GET /nope HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n", 1, False),
    (b"POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n", 1, True),
    (b"POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 1, True),
    (b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 1, True),
    (_GET_NOPE + _GET_NOPE + b"DELETE /nope HTTP/1.1\r\nHost: x\r\n\r\n", 3, False),
]


async def test_lean_answers_raw_requests_with_the_ordinary_servers_bytes() -> None:
    issuer = JWTIssuer()
    token = issuer.mint("alice", lifetime=600).encode()
    answers: dict[bool, list[bytes]] = {}
    for lean in (False, True):
        async with MockServer(issuer=issuer, lean=lean) as server:
            answers[lean] = []
            for raw, count, closes in _RAW_REQUESTS:
                got = await exchange_raw(server, raw.replace(b"TOKEN", token), count, closes)
                answers[lean].append(got.replace(str(server.port).encode(), b"PORT"))
    assert answers[True] == answers[False]
    not_found = b"HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\ncontent-length: 9\r\n"
    assert answers[True][0] == 2 * (not_found + b"\r\nnot found")  # kept alive


async def exchange_raw(server: MockServer, raw: bytes, count: int, closes: bool) -> bytes:
    """Send ``raw`` on a new connection and read its ``count`` (sized) answers; then the
    end of the connection, or (kept alive) the answer to one more plain request."""
    async with await anyio.connect_tcp(server.host, server.port) as stream:
        await stream.send(raw)
        with anyio.fail_after(5):
            out = await read_answers(stream, count)
            if closes:
                with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                    out += await stream.receive()
                return out
            await stream.send(_GET_NOPE)
            return await read_answers(stream, 1, out)


async def read_answers(stream: anyio.abc.SocketStream, count: int, data: bytes = b"") -> bytes:
    start = len(data)
    while _sized_answers(data[start:]) < count:
        data += await stream.receive()
    return data


def _sized_answers(data: bytes) -> int:
    count = pos = 0
    while (end := data.find(b"\r\n\r\n", pos)) >= 0:
        length = re.search(rb"content-length: *(\d+)", data[pos:end].lower())
        size = int(length.group(1)) if length else 0
        if len(data) < end + 4 + size:
            break
        count, pos = count + 1, end + 4 + size
    return count


async def test_lean_notices_a_client_that_leaves_mid_stream() -> None:
    async with MockServer(lean=True) as server:
        token = server.mint("alice")
        body = json.dumps(rpc(7, "subscriptions/listen", meta())).encode()
        head = "".join(f"{k}: {v}\r\n" for k, v in modern(token, "subscriptions/listen").items())
        request = (
            f"POST /mcp HTTP/1.1\r\nHost: x\r\n{head}Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        async with await anyio.connect_tcp(server.host, server.port) as stream:
            await stream.send(request)
            with anyio.fail_after(5):
                await server.wait_for_streams(1, principal="alice")
                assert b"notifications/subscriptions/acknowledged" in await stream.receive()
        with anyio.fail_after(5):
            await server.wait_until(lambda s: s.open_streams == 0)
        assert server.emit("notifications/tools/list_changed") == 0


_HEADER_CASES = [
    ("x-a", "v"),
    ("x-a", ""),
    ("x-a", "a b\tc"),
    ("x-a", "caf\xe9"),
    ("x-a", " lead"),
    ("x-a", "trail "),
    ("x-a", "a\r\nb"),
    ("x-a", "nul\x00"),
    ("bad name", "v"),
    ("", "v"),
    ("x:y", "v"),
]


def test_lean_writes_and_refuses_the_header_lines_h11_does() -> None:
    for name, value in _HEADER_CASES:
        conn = h11.Connection(h11.SERVER)
        conn.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        conn.next_event()
        headers = [(name.encode("latin-1"), value.encode("latin-1"))]
        try:
            head = conn.send(h11.Response(status_code=200, headers=headers))
        except h11.LocalProtocolError:
            with pytest.raises(h11.LocalProtocolError):
                _header_line(name, value)
        else:
            assert head is not None and _header_line(name, value) in head


def test_lean_json_is_the_stdlibs_wherever_orjson_would_differ() -> None:
    for value in (float("nan"), float("inf"), 2**70, {1: "a"}, None, [1.5, "x", True]):
        message = {"jsonrpc": "2.0", "id": 1, "result": {"v": value}}
        assert _lean.encode(message) == encode_json(message)
    accented = {"text": "caf\xe9"}  # UTF-8 rather than an escape: the same JSON
    assert json.loads(_lean.encode(accented)) == json.loads(encode_json(accented))
    for raw in (b'{"n": 123456789012345678901234567}', b'{"x": NaN}', b'{"s": "\\ud800"}'):
        assert repr(_lean.decode(raw)) == repr(json.loads(raw))


def test_few_collections_is_undone_on_exit() -> None:
    before = gc.get_threshold()
    with few_collections(threshold=12_345):
        assert gc.get_threshold()[0] == 12_345 and gc.get_freeze_count() > 0
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


#: Faults whose response h11 refuses: a header it will not write (refused before a byte),
#: a body on a 204 or 304 (refused once the head is taken), a status that is not final.
_REFUSED_FAULTS = [
    Fault.status(503, headers={"x-bad": "a\nb"}),
    Fault.status(503, headers={"bad name": "v"}),
    Fault.status(204),  # with the fault's default body
    Fault.status(304, body=b"x"),
    Fault.status(101),
]


@pytest.mark.parametrize("lean", [False, True], ids=["plain", "lean"])
@pytest.mark.parametrize("fault", _REFUSED_FAULTS, ids=["newline", "name", "204", "304", "101"])
async def test_a_response_h11_refuses_is_answered_500_by_both_servers(
    lean: bool, fault: Fault
) -> None:
    async with (
        MockServer(lean=lean, require_auth=False) as server,
        await anyio.connect_tcp(server.host, server.port) as other,
    ):
        server.faults.add(fault, times=1, path="/mcp")
        with anyio.fail_after(5):
            await server.wait_until(lambda s: s.open_connections == 1)  # ``other`` is served
            async with make_client() as client:
                response = await client.get(server.url)
            assert (response.status_code, response.content) == (500, b"internal error")
            await other.send(_GET_NOPE)  # the server still serves its other connections
            assert (await read_answers(other, 1)).startswith(b"HTTP/1.1 404 Not Found\r\n")


@pytest.mark.parametrize("lean", [False, True], ids=["plain", "lean"])
async def test_a_faults_own_framing_header_is_framed_as_h11_frames_it(lean: bool) -> None:
    # a second, different Content-Length is refused (500); Transfer-Encoding: chunked wins
    # over the length the server would write: the body arrives whole, never framed twice
    async with MockServer(lean=lean, require_auth=False) as server:
        server.faults.add(Fault.status(503, headers={"Content-Length": "5"}), times=1)
        server.faults.add(Fault.status(503, headers={"transfer-encoding": "chunked"}), times=1)
        with anyio.fail_after(5):
            async with make_client() as client:
                refused = await client.get(server.url)
                chunked = await client.get(server.url)
        assert (refused.status_code, refused.content) == (500, b"internal error")
        assert chunked.status_code == 503 and chunked.content == b"injected fault"
        assert chunked.headers["transfer-encoding"] == "chunked"
        assert "content-length" not in chunked.headers
        # the refused answer is recorded as the 500 it was, not as "no response" (0)
        assert [record.status for record in server.records] == [500, 503]
