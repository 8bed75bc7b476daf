"""Micro-benchmark: mcpconn's SSEDecoder against httpx-sse's own decoding, same bytes.

httpx-sse's path is what ``EventSource.aiter_sse`` does: an incremental UTF-8
text decoder, ``SSELineDecoder`` and ``SSEDecoder`` line by line. Ours takes the
raw bytes. Run: ``python benchmarks/bench_sse_decoder.py [events] [chunk_bytes]``.
"""

from __future__ import annotations

import codecs
import json
import sys
import time

from httpx_sse._decoders import SSEDecoder as HttpxSSEDecoder
from httpx_sse._decoders import SSELineDecoder

from mcpconn._core.sse import SSEDecoder


def make_stream(n: int) -> bytes:
    parts = []
    for i in range(n):
        message = {
            "jsonrpc": "2.0",
            "method": "notifications/progress",
            "params": {"progressToken": f"tok-{i % 17}", "progress": i, "total": n},
        }
        parts.append(f"event: message\nid: {i}\ndata: {json.dumps(message)}\n\n")
    return "".join(parts).encode()


def chunks_of(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def run_ours(chunks: list[bytes]) -> int:
    decoder = SSEDecoder()
    count = 0
    for chunk in chunks:
        count += len(decoder.feed(chunk))
    count += len(decoder.close())
    return count


def run_httpx_sse(chunks: list[bytes]) -> int:
    text_decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    line_decoder = SSELineDecoder()
    decoder = HttpxSSEDecoder()
    count = 0
    for chunk in chunks:
        for line in line_decoder.decode(text_decoder.decode(chunk)):
            if decoder.decode(line) is not None:
                count += 1
    for line in line_decoder.flush():
        if decoder.decode(line) is not None:
            count += 1
    return count


def best_times(chunks: list[bytes], n: int, repeat: int) -> tuple[float, float]:
    """Best CPU time of ``repeat`` runs each, interleaved: load from elsewhere hits both."""
    best_ours = best_theirs = float("inf")
    for _ in range(repeat):
        for fn in (run_ours, run_httpx_sse):
            start = time.process_time()
            got = fn(chunks)
            elapsed = time.process_time() - start
            assert got == n, (fn.__name__, got, n)
            if fn is run_ours:
                best_ours = min(best_ours, elapsed)
            else:
                best_theirs = min(best_theirs, elapsed)
    return best_ours, best_theirs


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 65_536
    chunks = chunks_of(make_stream(n), size)
    t_ours, t_theirs = best_times(chunks, n, repeat=9)
    ours, theirs = n / t_ours, n / t_theirs
    print(f"{n} events, {size}-byte chunks")
    print(f"mcpconn SSEDecoder : {ours:12,.0f} events/s")
    print(f"httpx-sse decoders : {theirs:12,.0f} events/s")
    print(f"ratio (ours/theirs): {ours / theirs:.2f}")


if __name__ == "__main__":
    main()
