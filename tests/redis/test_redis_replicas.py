"""Replicas as separate processes (replica.py) sharing one real redis-server.

One fleet of three replicas serves the module (a Python process takes about a
second to start); each test uses its own principals and counts provider calls
as a difference.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from redis_server import RedisServer
from replicas import Replica, start, stop

pytestmark = pytest.mark.redis

LEASE = 1.0


class Fleet:
    def __init__(self, server: RedisServer) -> None:
        self.server = server
        self.namespace = f"t{uuid.uuid4().hex[:12]}"
        self.replicas = start(server.url, self.namespace, 3, "--lease", str(LEASE))

    def calls(self) -> int:
        client = self.server.client()
        try:
            return int(client.get(f"{self.namespace}:test:calls") or 0)
        finally:
            client.close()

    def get_everywhere(
        self, keys: list[str], replicas: list[Replica] | None = None, timeout: float = 20.0
    ) -> list[dict[str, object]]:
        replicas = self.replicas if replicas is None else replicas
        for replica in replicas:  # every request is out before the first answer is read
            replica.send(op="get", keys=keys)
        return [replica.read(timeout) for replica in replicas]


@pytest.fixture(scope="module")
def fleet(redis_server: RedisServer) -> Iterator[Fleet]:
    fleet = Fleet(redis_server)
    yield fleet
    stop(fleet.replicas)


def principals(m: int) -> list[str]:
    tag = uuid.uuid4().hex[:6]
    return [f"user-{tag}-{i}" for i in range(m)]


def test_n_replicas_times_m_expiries_make_m_provider_calls(fleet: Fleet) -> None:
    m = 8
    keys = principals(m)
    before = fleet.calls()

    first = [r["tokens"] for r in fleet.get_everywhere(keys)]
    assert fleet.calls() - before == m
    assert all(seen == first[0] for seen in first)  # one token per key, everywhere

    for replica in fleet.replicas:  # every token expires on every replica at once
        assert replica.ask(op="advance", seconds=7200) == {"ok": True}
    second = [r["tokens"] for r in fleet.get_everywhere(keys)]
    assert fleet.calls() - before == 2 * m
    assert all(seen == second[0] for seen in second)
    assert all(second[0][k] != first[0][k] for k in keys)  # type: ignore[index]

    client = fleet.server.client()  # encrypted at rest: no raw token anywhere in Redis
    try:
        for name in client.scan_iter(f"{fleet.namespace}:*"):
            value = client.get(name) if client.type(name) == b"string" else b""
            assert b"SECRET" not in name and b"SECRET" not in (value or b"")
    finally:
        client.close()


def test_publish_on_one_replica_wakes_listeners_on_all(fleet: Fleet) -> None:
    (alice,) = principals(1)
    before = fleet.calls()
    fleet.get_everywhere([alice], fleet.replicas[:2])  # the third never used alice
    assert fleet.calls() - before == 1
    publisher = fleet.replicas[0]
    assert publisher.ask(op="publish", principal=alice, token="SECRET-relogin") == {"ok": True}
    for replica in fleet.replicas:
        assert replica.ask(op="heard", principal=alice) == {"heard": alice}
    tokens = fleet.get_everywhere([alice])
    assert len({str(t["tokens"]) for t in tokens}) == 1
    assert fleet.calls() - before == 1  # the published token is everyone's now


def test_a_killed_lock_holder_delays_the_others_by_at_most_the_lease(fleet: Fleet) -> None:
    (alice,) = principals(1)
    before = fleet.calls()
    (holder,) = start(fleet.server.url, fleet.namespace, 1, "--hang", "--lease", str(LEASE))
    try:
        holder.send(op="get", keys=[alice])
        assert holder.read() == {"providing": alice}  # it holds the lock now
    finally:
        holder.kill()  # SIGKILL: no release, no renewal
        holder.close()

    results = fleet.get_everywhere([alice], timeout=LEASE + 10)
    assert all(r["tokens"] == results[0]["tokens"] for r in results)
    # The requirement itself: a crashed holder costs the others at most its lease.
    waits = [w for r in results for w in r["waits"]]  # type: ignore[attr-defined]
    assert max(waits) < LEASE + 1.0
    assert fleet.calls() - before == 2  # the dead holder's call and exactly one more
