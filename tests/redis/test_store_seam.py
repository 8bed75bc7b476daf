"""The TokenStore seam without Redis: what TokenSource asks of a store, and the sealing.

Runs on both backends; needs no redis-server.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio
import pytest

from mcpconn import MemoryTokenStore, StoredToken, Token, TokenRequest, TokenSource
from mcpconn._redis.sealed import Sealer, SealError
from mcpconn._tokens.store import ChangeCallback, Fetch, Key, UsablePredicate

KEY = bytes(range(32))


class FakeSharedStore(MemoryTokenStore):
    """A "shared" store whose other replica is the test itself."""

    needs_task_group = True

    def __init__(self) -> None:
        super().__init__()
        self.shared: dict[Key, StoredToken] = {}
        self.announced: list[tuple[Key, StoredToken | None, bool]] = []
        self.on_change: ChangeCallback | None = None

    def announce(self, key: Key, entry: StoredToken | None, *, published: bool) -> None:
        self.announced.append((key, entry, published))

    async def exchange(self, key: Key, *, usable: UsablePredicate, fetch: Fetch) -> StoredToken:
        shared = self.shared.get(key)
        if usable(shared):
            assert shared is not None
            return shared
        # Nothing usable shared: fetch as an unshared store does, then share the result.
        entry = await super().exchange(key, usable=usable, fetch=fetch)
        self.shared[key] = entry
        return entry

    async def run(
        self,
        on_change: ChangeCallback,
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        self.on_change = on_change
        task_status.started()
        await anyio.sleep_forever()


class Provider:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, request: TokenRequest) -> Token:
        self.calls += 1
        return Token(f"tok-{self.calls}", expires_at=time.time() + 3600)


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_token_source_uses_the_store_for_sharing() -> None:
    store, provider = FakeSharedStore(), Provider()
    async with TokenSource(provider, store=store) as source:
        first = await source.get("alice")
        # Another replica replaced it: a 401 on `first` takes theirs, no provider call.
        store.shared[("alice", None)] = StoredToken(Token("theirs"), time.time())
        assert (await source.refresh("alice", replacing=first)).raw == "theirs"
        assert provider.calls == 1
        # ...but a shared copy of the rejected token itself will not do.
        rejected = await source.refresh("alice", replacing=Token("theirs"))
        assert rejected.raw == "tok-2"
        # publish() and invalidate() are announced to the other replicas.
        source.publish("alice", Token("mine"))
        source.invalidate("alice")
        assert [(k, e is not None, p) for k, e, p in store.announced] == [
            (("alice", None), True, True),
            (("alice", None), False, False),
        ]


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_other_replicas_changes_reach_listeners_and_waiters() -> None:
    store, provider = FakeSharedStore(), Provider()
    heard: list[tuple[str, str | None]] = []
    async with TokenSource(provider, store=store) as source:
        source.add_listener(lambda p, a: heard.append((p, a)))
        await source.get("alice")
        generation = source.generation("alice")
        assert store.on_change is not None
        # a refresh elsewhere: waiters wake, listeners stay quiet
        store.on_change(("alice", None), StoredToken(Token("refreshed"), time.time()), False)
        assert await source.wait_for_new_token("alice", after=generation) == generation + 1
        assert heard == []
        # a publish elsewhere, for a key this replica never used: listeners hear it
        store.on_change(("bob", "srv"), StoredToken(Token("relogin"), time.time()), True)
        assert heard == [("bob", "srv")]
        assert (await source.get("bob", "srv")).raw == "relogin"
        # an invalidate elsewhere (it also emptied the shared copy): the provider is asked
        del store.shared[("alice", None)]
        store.on_change(("alice", None), None, False)
        assert (await source.get("alice")).raw == "tok-2"
        assert provider.calls == 2


async def test_a_shared_store_needs_async_with() -> None:
    source = TokenSource(Provider(), store=FakeSharedStore())
    with pytest.raises(RuntimeError, match="async with"):
        await source.get("alice")
    with pytest.raises(RuntimeError, match="async with"):
        source.publish("alice", Token("x"))
    with pytest.raises(TypeError, match="TokenStore"):
        TokenSource(Provider(), store=object())  # type: ignore[arg-type]


def _entry() -> StoredToken:
    return StoredToken(Token("SECRET-raw", expires_at=2e9, issued_at=1.9e9), 1.95e9)


def test_sealing_round_trips_and_hides_the_token() -> None:
    sealer = Sealer(KEY)
    blob = sealer.seal(("alice", "srv"), _entry(), published=True, bound_to=b"ns:{a}:token")
    assert b"SECRET" not in blob and b"alice" not in blob
    key, entry, published = sealer.open(blob, bound_to=b"ns:{a}:token")
    assert (key, entry, published) == (("alice", "srv"), _entry(), True)
    again = sealer.seal(("alice", "srv"), _entry(), published=True, bound_to=b"ns:{a}:token")
    assert again != blob  # a fresh nonce every time


@pytest.mark.parametrize(
    "damage",
    [
        lambda blob: blob[:-1] + bytes([blob[-1] ^ 1]),  # tampered tag
        lambda blob: blob[:30] + bytes([blob[30] ^ 1]) + blob[31:],  # tampered ciphertext
        lambda blob: bytes([2]) + blob[1:],  # unknown version
        lambda blob: blob[:1] + bytes(8) + blob[9:],  # unknown key id
        lambda blob: blob[:10],  # truncated
        lambda blob: b"",
    ],
)
def test_damaged_blobs_do_not_open(damage: Callable[[bytes], bytes]) -> None:
    sealer = Sealer(KEY)
    blob = sealer.seal(("alice", None), _entry(), published=False, bound_to=b"here")
    with pytest.raises(SealError) as info:
        sealer.open(damage(blob), bound_to=b"here")
    assert "SECRET" not in str(info.value)


def test_a_blob_moved_elsewhere_or_under_another_key_does_not_open() -> None:
    blob = Sealer(KEY).seal(("alice", None), _entry(), published=False, bound_to=b"alice-key")
    with pytest.raises(SealError, match="authentication failed"):
        Sealer(KEY).open(blob, bound_to=b"bob-key")
    with pytest.raises(SealError, match="unknown key"):
        Sealer(bytes(32)).open(blob, bound_to=b"alice-key")
    assert Sealer(bytes(32), old_keys=[KEY]).open(blob, bound_to=b"alice-key")[1] == _entry()
    assert "SECRET" not in repr(Sealer(KEY)) and KEY.hex() not in repr(Sealer(KEY))
