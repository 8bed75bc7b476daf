"""Drive replica.py processes: one JSON command per line in, one JSON line out."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

WORKER = Path(__file__).with_name("replica.py")
SRC = Path(__file__).resolve().parents[2] / "src"


class Replica:
    def __init__(self, url: str, namespace: str, *options: str) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), url, namespace, *options],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
            env=env,
        )
        self._buffer = b""

    def read(self, timeout: float = 20.0) -> dict[str, Any]:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the replica did not answer in time")
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    raise EOFError(f"the replica exited with {self.proc.wait()}")
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        result: dict[str, Any] = json.loads(line)
        return result

    def send(self, **command: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command).encode() + b"\n")

    def ask(self, **command: Any) -> dict[str, Any]:
        self.send(**command)
        return self.read()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send(op="exit")
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.kill()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


def start(url: str, namespace: str, count: int, *options: str) -> list[Replica]:
    """Start ``count`` replicas in parallel; return once every one is ready."""
    replicas = [Replica(url, namespace, *options) for _ in range(count)]
    try:
        for replica in replicas:
            assert replica.read() == {"ready": True}
    except BaseException:
        for replica in replicas:
            replica.kill()
        raise
    return replicas


def stop(replicas: list[Replica]) -> None:
    """Ask every replica to exit at once, then wait for each."""
    for replica in replicas:
        if replica.proc.poll() is None:
            with contextlib.suppress(OSError):
                replica.send(op="exit")
    for replica in replicas:
        replica.close()
