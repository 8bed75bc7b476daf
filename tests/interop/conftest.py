"""Fixtures for the interop tests (see sdkpeer.py): one SDK subprocess per mode per run."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from sdkpeer import Inbox, Peer, SDKServers, StaticBearer, mint

from mcpconn._http import make_client


@pytest.fixture(scope="session")
def sdk() -> Iterator[SDKServers]:
    """Session-scoped: each mode starts once per run (importing the SDK costs ~2 s of CPU)."""
    servers = SDKServers()
    try:
        yield servers
    finally:
        servers.close()


@pytest.fixture
def bearer() -> StaticBearer:
    return StaticBearer(mint())


_TLS = ssl.create_default_context()  # built once: plain http here, but httpx builds one per client


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(verify=_TLS) as c:
        yield c


@pytest.fixture
def inbox() -> Inbox:
    return Inbox()


@pytest.fixture
def peer(sdk: SDKServers, client: httpx.AsyncClient, bearer: StaticBearer, inbox: Inbox) -> Peer:
    """Opens sessions against the SDK peer with this test's client, bearer and inbox."""
    return Peer(sdk, client, bearer, inbox)
