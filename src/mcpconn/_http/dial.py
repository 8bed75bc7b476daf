"""Opening a TCP (and TLS) stream for `H11Transport`: an IP literal needs no happy eyeballs.

`anyio.connect_tcp` runs every connect in a task group, with a task, an event
and a timeout scope per address tried, even when the host is an IP literal
and there is one address to try. A burst of reconnects (one publish waking a
thousand parked listeners) pays that a thousand times over, mostly as garbage
to collect. Here an IP literal gets one non-blocking socket, one wait for it
to become writable and anyio's wrapper; a host name still goes through
`anyio.connect_tcp` (resolution, IPv6 first, happy eyeballs).
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import ssl

import anyio
import anyio.abc
from anyio.streams.tls import TLSStream

__all__ = ["dial"]

_IN_PROGRESS = (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN)


async def dial(host: str, port: int, ssl_context: ssl.SSLContext | None) -> anyio.abc.ByteStream:
    """A connected stream to ``host:port``, TLS on it when ``ssl_context`` is given
    (the certificate checked against ``host``, no TLS goodbye awaited on close)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if ssl_context is None:
            return await anyio.connect_tcp(host, port)
        return await anyio.connect_tcp(
            host, port, ssl_context=ssl_context, tls_hostname=host, tls_standard_compatible=False
        )
    stream = await _connect_literal(address, port)
    if ssl_context is None:
        return stream
    try:
        return await TLSStream.wrap(
            stream,
            server_side=False,
            hostname=host,
            ssl_context=ssl_context,
            standard_compatible=False,
        )
    except BaseException:
        await anyio.aclose_forcefully(stream)
        raise


async def _connect_literal(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int
) -> anyio.abc.SocketStream:
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as anyio's own connect
        error = sock.connect_ex((address.compressed, port))
        if error in _IN_PROGRESS:
            await anyio.wait_writable(sock)
            error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if error:
            _failed(error)
        return await anyio.abc.SocketStream.from_socket(sock)
    except BaseException:
        sock.close()
        raise


def _failed(error: int) -> None:
    raise OSError(error, os.strerror(error))  # ConnectionRefusedError for ECONNREFUSED
