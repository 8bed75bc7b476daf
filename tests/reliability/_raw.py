"""A raw, deliberately misbehaving MCP server on a loopback socket, plus leak probes.

The project's `MockServer` is well behaved except where a fault says otherwise;
the servers here misbehave at the byte level (streams of any size, stalls,
half events, lies about the protocol era). Every connection is closed after
one exchange (``connection: close``), so `open_connections` counts exactly the
sockets a client still holds open to us.
"""

from __future__ import annotations

import gc
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
from anyio.abc import SocketAttribute

import mcpconn
from mcpconn import Backoff, Connection, Limits, ServerConfig, State, Timeouts

FAST = Backoff(initial=0.01, max_delay=0.05, auth_attempts=2)


@dataclass
class RawRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def message(self) -> Any:
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None

    @property
    def rpc_method(self) -> str | None:
        msg = self.message
        return msg.get("method") if isinstance(msg, dict) else None


Writer = Callable[[anyio.abc.SocketStream, RawRequest], Awaitable[None]]


def head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in headers.items()]
    lines.append("connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def send_json(stream: anyio.abc.SocketStream, payload: Any, status: int = 200) -> None:
    body = json.dumps(payload).encode()
    hdrs = {"content-type": "application/json", "content-length": str(len(body))}
    hdrs["mcp-session-id"] = "raw-session"
    await stream.send(head(status, hdrs) + body)


def init_result(msg: dict[str, Any], version: str = "2025-11-25") -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": msg.get("id"),
        "result": {
            "protocolVersion": version,
            "capabilities": {"tools": {"listChanged": True}},
            "serverInfo": {"name": "raw", "version": "0"},
        },
    }


async def default_initialize(stream: anyio.abc.SocketStream, req: RawRequest) -> None:
    await send_json(stream, init_result(req.message))


async def default_request(stream: anyio.abc.SocketStream, req: RawRequest) -> None:
    msg = req.message
    await send_json(stream, {"jsonrpc": "2.0", "id": msg.get("id"), "result": {"ok": True}})


async def no_listener(stream: anyio.abc.SocketStream, req: RawRequest) -> None:
    await stream.send(head(405, {"content-length": "0", "allow": "POST, DELETE"}))


def once(writer: Writer, then: Writer | None = None) -> Writer:
    """``writer`` for the first request only, then ``then`` (default: 405, so a
    listener gives up quietly).

    Lets a test close its supervisor while the connection is quiet rather than in
    the middle of dropping a session (see test_cancellation for that case).
    """
    used = False

    async def write(stream: anyio.abc.SocketStream, req: RawRequest) -> None:
        nonlocal used
        if used:
            await (then or no_listener)(stream, req)
            return
        used = True
        await writer(stream, req)

    return write


