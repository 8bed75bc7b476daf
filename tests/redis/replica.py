"""One aggregator replica for the multi-process tests and the benchmark.

Run as ``python replica.py URL NAMESPACE [--lease S] [--delay S] [--hang] [--memory]``
(``--memory``: the default per-process store, the benchmark's baseline).
It prints ``{"ready": true}`` once its TokenSource runs, then executes one JSON
command per stdin line and answers with one JSON line:

* ``{"op": "get", "keys": [...]}``: concurrent ``get()`` of every principal;
  answers each token's fingerprint and the per-call wait in seconds.
* ``{"op": "advance", "seconds": S}``: move this replica's clock forward.
* ``{"op": "publish", "principal": P, "token": RAW}``
* ``{"op": "heard", "principal": P}``: wait until a listener fired for P.
* ``{"op": "stats"}``

The provider counts its calls in Redis (``NAMESPACE:test:calls``), so the test
sees the total over all replicas. ``--hang`` makes it announce itself and hang.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import uuid
from typing import Any

import anyio
import redis.asyncio as aioredis

from mcpconn import Token, TokenRequest, TokenSource
from mcpconn.redis_store import RedisTokenStore

KEY = bytes(range(32))


def emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


class FallbackCounter(logging.Handler):
    """Counts the store's "unavailable" warnings (each one is a local fallback)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "unavailable" in record.getMessage():
            self.count += 1


async def main(args: argparse.Namespace) -> None:
    fallbacks = FallbackCounter()
    logging.getLogger("mcpconn.redis_store").addHandler(fallbacks)
    offset = 0.0
    counter = aioredis.Redis.from_url(args.url)

    def clock() -> float:
        return time.time() + offset

    async def provider(request: TokenRequest) -> Token:
        await counter.incr(f"{args.namespace}:test:calls")
        if args.hang:
            emit({"providing": request.principal})
            await anyio.sleep_forever()
        if args.delay:
            await anyio.sleep(args.delay)
        now = clock()
        raw = f"SECRET-{request.principal}-{uuid.uuid4().hex}"
        return Token(raw, expires_at=now + 3600, issued_at=now)

    heard: dict[str, anyio.Event] = {}

    def listener(principal: str, audience: str | None) -> None:
        heard.setdefault(principal, anyio.Event()).set()

    store = (
        None
        if args.memory
        else RedisTokenStore(args.url, key=KEY, namespace=args.namespace, lease=args.lease)
    )
    async with TokenSource(provider, store=store, provider_timeout=60, clock=clock) as source:
        source.add_listener(listener)
        emit({"ready": True})
        receive = anyio.wrap_file(sys.stdin)
        async for line in receive:
            command = json.loads(line)
            op = command["op"]
            if op == "get":
                tokens: dict[str, str] = {}
                waits: list[float] = []

                async def one(
                    principal: str, tokens: dict[str, str] = tokens, waits: list[float] = waits
                ) -> None:
                    started = time.perf_counter()
                    token = await source.get(principal)
                    waits.append(time.perf_counter() - started)
                    tokens[principal] = token.fingerprint

                async with anyio.create_task_group() as tg:
                    for principal in command["keys"]:
                        tg.start_soon(one, principal)
                emit({"tokens": tokens, "waits": waits})
            elif op == "advance":
                offset += float(command["seconds"])
                emit({"ok": True})
            elif op == "publish":
                source.publish(command["principal"], command["token"])
                emit({"ok": True})
            elif op == "heard":
                with anyio.fail_after(10):
                    await heard.setdefault(command["principal"], anyio.Event()).wait()
                emit({"heard": command["principal"]})
            elif op == "stats":
                stats = source.statistics()
                available = store is None or store.available
                emit(
                    {
                        "provider_calls": stats.provider_calls,
                        "available": available,
                        "fallbacks": fallbacks.count,
                    }
                )
            elif op == "exit":
                break
    await counter.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("namespace")
    parser.add_argument("--lease", type=float, default=5.0)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--hang", action="store_true")
    parser.add_argument("--memory", action="store_true")
    anyio.run(main, parser.parse_args(), backend="asyncio")
