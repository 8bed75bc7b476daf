"""The client's own log on stderr, timed from start (the suite keeps it as ``stderr.txt``)."""

from __future__ import annotations

import sys
import time

_T0 = time.monotonic()


def log(*parts: object) -> None:
    print(f"[client +{time.monotonic() - _T0:.2f}s]", *parts, file=sys.stderr, flush=True)