@dataclass
class RawServer:
    url: str
    on_initialize: Writer = default_initialize
    on_request: Writer = default_request
    on_get: Writer = no_listener
    on_delete: Writer | None = None  # None: 200, no body
    requests: list[RawRequest] = field(default_factory=list)
    open_connections: int = 0
    #: Bytes the writers managed to hand to the kernel (set by writers that stream).
    bytes_sent: int = 0
    changed: anyio.Event = field(default_factory=anyio.Event)

    def _touch(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()

    async def wait(self, predicate: Callable[[RawServer], bool]) -> None:
        while not predicate(self):
            await self.changed.wait()

    def count(self, method: str, rpc_method: str | None = None) -> int:
        return sum(
            1
            for r in self.requests
            if r.method == method and (rpc_method is None or r.rpc_method == rpc_method)
        )

    async def handle(self, stream: anyio.abc.SocketStream) -> None:
        self.open_connections += 1
        self._touch()
        try:
            async with stream:
                req = await read_request(stream)
                if req is None:
                    return
                self.requests.append(req)
                self._touch()
                if req.method == "GET":
                    await self.on_get(stream, req)
                elif req.method == "DELETE" and self.on_delete is not None:
                    await self.on_delete(stream, req)
                elif req.method == "DELETE":
                    await stream.send(head(200, {"content-length": "0"}))
                elif req.method == "POST":
                    msg = req.message
                    if isinstance(msg, dict) and msg.get("method") == "initialize":
                        await self.on_initialize(stream, req)
                    elif isinstance(msg, dict) and "id" not in msg:
                        await stream.send(head(202, {"content-length": "0"}))
                    else:
                        await self.on_request(stream, req)
                else:
                    await stream.send(head(405, {"content-length": "0"}))
                # Wait for the client to hang up: its close is what we count.
                with suppress(anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                    while await stream.receive():
                        pass
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass
        finally:
            self.open_connections -= 1
            self._touch()


async def read_request(stream: anyio.abc.SocketStream) -> RawRequest | None:
    buf = b""
    while b"\r\n\r\n" not in buf:
        try:
            chunk = await stream.receive(65536)
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return None
        buf += chunk
    head_bytes, _, rest = buf.partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        try:
            rest += await stream.receive(65536)
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return None
    return RawRequest(method, path, headers, rest[:length])


@asynccontextmanager
async def raw_server(
    *,
    on_initialize: Writer = default_initialize,
    on_request: Writer = default_request,
    on_get: Writer = no_listener,
    on_delete: Writer | None = None,
) -> AsyncIterator[RawServer]:
    """Serve on 127.0.0.1:0 until the block ends; the writers are per-method overrides."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(SocketAttribute.local_port)
    server = RawServer(f"http://127.0.0.1:{port}/mcp", on_initialize, on_request, on_get, on_delete)

    async def accept_loop(*, task_status: anyio.abc.TaskStatus[None]) -> None:
        # One task, started before we yield: a baseline task count taken inside
        # the block is exact (``listener.serve`` spawns its workers later).
        sock = listener.listeners[0]
        assert isinstance(sock, anyio.abc.SocketListener)
        task_status.started()
        async with anyio.create_task_group() as conns:
            while True:
                conns.start_soon(server.handle, await sock.accept())

    async with listener, anyio.create_task_group() as tg:
        await tg.start(accept_loop)
        try:
            yield server
        finally:
            tg.cancel_scope.cancel()


def config(url: str, name: str = "raw", **kwargs: Any) -> ServerConfig:
    kwargs.setdefault("transport", "streamable-http")
    kwargs.setdefault("protocol_version", "2025-11-25")
    kwargs.setdefault("timeouts", Timeouts(connect=2, request=2, read=2, close=1))
    kwargs.setdefault("limits", Limits(max_sse_line_bytes=64 << 10, max_sse_event_bytes=256 << 10))
    return ServerConfig(name, url, **kwargs)


# ---- leak probes --------------------------------------------------------------------


def state_of(conn: Connection) -> State:
    """``conn.state`` read afresh (keeps type checkers from narrowing it across awaits)."""
    return conn.state


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def task_count() -> int:
    return len(anyio.get_running_tasks())


async def settle_to(baseline_fds: int, baseline_tasks: int, *, timeout: float = 5.0) -> None:
    """Wait (bounded) until fds and tasks are back at their baseline; fail if they never are.

    Closing a socket on asyncio completes one loop iteration later, so this
    polls the condition instead of asserting it at one instant.
    """
    with anyio.move_on_after(timeout):
        while open_fds() > baseline_fds or task_count() > baseline_tasks:
            gc.collect()
            await anyio.sleep(0.01)
    assert open_fds() <= baseline_fds, f"leaked fds: {open_fds()} > {baseline_fds}"
    names = [t.name for t in anyio.get_running_tasks()]
    assert task_count() <= baseline_tasks, f"leaked tasks: {names} (baseline {baseline_tasks})"


@asynccontextmanager
async def no_leaks() -> AsyncIterator[None]:
    """Fail if the block leaves a file descriptor or a task behind."""
    fds, tasks = open_fds(), task_count()
    yield
    await settle_to(fds, tasks)


def surfaces(*objects: Any) -> list[str]:
    """Every text a token could leak through for these objects (and exception chains)."""
    texts: list[str] = []
    for obj in objects:
        texts += [str(obj), repr(obj)]
        seen: set[int] = set()
        exc = obj if isinstance(obj, BaseException) else None
        while exc is not None and id(exc) not in seen:
            seen.add(id(exc))
            if isinstance(exc, mcpconn.MCPConnError):
                texts += [str(exc), repr(exc), repr(vars(exc))]
            exc = exc.__cause__ or exc.__context__
    return texts
