"""Fixtures of the mock server's tests: a server (ordinary, or lean where a test asks for
both modes) and a plain httpx client on our transport."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from mcpconn._http import make_client
from mcpconn.testing import MockServer


@pytest.fixture
async def server(request: pytest.FixtureRequest) -> AsyncIterator[MockServer]:
    async with MockServer(lean=getattr(request, "param", False)) as srv:
        yield srv


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(timeout=5.0, verify=False, trust_env=False) as c:
        yield c
