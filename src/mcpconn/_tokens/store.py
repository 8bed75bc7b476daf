"""Where a `TokenSource` keeps its tokens: the seam for sharing them across replicas.

A store has two halves. The *local view* (``get``/``set``/``discard``) is a
plain synchronous map the token source reads on every ``get()``: no I/O, so a
fresh token costs a dict lookup. The *sharing* half (``announce``,
``exchange``, ``run``) connects the view to other replicas: `MemoryTokenStore`
shares nothing (one process), a Redis store shares everything.

The token source keeps all the deciding (freshness, single flight inside the
process, cooldowns, generations, listeners). A store only answers two
questions across replicas: "is there already a usable token somewhere?" and
"who calls the provider?" (``exchange``), and it reports what other replicas
did (the ``on_change`` callback given to ``run``).
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio
import anyio.abc

from .._core.token import Token

__all__ = [
    "ChangeCallback",
    "Fetch",
    "Key",
    "MemoryTokenStore",
    "StoredToken",
    "TokenStore",
    "UsablePredicate",
]

Key = tuple[str, "str | None"]


@dataclass(frozen=True)
class StoredToken:
    """A token and when this deployment obtained it (epoch seconds)."""

    token: Token
    obtained_at: float


UsablePredicate = Callable[["StoredToken | None"], bool]
#: The provider call an `exchange` makes at most once.
Fetch = Callable[[], Awaitable[StoredToken]]
# (key, entry or None when deleted, published): sync, never blocks.
ChangeCallback = Callable[[Key, "StoredToken | None", bool], None]


class TokenStore(abc.ABC):
    """The storage behind a `TokenSource`. Subclass it to share tokens elsewhere.

    ``needs_task_group``: the store does background work (``run``) and only
    works inside ``async with TokenSource(...)``.
    """

    needs_task_group: bool = False

    # -- the local view: synchronous, no I/O ------------------------------------

    @abc.abstractmethod
    def get(self, key: Key) -> StoredToken | None:
        """This replica's current token for ``key``."""

    @abc.abstractmethod
    def set(self, key: Key, entry: StoredToken) -> None:
        """Replace this replica's token for ``key`` (local only)."""

    @abc.abstractmethod
    def discard(self, key: Key) -> None:
        """Forget this replica's token for ``key`` (local only)."""

    @abc.abstractmethod
    def __len__(self) -> int: ...

    # -- sharing ---------------------------------------------------------------

    def announce(self, key: Key, entry: StoredToken | None, *, published: bool) -> None:
        """Tell the other replicas about a local `publish()` (entry) or `invalidate()` (None).

        Synchronous: a store that does I/O queues it for ``run``.
        """
        return

    async def exchange(self, key: Key, *, usable: UsablePredicate, fetch: Fetch) -> StoredToken:
        """Get a new token for ``key``: calls ``fetch`` (the provider) at most once.

        The token source calls this with at most one call per key at a time in
        the process. A shared store first looks for a token another replica got
        (``usable(entry)`` says whether it will do), and otherwise makes sure a
        single replica fetches while the others wait for its result. The result
        is shared; the caller puts it in the local view.
        """
        return await fetch()

    # -- records: small secrets providers keep next to the tokens ---------------------

    async def load_record(self, name: str) -> str | None:
        """A provider's record (``mcpconn.oauth``: refresh tokens, client registrations).

        The default keeps records in this process; a shared store overrides both
        methods to share them (`RedisTokenStore` seals them like tokens).
        """
        return self._local_records().get(name)

    async def save_record(self, name: str, value: str | None) -> None:
        """Replace (``None``: delete) the record ``name``."""
        records = self._local_records()
        if value is None:
            records.pop(name, None)
        else:
            records[name] = value

    def _local_records(self) -> dict[str, str]:
        records: dict[str, str] | None = self.__dict__.get("_records")
        if records is None:
            records = self.__dict__["_records"] = {}
        return records

    async def run(
        self,
        on_change: ChangeCallback,
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Background work until cancelled; ``on_change`` hears of other replicas' tokens."""
        task_status.started()


class MemoryTokenStore(TokenStore):
    """One process, nothing shared: the default."""

    def __init__(self) -> None:
        self._entries: dict[Key, StoredToken] = {}

    def get(self, key: Key) -> StoredToken | None:
        return self._entries.get(key)

    def set(self, key: Key, entry: StoredToken) -> None:
        self._entries[key] = entry

    def discard(self, key: Key) -> None:
        self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"<MemoryTokenStore keys={len(self._entries)}>"
