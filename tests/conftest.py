"""Every async test runs on both anyio backends; no test may leak a token into logging.

Under ``--dist loadfile`` each module runs on one worker, and each directory of
`SHARED_SERVERS` on one worker as a whole (its session-scoped servers start once).

The leak guard attaches one handler to the root logger at level 1 for the whole
session (and lowers the root level to 1 so DEBUG records of every logger are
created at all). Each record is formatted the way a real handler would format
it (message, exception text, stack) plus the repr of its arguments and extra
attributes, and searched for anything JWT-shaped or any raw secret a test
registered with the ``leak_guard`` fixture. A test during which such a record
was emitted fails; a record outside any test fails the session.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest

# Three base64url segments, the first a JOSE header (``{"`` encodes as ``eyJ``).
JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")

_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class LeakGuard(logging.Handler):
    """Collects every log record that carries a credential (never the credential itself)."""

    def __init__(self) -> None:
        super().__init__(level=1)
        self.secrets: set[str] = set()
        self.leaks: list[str] = []
        self.records_seen = 0
        self._formatter = logging.Formatter("%(levelname)s %(name)s %(message)s")

    def register(self, secret: str) -> None:
        """A raw token (JWT or opaque) that must never appear in any record."""
        if secret:
            self.secrets.add(secret)

    def find(self, text: str) -> str | None:
        """What kind of secret ``text`` contains, or None. Never returns the secret."""
        if JWT_SHAPE.search(text):
            return "a JWT-shaped string"
        for secret in self.secrets:
            if secret in text:
                return "a registered raw token"
        return None

    def texts(self, record: logging.LogRecord) -> list[str]:
        parts = [self._formatter.format(record), repr(record.args), repr(record.msg)]
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            parts += [repr(exc), str(exc)]
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS:
                parts.append(f"{key}={value!r}")
        return parts

    def emit(self, record: logging.LogRecord) -> None:
        self.records_seen += 1
        try:
            for text in self.texts(record):
                kind = self.find(text)
                if kind is not None:
                    self.leaks.append(
                        f"{record.levelname} record of logger {record.name!r} "
                        f"({record.pathname}:{record.lineno}) contains {kind}"
                    )
                    return
        except Exception as exc:  # a record that cannot be formatted is itself suspect
            self.leaks.append(f"record of {record.name!r} could not be checked: {exc!r}")


_GUARD = LeakGuard()


def pytest_configure(config: pytest.Config) -> None:
    # httpx's ByteStream.__aiter__ is an async generator; when a request body send is
    # cancelled (shutdown, timeouts) trio warns as it is collected. A known upstream
    # bug (encode/httpx#3686, fix in encode/httpx#3777), not ours: ignore exactly it.
    config.addinivalue_line(
        "filterwarnings",
        "ignore:Exception ignored in. <async_generator object ByteStream.__aiter__"
        ":pytest.PytestUnraisableExceptionWarning",
    )


#: Directories whose session-scoped servers take seconds of CPU to start (the official SDK
#: peers, Valkey): under ``--dist loadfile`` all their modules go to one worker, so each
#: worker does not start its own.
SHARED_SERVERS = ("tests/interop/", "tests/redis/")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling  # type: ignore[import-untyped]

    class SharedServersTogether(LoadFileScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            scope: str = super()._split_scope(nodeid)
            return next((d for d in SHARED_SERVERS if scope.startswith(d)), scope)

    return SharedServersTogether(config, log)


@pytest.fixture(scope="session", autouse=True)
def _install_leak_guard() -> Iterator[LeakGuard]:
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(_GUARD)
    root.setLevel(1)
    try:
        yield _GUARD
    finally:
        root.removeHandler(_GUARD)
        root.setLevel(old_level)
    leaks = list(_GUARD.leaks)
    _GUARD.leaks.clear()
    if leaks:
        pytest.fail("token leaked into logging outside any test:\n" + "\n".join(leaks))


@pytest.fixture(autouse=True)
def _no_token_in_logs(_install_leak_guard: LeakGuard) -> Iterator[None]:
    _GUARD.leaks.clear()
    yield
    leaks = list(_GUARD.leaks)
    _GUARD.leaks.clear()
    if leaks:
        pytest.fail("token leaked into logging:\n" + "\n".join(leaks))


@pytest.fixture
def leak_guard() -> LeakGuard:
    """Register raw secrets (``leak_guard.register(raw)``) and scan any text with ``find``."""
    return _GUARD


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)
