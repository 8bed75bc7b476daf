"""Helpers for the interop tests: run the official SDK server (sdk_server.py) in a subprocess.

One subprocess per mode per test module (module-scoped, so sync: the
``anyio_backend`` fixture is function-scoped). Readiness is the port the
script prints once uvicorn has started, read under a deadline; the process
is always killed at the end of the module.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt

from mcpconn._session import Session

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

    def __init__(self, *args: str) -> None:
        env = dict(os.environ, MCPCONN_TEST_SECRET=SECRET)
        self.args = args
        self.port = 0
        self.proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), *args],
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
        assert self.proc.stdout is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT
        line = b""
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while not line.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise RuntimeError(f"sdk_server.py {self.args} did not start")
                if sel.select(timeout=left):
                    chunk = os.read(self.proc.stdout.fileno(), 64)
                    if not chunk:
                        raise RuntimeError(f"sdk_server.py {self.args} exited")
                    line += chunk
        return int(line.strip())

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
        import anyio

        self.items: list[dict[str, Any]] = []
        self._changed = anyio.Event()

    def __call__(self, message: dict[str, Any]) -> None:
        self.items.append(message)
        self._changed.set()

    def methods(self) -> list[str]:
        return [m["method"] for m in self.items]

    async def wait_for(self, method: str) -> dict[str, Any]:
        import anyio

        while True:
            for item in self.items:
                if item["method"] == method:
                    return item
            self._changed = anyio.Event()
            await self._changed.wait()


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
