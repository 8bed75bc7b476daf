"""Child processes that announce themselves with one line on stdout (a port, ``PORT n``)."""

from __future__ import annotations

import os
import selectors
import subprocess
import time


def first_line(proc: subprocess.Popen[bytes], what: str, timeout: float) -> str:
    """The child's first stdout line, stripped; RuntimeError if it exits or stays silent."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    line = b""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or proc.poll() is not None:
                raise RuntimeError(f"{what} did not start")
            if sel.select(timeout=left):
                chunk = os.read(proc.stdout.fileno(), 1)  # never read past the line
                if not chunk:
                    raise RuntimeError(f"{what} exited")
                line += chunk
    return line.decode().strip()
