"""Fixtures of the TokenSource tests: both modes, a fake clock and a provider on it."""

from __future__ import annotations

import pytest
from token_fakes import FakeClock, FakeProvider


@pytest.fixture(params=["entered", "unentered"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def provider(clock: FakeClock) -> FakeProvider:
    return FakeProvider(clock)
