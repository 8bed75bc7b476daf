"""The thinnest clients that do the same work: the floors mcpconn is measured against.

Two HTTP/1.1 clients with the same small interface, neither of them a library
mcpconn builds on:

* `RawClient`: asyncio streams and a hand-written response parser (status line,
  headers, content-length or chunked body). What the bytes cost.
* `H11Client`: h11 over anyio streams, one send per request. What a minimal
  sans-IO HTTP client costs in the same event loop mcpconn runs in.

Each is one keep-alive connection: ``request()`` sends a request and reads its
head, then ``body()`` reads the whole body or ``chunks()`` streams it. The MCP
work on top (`McpFloor`) is the same for both: initialize a session, call a
tool, open a listener, decode SSE, ``json.loads`` every message.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from typing import Any, Protocol
from urllib.parse import urlsplit

import anyio
import h11
from _baselines import initialize_message, tool_call_message

PROTOCOL = "2025-11-25"
STATELESS = "2026-07-28"
ACCEPT = b"application/json, text/event-stream"
_ids = itertools.count(1)

Headers = list[tuple[bytes, bytes]]


class FloorClient(Protocol):
    status: int
    headers: dict[bytes, bytes]

    async def request(self, method: bytes, target: bytes, headers: Headers, body: bytes) -> int: ...
    async def body(self) -> bytes: ...
    def chunks(self) -> AsyncIterator[bytes]: ...
    async def aclose(self) -> None: ...


class RawClient:
    """One HTTP/1.1 connection over asyncio streams, parsed by hand."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: bytes):
        self._reader, self._writer, self._host = reader, writer, host
        self.status = 0
        self.headers: dict[bytes, bytes] = {}

    @classmethod
    async def connect(cls, host: str, port: int) -> RawClient:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, f"{host}:{port}".encode())

    async def request(self, method: bytes, target: bytes, headers: Headers, body: bytes) -> int:
        head = [method, b" ", target, b" HTTP/1.1\r\nhost: ", self._host, b"\r\n"]
        for name, value in headers:
            head += [name, b": ", value, b"\r\n"]
        head += [b"content-length: ", str(len(body)).encode(), b"\r\n\r\n", body]
        self._writer.write(b"".join(head))
        raw = await self._reader.readuntil(b"\r\n\r\n")
        lines = raw.split(b"\r\n")
        self.status = int(lines[0].split(b" ", 2)[1])
        self.headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(b":")
                self.headers[name.strip().lower()] = value.strip()
        return self.status

    async def chunks(self) -> AsyncIterator[bytes]:
        length = self.headers.get(b"content-length")
        if length is not None:
            if int(length):
                yield await self._reader.readexactly(int(length))
            return
        while True:  # chunked
            size = int((await self._reader.readline()).split(b";", 1)[0], 16)
            if size == 0:
                await self._reader.readline()
                return
            data = await self._reader.readexactly(size + 2)
            yield data[:-2]

    async def body(self) -> bytes:
        return b"".join([chunk async for chunk in self.chunks()])

    async def aclose(self) -> None:
        self._writer.close()


class H11Client:
    """One HTTP/1.1 connection: h11 over an anyio socket stream."""

    def __init__(self, stream: anyio.abc.SocketStream, host: bytes) -> None:
        self._stream, self._host = stream, host
        self._conn = h11.Connection(h11.CLIENT)
        self.status = 0
        self.headers: dict[bytes, bytes] = {}

    @classmethod
    async def connect(cls, host: str, port: int) -> H11Client:
        return cls(await anyio.connect_tcp(host, port), f"{host}:{port}".encode())

    async def _next(self) -> Any:
        conn = self._conn
        while True:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            conn.receive_data(await self._stream.receive(65536))

    async def request(self, method: bytes, target: bytes, headers: Headers, body: bytes) -> int:
        conn = self._conn
        if conn.our_state is h11.DONE:
            conn.start_next_cycle()
        all_headers = [(b"host", self._host), *headers, (b"content-length", b"%d" % len(body))]
        data = conn.send(h11.Request(method=method, target=target, headers=all_headers))
        data += conn.send(h11.Data(data=body)) if body else b""
        data += conn.send(h11.EndOfMessage())
        await self._stream.send(data)
        event = await self._next()
        self.status = event.status_code
        self.headers = dict(event.headers)
        return int(self.status)

    async def chunks(self) -> AsyncIterator[bytes]:
        while True:
            event = await self._next()
            if type(event) is h11.Data:
                yield bytes(event.data)
            elif type(event) is h11.EndOfMessage:
                return

    async def body(self) -> bytes:
        return b"".join([chunk async for chunk in self.chunks()])

    async def aclose(self) -> None:
        await self._stream.aclose()


