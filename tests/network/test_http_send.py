"""`mcpconn._http.send`: the short path keeps what httpx's client loop does that matters.

Auth flows (a retry on 401), cookies, request-carrying errors and httpx's log
line, over a real loopback server, against the short path and httpx's own.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import httpx
import pytest

from mcpconn._http import make_client
from mcpconn._http.send import send, short_path

TIMEOUT = httpx.Timeout(5)


@asynccontextmanager
async def server(answers: list[bytes], seen: list[bytes]) -> AsyncIterator[httpx.URL]:
    """Answers each request with the next of ``answers`` (keep-alive); records each head."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def serve(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            data = b""
            try:
                while answers:
                    while b"\r\n\r\n" not in data:
                        data += await stream.receive()
                    head, _, data = data.partition(b"\r\n\r\n")
                    seen.append(head.lower())
                    await stream.send(answers.pop(0))
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                pass

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, serve)
        yield httpx.URL(f"http://127.0.0.1:{port}/mcp")
        tg.cancel_scope.cancel()


def answer(status: int, body: bytes = b"", *headers: bytes) -> bytes:
    extra = b"".join(h + b"\r\n" for h in headers)
    return b"HTTP/1.1 %d X\r\ncontent-length: %d\r\n%s\r\n%s" % (status, len(body), extra, body)


class RetryOn401(httpx.Auth):
    def __init__(self) -> None:
        self.flows = 0

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        self.flows += 1
        request.headers["authorization"] = "Bearer first"
        response = yield request
        if response.status_code == 401:
            request.headers["authorization"] = "Bearer second"
            yield request


async def test_the_short_path_drives_the_auth_flow_and_retries_on_401() -> None:
    seen: list[bytes] = []
    answers = [answer(401, b"no"), answer(200, b"yes")]
    auth = RetryOn401()
    async with server(answers, seen) as url, make_client() as client:
        assert short_path(client)
        response = await send(
            client, "POST", url, headers={"x-a": "1"}, content=b"{}", auth=auth, timeout=TIMEOUT
        )
        assert response.status_code == 200
        assert await response.aread() == b"yes"
        await response.aclose()
    assert auth.flows == 1
    assert [b"bearer first" in h for h in seen] == [True, False]
    assert b"bearer second" in seen[1] and b"x-a: 1" in seen[1]
    assert b"user-agent: python-httpx" in seen[0]  # the client's default headers are kept


async def test_a_cookie_is_kept_and_sent_back_through_httpx() -> None:
    seen: list[bytes] = []
    answers = [answer(200, b"a", b"set-cookie: sticky=node7; Path=/"), answer(200, b"b")]
    async with server(answers, seen) as url, make_client() as client:
        for _ in range(2):
            response = await send(
                client, "GET", url, headers={}, content=None, auth=None, timeout=TIMEOUT
            )
            await response.aread()
            await response.aclose()
        assert not short_path(client)  # a cookie in the jar: httpx's loop sends it
    assert b"cookie: sticky=node7" not in seen[0]
    assert b"cookie: sticky=node7" in seen[1]


async def test_clients_the_short_path_cannot_serve_use_httpx() -> None:
    hooked: list[str] = []

    async def hook(request: httpx.Request) -> None:
        hooked.append(request.method)

    seen: list[bytes] = []
    async with (
        server([answer(200)], seen) as url,
        make_client(event_hooks={"request": [hook]}) as client,
    ):
        assert not short_path(client)
        response = await send(
            client, "GET", url, headers={}, content=None, auth=None, timeout=TIMEOUT
        )
        await response.aclose()
    assert hooked == ["GET"]
    async with httpx.AsyncClient() as plain:
        assert not short_path(plain)


async def test_errors_carry_their_request_and_the_log_line_is_httpx_s(
    caplog: pytest.LogCaptureFixture,
) -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()
    async with make_client() as client:
        with pytest.raises(httpx.ConnectError) as info:
            await send(
                client,
                "GET",
                httpx.URL(f"http://127.0.0.1:{port}/"),
                headers={},
                content=None,
                auth=None,
                timeout=TIMEOUT,
            )
        assert info.value.request.url.port == port
    seen: list[bytes] = []
    with caplog.at_level(logging.INFO, logger="httpx"):
        async with server([answer(204)], seen) as url, make_client() as client:
            response = await send(
                client, "GET", url, headers={}, content=None, auth=None, timeout=TIMEOUT
            )
            await response.aclose()
    assert any('"HTTP/1.1 204 X"' in r.getMessage() for r in caplog.records)


async def test_the_callers_headers_replace_the_clients_whatever_their_case() -> None:
    seen: list[bytes] = []
    async with (
        server([answer(200)], seen) as url,
        make_client(headers={"Accept": "x/y", "X-Team": "blue"}) as client,
    ):
        response = await send(
            client,
            "GET",
            url,
            headers={"accept": "text/event-stream"},
            content=None,
            auth=None,
            timeout=TIMEOUT,
        )
        await response.aclose()
    assert seen[0].count(b"\r\naccept:") == 1
    assert b"accept: text/event-stream" in seen[0] and b"x-team: blue" in seen[0]
