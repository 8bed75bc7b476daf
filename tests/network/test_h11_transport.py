"""H11Transport over real loopback sockets: reuse, bodies, breakage, timeouts, caps, TLS.

Against the small raw servers of raw_http.py, which make the edge cases exact. Every
test runs on asyncio and trio. Which transport a client gets: test_transport_choice.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import anyio.abc
import httpx
import pytest
from raw_http import Raw, Serve, client, keepalive, raw_server, read_request, response

from mcpconn._http import H11Transport, make_client


async def test_keep_alive_reuses_one_connection() -> None:
    ref: list[Raw] = []
    async with raw_server(keepalive(ref)) as raw, client() as (c, transport):
        ref.append(raw)
        for _ in range(3):
            got = await c.post(raw.url, content=b'{"a":1}')
            assert got.status_code == 200 and got.content == b"hello"
        assert raw.accepted == 1 and transport.sockets == 1
        pool = transport.origin(httpx.URL(raw.url))
        assert pool is not None and pool.idle == 1
        assert raw.requests[0].endswith(b'\r\n\r\n{"a":1}')


async def test_connection_close_is_not_reused() -> None:
    async def serve(stream: anyio.abc.SocketStream) -> None:
        await read_request(stream)
        await stream.send(response(b"bye", b"connection: close"))

    async with raw_server(serve) as raw, client() as (c, transport):
        assert (await c.get(raw.url)).content == b"bye"
        assert (await c.get(raw.url)).content == b"bye"
        assert raw.accepted == 2 and transport.sockets == 0


async def test_an_idle_connection_the_server_closed_is_not_reused() -> None:
    async def serve(stream: anyio.abc.SocketStream) -> None:
        await read_request(stream)
        await stream.send(response(b"once"))  # keep-alive promised, then closed

    async with raw_server(serve) as raw, client() as (c, transport):
        assert (await c.get(raw.url)).content == b"once"
        with anyio.fail_after(5):
            pool = transport.origin(httpx.URL(raw.url))
            assert pool is not None
            while True:  # the peer's FIN reaches our socket
                conn = pool._idle[-1]
                if conn.readable():
                    break
                await anyio.sleep(0.01)
        assert (await c.get(raw.url)).content == b"once"
        assert raw.accepted == 2


async def test_chunked_body_is_streamed_in_pieces() -> None:
    gate = anyio.Event()

    async def serve(stream: anyio.abc.SocketStream) -> None:
        await read_request(stream)
        await stream.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await gate.wait()
        await stream.send(b"6\r\nsecond\r\n0\r\n\r\n")

    async with raw_server(serve) as raw, client() as (c, transport):
        async with c.stream("GET", raw.url) as got:
            chunks = got.aiter_bytes()
            assert await chunks.__anext__() == b"first"  # before the rest was even sent
            gate.set()
            rest = [chunk async for chunk in chunks]
        assert b"".join(rest) == b"second"
        assert transport.sockets == 1  # complete: kept for reuse


async def test_streamed_request_body_arrives_whole() -> None:
    ref: list[Raw] = []

    async def body() -> AsyncIterator[bytes]:
        for i in range(3):
            yield b"part%d;" % i

    async with raw_server(keepalive(ref)) as raw, client() as (c, _transport):
        ref.append(raw)

        got = await c.post(raw.url, content=body(), headers={"content-length": "18"})
        assert got.content == b"hello"
        assert raw.requests[0].endswith(b"part0;part1;part2;")


@pytest.mark.parametrize(
    "sent",
    [b"", b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten b"],
    ids=["before-a-response", "mid-body"],
)
async def test_server_closing_early_is_a_protocol_error(sent: bytes) -> None:
    async def serve(stream: anyio.abc.SocketStream) -> None:
        await read_request(stream)
        if sent:
            await stream.send(sent)

    async with raw_server(serve) as raw, client() as (c, transport):
        with pytest.raises(httpx.RemoteProtocolError):
            await c.get(raw.url)
        assert transport.sockets == 0


async def test_a_stalled_server_is_a_read_timeout() -> None:
    async def serve(stream: anyio.abc.SocketStream) -> None:
        await read_request(stream)
        await anyio.sleep_forever()

    async with raw_server(serve) as raw, client() as (c, transport):
        with pytest.raises(httpx.ReadTimeout):
            await c.get(raw.url, timeout=httpx.Timeout(5, read=0.2))
        assert transport.sockets == 0


async def test_refused_connect_is_a_connect_error() -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()
    async with client() as (c, transport):
        with pytest.raises(httpx.ConnectError):
            await c.get(f"http://127.0.0.1:{port}/")
        assert transport.sockets == 0
        pool = transport.origin(httpx.URL(f"http://127.0.0.1:{port}/"))
        assert pool is not None and pool.sockets == 0


def _stream_then_stall(started: anyio.Event | None = None) -> Serve:
    async def serve(stream: anyio.abc.SocketStream) -> None:
        while True:
            request = await read_request(stream)
            if b"GET /mcp" in request:
                await stream.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                await stream.send(b"4\r\ndata\r\n")
                await anyio.sleep_forever()
            await stream.send(response(b"ok"))

    return serve


async def test_cancelling_a_reader_mid_body_closes_its_socket() -> None:
    async with raw_server(_stream_then_stall()) as raw, client() as (c, transport):
        got_data = anyio.Event()

        async def listen() -> None:
            async with c.stream("GET", raw.url) as got:
                async for _ in got.aiter_bytes():
                    got_data.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(listen)
            with anyio.fail_after(5):
                await got_data.wait()
            assert transport.sockets == 1
            tg.cancel_scope.cancel()
        assert transport.sockets == 0
        assert (await c.post(raw.url, content=b"x")).content == b"ok"
        assert raw.accepted == 2


async def test_closing_a_stream_from_another_task_stops_its_reader() -> None:
    async with raw_server(_stream_then_stall()) as raw, client() as (c, transport):
        opened: list[httpx.Response] = []
        got_data = anyio.Event()
        reader_error: list[BaseException] = []

        async def listen() -> None:
            async with c.stream("GET", raw.url) as got:
                opened.append(got)
                try:
                    async for _ in got.aiter_bytes():
                        got_data.set()
                except httpx.HTTPError as exc:
                    reader_error.append(exc)

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(listen)
                await got_data.wait()
                await opened[0].aclose()  # not the reader's task
        assert transport.sockets == 0
        assert len(reader_error) <= 1  # it ended, or saw the close as an httpx error


async def test_the_cap_per_origin_waits_then_fails_with_pool_timeout() -> None:
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=4)
    async with (
        raw_server(_stream_then_stall()) as raw,
        raw_server(keepalive([])) as other,
        client(limits=limits) as (c, transport),
    ):
        async with c.stream("GET", raw.url) as held:
            assert held.status_code == 200
            with pytest.raises(httpx.PoolTimeout):
                await c.post(raw.url, content=b"x", timeout=httpx.Timeout(5, pool=0.2))
            # another origin is not held up by this one's cap
            assert (await c.get(other.url)).content == b"hello"
        assert raw.accepted == 1
        assert (await c.post(raw.url, content=b"x")).content == b"ok"
        assert transport.sockets == 2


async def test_a_waiter_gets_the_socket_given_back() -> None:
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=4)
    async with raw_server(_stream_then_stall()) as raw, client(limits=limits) as (c, _transport):
        answers: list[bytes] = []

        async def second() -> None:
            answers.append((await c.post(raw.url, content=b"x")).content)

        async with anyio.create_task_group() as tg:
            async with c.stream("GET", raw.url):
                tg.start_soon(second)
                await anyio.wait_all_tasks_blocked()
                assert answers == []
        assert answers == [b"ok"]


async def test_tls_with_the_callers_context(tmp_path: Path) -> None:
    server_context, client_context = _tls_contexts(tmp_path)
    async with (
        raw_server(keepalive([]), tls=server_context) as raw,
        make_client(verify=client_context, timeout=5) as c,
    ):
        assert isinstance(c._transport, H11Transport)
        assert (await c.get(raw.url)).content == b"hello"
        assert (await c.get(raw.url)).content == b"hello"
        assert raw.accepted == 1


async def test_tls_with_an_unknown_certificate_is_a_connect_error(tmp_path: Path) -> None:
    server_context, _ = _tls_contexts(tmp_path)
    async with (
        raw_server(keepalive([]), tls=server_context) as raw,
        make_client(timeout=5) as c,
    ):
        with pytest.raises(httpx.ConnectError):
            await c.get(raw.url)


def _tls_contexts(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = tmp_path / "cert.pem"
    key_pem = tmp_path / "key.pem"
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_pem, key_pem)
    client_context = ssl.create_default_context(cafile=str(cert_pem))
    return server, client_context


async def test_a_server_that_never_reads_is_a_write_timeout() -> None:
    import socket

    # A listening socket nobody accepts from: the kernel takes the connection and fills
    # its buffers, then the client's write blocks (an anyio server on asyncio would
    # read everything into memory instead).
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = sock.getsockname()[1]
        async with client() as (c, transport):
            with pytest.raises(httpx.WriteTimeout):
                await c.post(
                    f"http://127.0.0.1:{port}/",
                    content=b"x" * (64 << 20),
                    timeout=httpx.Timeout(5, write=0.3),
                )
            assert transport.sockets == 0


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_an_ip_literal_and_a_host_name_connect_alike(host: str) -> None:
    """An IP literal skips anyio's happy eyeballs (`mcpconn._http.dial`); a name does not.
    Either way the socket sends small writes at once (TCP_NODELAY), its descriptor is the
    one the pool's liveness check polls, and it is reused."""
    ref: list[Raw] = []
    async with raw_server(keepalive(ref)) as raw, client() as (c, transport):
        ref.append(raw)
        url = raw.url.replace("127.0.0.1", host)
        for _ in range(2):
            got = await c.get(url)
            assert got.status_code == 200 and got.content == b"hello"
        assert raw.accepted == 1 and transport.sockets == 1
        (conn,) = transport._live
        sock = conn.stream.extra(anyio.abc.SocketAttribute.raw_socket)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        assert conn._fd == sock.fileno() >= 0