KINDS = {"raw": RawClient, "h11": H11Client}


def sse_messages(buffer: bytearray, chunk: bytes) -> list[Any]:
    """Append ``chunk``; return the JSON of every complete ``data:`` event (json.loads each)."""
    buffer += chunk
    out: list[Any] = []
    end = buffer.rfind(b"\n\n")
    if end < 0:
        return out
    complete = bytes(buffer[: end + 2])
    del buffer[: end + 2]
    for event in complete.split(b"\n\n"):
        for line in event.split(b"\n"):
            if line.startswith(b"data:") and len(line) > 6:  # not a priming event
                out.append(json.loads(line[5:]))
    return out


class McpFloor:
    """The MCP work on one connection, the same for every floor client."""

    def __init__(self, client: FloorClient, url: str, token: str) -> None:
        self.client = client
        self.target = (urlsplit(url).path or "/").encode()
        self.token = token.encode()
        self.session_id = b""

    @classmethod
    async def connect(cls, kind: str, url: str, token: str) -> McpFloor:
        parts = urlsplit(url)
        client = await KINDS[kind].connect(parts.hostname or "127.0.0.1", parts.port or 80)
        return cls(client, url, token)

    def _headers(self, accept: bytes, version: bytes = PROTOCOL.encode()) -> Headers:
        headers = [
            (b"authorization", b"Bearer " + self.token),
            (b"accept", accept),
            (b"mcp-protocol-version", version),
        ]
        if self.session_id:
            headers.append((b"mcp-session-id", self.session_id))
        return headers

    async def rpc(self, message: dict[str, Any], extra: Headers | None = None) -> Any:
        """POST one JSON-RPC message; the response message (SSE or JSON body), or None."""
        version = STATELESS.encode() if extra else PROTOCOL.encode()
        headers = [*self._headers(ACCEPT, version), (b"content-type", b"application/json")]
        headers += extra or []
        await self.client.request(b"POST", self.target, headers, json.dumps(message).encode())
        body = await self.client.body()
        if not body:
            return None
        if self.client.headers.get(b"content-type", b"").startswith(b"text/event-stream"):
            messages = sse_messages(bytearray(), body)
            return messages[-1] if messages else None
        return json.loads(body)

    async def initialize(self) -> None:
        await self.rpc(initialize_message("floor"))
        self.session_id = self.client.headers.get(b"mcp-session-id", b"")
        await self.rpc({"jsonrpc": "2.0", "method": "notifications/initialized"})

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> Any:
        return await self.rpc(tool_call_message(name, arguments))

    async def open_get_listener(self) -> int:
        """The session's GET listener: the head read, the body left to `chunks()`."""
        return await self.client.request(
            b"GET", self.target, self._headers(b"text/event-stream"), b""
        )

    async def discover(self) -> Any:
        message = stateless_message("server/discover", {})
        return await self.rpc(message, [(b"mcp-method", b"server/discover")])

    async def open_listen(self) -> int:
        """A 2026-era ``subscriptions/listen`` POST stream: its head read."""
        headers = [
            *self._headers(ACCEPT, STATELESS.encode()),
            (b"content-type", b"application/json"),
            (b"mcp-method", b"subscriptions/listen"),
        ]
        listen = stateless_message(
            "subscriptions/listen", {"notifications": {"toolsListChanged": True}}
        )
        return await self.client.request(b"POST", self.target, headers, json.dumps(listen).encode())


def stateless_message(method: str, params: dict[str, Any]) -> dict[str, Any]:
    meta = {
        "io.modelcontextprotocol/protocolVersion": STATELESS,
        "io.modelcontextprotocol/clientInfo": {"name": "floor", "version": "0"},
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    return {
        "jsonrpc": "2.0",
        "id": next(_ids),
        "method": method,
        "params": {**params, "_meta": meta},
    }
