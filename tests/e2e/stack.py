"""The end-to-end stack: downstream servers and the example aggregator, each a subprocess.

The official SDK client (in the test process) talks to ``examples/aggregator.py``, which
talks to an SDK server (``downstream_sdk.py``) and the project's mock server (``mcpconn
mock-server``, driven through its ``/_mock/`` control endpoints). Processes start on first
use and are killed at the end; readiness is the first line each prints, under a deadline.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import jwt
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from helpers.subprocesses import first_line

SECRET = "mcpconn-e2e-shared-test-secret-0123456789abcdef"
ROOT = Path(__file__).resolve().parents[2]
#: The aggregator under test (another implementation of the same command line may be swapped in).
AGGREGATOR = Path(os.environ.get("MCPCONN_E2E_AGGREGATOR", ROOT / "examples" / "aggregator.py"))
DOWNSTREAM_SDK = Path(__file__).with_name("downstream_sdk.py")
STARTUP_TIMEOUT = 40.0
MODES = ("2026-07-28", "legacy")

#: On trio, the official SDK client (in the test process) leaves httpx2/httpcore2 stream
#: generators to the garbage collector; trio's finalizer reports them as unraisable. They
#: are the SDK client's, never the aggregator's (another process) or mcpconn's.
ASYNCGEN_LEAKS_OF_THE_SDK_CLIENT = pytest.mark.filterwarnings(
    r"ignore:Exception ignored in. <async_generator object "
    r"(EventSource|PoolByteStream|Response)\.:pytest.PytestUnraisableExceptionWarning"
)
#: The marks of every end-to-end module (``pytestmark = MARKS``).
MARKS = [pytest.mark.interop, ASYNCGEN_LEAKS_OF_THE_SDK_CLIENT]


def mint(sub: str, *, ttl: float = 600.0) -> str:
    now = time.time()
    claims = {"sub": sub, "iat": int(now), "exp": int(now + ttl), "jti": uuid.uuid4().hex}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def principal(prefix: str = "user") -> str:
    """A principal of its own per test: the stack is shared, its connections are not."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


#: ``client.set_logging_level()`` warns: logging/setLevel is deprecated in 2026-07-28, but
#: the session era still has it, and that is what these tests use it for.
SESSION_ERA_LOGGING = pytest.mark.filterwarnings(
    "ignore::mcp.shared.exceptions.MCPDeprecationWarning"
)


class Process:
    """One subprocess whose first stdout line says it is ready."""

    def __init__(self, *args: str) -> None:
        self.args = args
        env = dict(os.environ, MCPCONN_TEST_SECRET=SECRET)
        #: What it wrote on stderr (read it when a test fails).
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the process)
        self.proc = subprocess.Popen(
            [sys.executable, *args], stdout=subprocess.PIPE, stderr=self.stderr, env=env
        )
        self.first_line = ""

    def wait_ready(self) -> str:
        if not self.first_line:
            try:
                self.first_line = self._read_line()
            except BaseException:
                self.kill()
                raise
        return self.first_line

    def _read_line(self) -> str:
        return first_line(self.proc, str(self.args), STARTUP_TIMEOUT)

    def terminate(self, timeout: float) -> int:
        """SIGTERM, then the exit status (raises if it takes longer than ``timeout``)."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.stderr.close()

    def errors(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")[-4000:]


class MockProcess:
    """``mcpconn mock-server`` in its own process, on a fixed port once known (restartable)."""

    def __init__(self, *extra: str) -> None:
        self.extra = extra
        self.port = 0
        self.proc: Process | None = None

    def start(self) -> None:
        ready = Path(tempfile.mkdtemp()) / "ready.json"
        args = ["-m", "mcpconn", "mock-server", "--secret", SECRET, "--port", str(self.port)]
        self.proc = Process(*args, "--ready-file", str(ready), *self.extra)
        self.proc.wait_ready()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not ready.exists() or not ready.read_text():
            if time.monotonic() > deadline:
                raise RuntimeError("mock server wrote no ready file")
            time.sleep(0.02)
        info = json.loads(ready.read_text())
        self.url = str(info["url"])
        self.port = int(self.url.split(":")[2].split("/")[0])
        self.control = str(info["control_url"])

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc = None

    def control_sync(self, method: str, route: str, body: Any = None) -> Any:
        response = httpx.request(method, self.control + route, json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    async def ctl(self, method: str, route: str, body: Any = None) -> Any:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.request(method, self.control + route, json=body)
            response.raise_for_status()
            return response.json()

    async def requests_of(self, who: str) -> list[dict[str, Any]]:
        return [r for r in await self.ctl("GET", "records") if r["principal"] == who]


class Stack:
    """Downstream ``alpha`` (SDK) and ``beta`` (mock), and the aggregator in front of them."""

    def __init__(
        self, *, transport: str = "auto", handshake_only: bool = False, sdk: bool = True
    ) -> None:
        """``handshake_only``: downstream servers that do not speak 2026-07-28."""
        self.transport = transport
        eras = ("--eras", "streamable-http,sse") if handshake_only else ()
        self.mock = MockProcess("--sse-retry", "0.2", *eras)
        old = ("--handshake-only",) if handshake_only else ()
        self.sdk = Process(str(DOWNSTREAM_SDK), *old) if sdk else None
        self.aggregator: Process | None = None
        self.port = 0

    def start(self) -> None:
        self.mock.start()
        assert self.sdk is not None
        self.sdk_url = sdk_url = f"http://127.0.0.1:{int(self.sdk.wait_ready())}/mcp"
        self.aggregator = Process(
            str(AGGREGATOR),
            "--port",
            "0",
            "--jwt-secret",
            SECRET,
            "--server",
            f"alpha={sdk_url}",
            "--server",
            f"beta={self.mock.url}",
            "--transport",
            self.transport,
        )
        line = self.aggregator.wait_ready()
        assert line.startswith("PORT "), line
        self.port = int(line.split()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def close(self) -> None:
        for proc in (self.aggregator, self.sdk):
            if proc is not None:
                proc.kill()
        self.mock.stop()

    async def status(self) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.get(f"http://127.0.0.1:{self.port}/_aggregator/status")
            response.raise_for_status()
            result: dict[str, Any] = response.json()
            return result

    async def state_of(self, server: str, who: str) -> str | None:
        for conn in (await self.status())["connections"]:
            if conn["server"] == server and conn["principal"] == who:
                return str(conn["state"])
        return None

    async def wait_state(self, server: str, who: str, state: str, *, timeout: float = 15) -> None:
        with anyio.fail_after(timeout):
            while await self.state_of(server, who) != state:  # noqa: ASYNC110 (another process)
                await anyio.sleep(0.05)

    @asynccontextmanager
    async def client(self, token: str, mode: str, **options: Any) -> AsyncIterator[Client]:
        """The official SDK client, in ``mode`` ("2026-07-28" or "legacy"), with ``token``."""
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)
        async with http:
            transport = streamable_http_client(self.url, http_client=http)
            async with Client(transport, mode=mode, cache=None, **options) as client:
                yield client


def text_of(result: Any) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


class Inbox:
    """What callbacks saw; a waiter wakes on every new item (no polling)."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._changed = anyio.Event()

    def add(self, item: Any) -> None:
        self.items.append(item)
        self._changed.set()

    async def wait_for(self, predicate: Callable[[list[Any]], bool]) -> None:
        """Until ``predicate(items)``; bound it with ``anyio.fail_after``."""
        while not predicate(self.items):
            self._changed = anyio.Event()
            await self._changed.wait()
