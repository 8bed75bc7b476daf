"""Helpers for the interop tests: run the official SDK server (sdk_server.py) in a subprocess.

One subprocess per mode for the whole test session, started on first use
(so sync: the ``anyio_backend`` fixture is function-scoped). Readiness is the
port the script prints once uvicorn has started, read under a deadline; every
process is killed at the end of the session.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Generator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import jwt

from helpers.subprocesses import first_line
from mcpconn import ServerConfig, Timeouts
from mcpconn._config import TransportKind
from mcpconn._mcp.session import EraCache, Session, SessionHandlers, open_session

SECRET = "mcpconn-interop-shared-test-secret-0123456789"
SUBJECT = "alice"
STARTUP_TIMEOUT = 30.0
SCRIPT = Path(__file__).with_name("sdk_server.py")


def mint(*, sub: str = SUBJECT, ttl: float = 600.0) -> str:
    now = int(time.time())
    return jwt.encode({"sub": sub, "iat": now, "exp": now + int(ttl)}, SECRET, algorithm="HS256")


class StaticBearer(httpx.Auth):
    """Sets the header on every request and counts requests per HTTP method."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.methods: Counter[str] = Counter()

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        self.methods[request.method] += 1
        request.headers["Authorization"] = f"Bearer {self.token}"
        yield request


#: One process serves every streamable mode (importing the SDK costs seconds of CPU).
STREAMABLE_MODES = ("stateful", "json", "stateless", "resumable", "idle")
IDLE_SECONDS = 0.3


class SDKProcess:
    """One running sdk_server.py subprocess."""

    def __init__(self, *args: str, script: Path = SCRIPT) -> None:
        env = dict(os.environ, MCPCONN_TEST_SECRET=SECRET)
        self.args = args
        self.port = 0
        self.proc = subprocess.Popen(
            [sys.executable, str(script), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )

    def wait_ready(self) -> None:
        if self.port:
            return
        try:
            self.port = self._read_port()
        except BaseException:
            self.kill()
            raise

    def _read_port(self) -> int:
        return int(first_line(self.proc, f"sdk_server.py {self.args}", STARTUP_TIMEOUT))

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@dataclass(frozen=True)
class SDKServer:
    """One mode of the SDK peer: where to connect."""

    mode: str
    url: str


class SDKServers:
    """Two processes (streamable modes, legacy SSE), started together on first use."""

    def __init__(self) -> None:
        self._procs: dict[str, SDKProcess] = {}

    def start(self) -> None:
        if not self._procs:
            self._procs["sse"] = SDKProcess("sse")
            self._procs["streamable"] = SDKProcess(*STREAMABLE_MODES, f"--idle={IDLE_SECONDS}")
        for proc in self._procs.values():
            proc.wait_ready()

    def __call__(self, mode: str) -> SDKServer:
        self.start()
        if mode == "sse":
            return SDKServer(mode, f"http://127.0.0.1:{self._procs['sse'].port}/sse")
        assert mode in STREAMABLE_MODES, mode
        port = self._procs["streamable"].port
        return SDKServer(mode, f"http://127.0.0.1:{port}/{mode}/mcp")

    def close(self) -> None:
        for proc in self._procs.values():
            proc.kill()


class Inbox:
    """Collects notifications; waits for one by method."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self._changed = anyio.Event()

    def __call__(self, message: dict[str, Any]) -> None:
        self.items.append(message)
        self._changed.set()

    def methods(self) -> list[str]:
        return [m["method"] for m in self.items]

    async def wait_for(self, method: str) -> dict[str, Any]:
        while True:
            for item in self.items:
                if item["method"] == method:
                    return item
            self._changed = anyio.Event()
            await self._changed.wait()


TIMEOUTS = Timeouts(connect=5.0, request=10.0, read=10.0, close=2.0)
#: What one session may take in all, opening and closing included.
DEADLINE = 20.0


class Peer:
    """Opens our client's sessions against the SDK peer: the set-up every interop test shares.

    Built from the ``sdk``, ``client``, ``bearer`` and ``inbox`` fixtures, so a
    test that asks for ``bearer`` or ``inbox`` too sees what its sessions did.
    """

    def __init__(
        self, sdk: SDKServers, client: httpx.AsyncClient, bearer: StaticBearer, inbox: Inbox
    ) -> None:
        self.sdk = sdk
        self.client = client
        self.bearer = bearer
        self.inbox = inbox

    def url(self, mode: str) -> str:
        return self.sdk(mode).url

    @asynccontextmanager
    async def session(
        self,
        mode: str,
        *,
        version: str | None = None,
        transport: TransportKind = "auto",
        auth: httpx.Auth | None = None,
        on_reinitialized: Callable[[], None] | None = None,
        era_cache: EraCache | None = None,
    ) -> AsyncIterator[Session]:
        """One session on ``mode`` (``auth`` defaults to ``bearer``), all under `DEADLINE`."""
        config = ServerConfig(
            name="sdk",
            url=self.url(mode),
            transport=transport,
            protocol_version=version,
            timeouts=TIMEOUTS,
        )
        handlers = SessionHandlers(self.inbox, on_reinitialized=on_reinitialized)
        with anyio.fail_after(DEADLINE):
            async with open_session(
                self.client,
                config,
                auth=self.bearer if auth is None else auth,
                handlers=handlers,
                era_cache=era_cache,
            ) as session:
                yield session

    @asynccontextmanager
    async def listening(self, mode: str, *, version: str | None = None) -> AsyncIterator[Session]:
        """A session whose listener runs in the background until the block ends."""
        async with self.session(mode, version=version) as session, anyio.create_task_group() as tg:
            tg.start_soon(session.listen)
            yield session
            tg.cancel_scope.cancel()


async def work(
    session: Session, steps: int, *, meta: dict[str, Any] | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Call the peer's ``work`` tool (a progress notification per step): result, progress seen."""
    progress: list[dict[str, Any]] = []
    call: dict[str, Any] = {"name": "work", "arguments": {"steps": steps}}
    if meta is not None:
        call["_meta"] = meta
    result = await session.request("tools/call", call, on_progress=progress.append)
    return result, progress


async def list_all_tools(session: Session) -> list[dict[str, Any]]:
    """tools/list, following nextCursor."""
    tools: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        result = await session.request("tools/list", {"cursor": cursor} if cursor else None)
        tools.extend(result.get("tools", []))
        cursor = result.get("nextCursor")
        if not cursor:
            return tools
