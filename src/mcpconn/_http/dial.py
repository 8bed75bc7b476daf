"""Opening a TCP (and TLS) stream for `H11Transport`: an IP literal needs no happy eyeballs.

`anyio.connect_tcp` runs every connect in a task group, with a task, an event
and a timeout scope per address tried, even when the host is an IP literal
and there is one address to try. A burst of reconnects (one publish waking a
thousand parked listeners) pays that a thousand times over, mostly as garbage
to collect. Here an IP literal gets one non-blocking socket, one wait for it
to become writable (none when it already is: a loopback handshake ends inside
the connect call) and a stream; a host name still goes through
`anyio.connect_tcp` (resolution, IPv6 first, happy eyeballs). Whether a host is
a literal is remembered per host (a reconnect asks about the same few), and the
socket's descriptor comes back with the stream: the pool's liveness check needs
it, and anyio's typed-attribute lookup builds a table of lambdas per call.
Plain TCP on asyncio gets a `LoopStream` (reading left on between receives).
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import os
import select
import socket
import ssl

import anyio
import anyio.abc
from anyio.streams.tls import TLSStream

from .loopstream import open_loop_stream

__all__ = ["dial"]

_IN_PROGRESS = (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN)
_MAX_REMEMBERED = 256
#: host -> (address family, the address as connect takes it), or None: not a literal
_literals: dict[str, tuple[int, str] | None] = {}


async def dial(
    host: str, port: int, ssl_context: ssl.SSLContext | None
) -> tuple[anyio.abc.ByteStream, int]:
    """A connected stream to ``host:port`` and its socket's descriptor (-1: unknown), TLS
    on it when ``ssl_context`` is given (the certificate checked against ``host``, no TLS
    goodbye awaited on close)."""
    literal = _literal(host)
    if literal is None:
        if ssl_context is None:
            stream: anyio.abc.ByteStream = await anyio.connect_tcp(host, port)
        else:
            stream = await anyio.connect_tcp(
                host,
                port,
                ssl_context=ssl_context,
                tls_hostname=host,
                tls_standard_compatible=False,
            )
        sock = stream.extra(anyio.abc.SocketAttribute.raw_socket, None)
        return stream, sock.fileno() if sock is not None else -1
    stream, fd = await _connect_literal(*literal, port, plain=ssl_context is None)
    if ssl_context is None:
        return stream, fd
    try:
        wrapped = await TLSStream.wrap(
            stream,
            server_side=False,
            hostname=host,
            ssl_context=ssl_context,
            standard_compatible=False,
        )
    except BaseException:
        await anyio.aclose_forcefully(stream)
        raise
    return wrapped, fd


def _literal(host: str) -> tuple[int, str] | None:
    try:
        return _literals[host]
    except KeyError:
        pass
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        found = None
    else:
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        found = (family, address.compressed)
    if len(_literals) >= _MAX_REMEMBERED:
        _literals.clear()
    _literals[host] = found
    return found


async def _connect_literal(
    family: int, address: str, port: int, *, plain: bool
) -> tuple[anyio.abc.ByteStream, int]:
    """``plain`` (no TLS to come) on asyncio: a `LoopStream`; else anyio's stream."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as anyio's own connect
        error = sock.connect_ex((address, port))
        if error in _IN_PROGRESS:
            if not _settled(sock):  # a loopback handshake is done already: no wait
                await anyio.wait_writable(sock)
            error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if error:
            _failed(error)
        fd = sock.fileno()
        if plain and asyncio._get_running_loop() is not None:
            return await open_loop_stream(sock), fd
        return await anyio.abc.SocketStream.from_socket(sock), fd
    except BaseException:
        sock.close()
        raise


def _settled(sock: socket.socket) -> bool:
    """Whether a connect in progress has ended (connected or failed) by now."""
    poller = select.poll()
    poller.register(sock, select.POLLOUT)
    return bool(poller.poll(0))


def _failed(error: int) -> None:
    raise OSError(error, os.strerror(error))  # ConnectionRefusedError for ECONNREFUSED
