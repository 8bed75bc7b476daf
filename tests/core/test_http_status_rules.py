"""The core's HTTP rules for statuses, content types and loopback hosts (no I/O)."""

from __future__ import annotations

import calendar
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcpconn import _exceptions as errors
from mcpconn._core.http_rules import (
    check_content_type,
    error_for_status,
    header,
    is_loopback_host,
    media_type,
)

# --- status -> error ----------------------------------------------------------------


NOW = float(calendar.timegm((2026, 11, 27, 12, 0, 0)))  # the dates below are relative to it


def status(code: int, headers: dict[str, str] | None = None, **kwargs: object) -> Any:
    options: dict[str, object] = {"had_session": True, "era": "streamable-http", "now": NOW}
    options.update(kwargs)
    return error_for_status(code, headers or {}, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("code", [200, 201, 202, 204, 299])
def test_2xx_is_no_error(code: int) -> None:
    assert status(code) is None


def test_401_carries_the_challenge() -> None:
    error = status(401, {"WWW-Authenticate": 'Bearer error="invalid_token"'})
    assert type(error) is errors.Unauthorized
    assert error.challenge is not None
    assert error.challenge.error == "invalid_token"
    assert error.status_code == 401
    assert type(status(401)) is errors.Unauthorized
    assert status(401).challenge is None


def test_403_insufficient_scope() -> None:
    error = status(403, {"www-authenticate": 'Bearer error="insufficient_scope", scope="x"'})
    assert type(error) is errors.Forbidden
    assert error.insufficient_scope
    assert not status(403).insufficient_scope


@pytest.mark.parametrize("code", [404, 410])
@pytest.mark.parametrize("era", ["streamable-http", "sse"])
def test_404_410_with_session_is_session_expired(code: int, era: str) -> None:
    error = status(code, era=era)
    assert type(error) is errors.SessionExpired
    assert error.status_code == code


@pytest.mark.parametrize("code", [404, 410])
def test_404_without_session_or_stateless_is_plain(code: int) -> None:
    for error in (status(code, had_session=False), status(code, era="stateless")):
        assert type(error) is errors.HTTPStatusError
        assert error.status_code == code


def test_405_is_method_not_allowed() -> None:
    error = status(405)
    assert type(error) is errors.MethodNotAllowed
    assert error.status_code == 405


@pytest.mark.parametrize("code", [429, 503])
def test_rate_limited_with_retry_after(code: int) -> None:
    error = status(code, {"Retry-After": "3600"})
    assert type(error) is errors.RateLimited
    assert (error.status_code, error.retry_after) == (code, 3600.0)
    error = status(code, {"retry-after": "Fri, 27 Nov 2026 12:00:02 GMT"})
    assert error.retry_after == 2.0
    assert status(code).retry_after is None
    assert status(code, {"Retry-After": "later"}).retry_after is None


@pytest.mark.parametrize("code", [500, 501, 502, 504, 599])
def test_other_5xx_is_server_error(code: int) -> None:
    error = status(code)
    assert type(error) is errors.ServerError
    assert error.status_code == code


@pytest.mark.parametrize("code", [100, 301, 302, 304, 400, 402, 406, 409, 413, 415, 422, 600])
def test_other_statuses_are_plain(code: int) -> None:
    error = status(code)
    assert type(error) is errors.HTTPStatusError
    assert error.status_code == code


def test_header_lookup_is_case_insensitive() -> None:
    assert header({"Retry-After": "1"}, "retry-after") == "1"
    assert header({"retry-after": "1"}, "Retry-After") == "1"
    assert header({}, "x") is None


# --- content types ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("text/event-stream", "text/event-stream"),
        ("text/event-stream; charset=utf-8", "text/event-stream"),
        ("  Application/JSON ;charset=UTF-8", "application/json"),
        ("", None),
        (";charset=utf-8", None),
        (None, None),
    ],
)
def test_media_type(value: str | None, expected: str | None) -> None:
    assert media_type(value) == expected


def test_check_content_type() -> None:
    allowed = ("application/json", "text/event-stream")
    assert check_content_type("application/json; charset=utf-8", allowed) == "application/json"
    assert check_content_type("TEXT/EVENT-STREAM", allowed) == "text/event-stream"
    assert check_content_type("text/event-stream", ("Text/Event-Stream",)) == "text/event-stream"
    for bad in ("text/html", None, "", "application/jsonx"):
        with pytest.raises(errors.UnexpectedContentType) as info:
            check_content_type(bad, allowed)
        assert info.value.content_type == bad


# --- loopback -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "LOCALHOST",
        "localhost.",
        "localhost:8080",
        "127.0.0.1",
        "127.1.2.3",
        "127.0.0.1:9000",
        "::1",
        "[::1]",
        "[::1]:8000",
        "0:0:0:0:0:0:0:1",
        "::ffff:127.0.0.1",
    ],
)
def test_loopback(host: str) -> None:
    assert is_loopback_host(host)


@pytest.mark.parametrize(
    "host",
    [
        "example.com",
        "localhost.example.com",
        "evil.localhost",
        "mylocalhost",
        "128.0.0.1",
        "0.0.0.0",
        "::",
        "10.0.0.1",
        "::ffff:10.0.0.1",
        "fe80::1%eth0",
        "",
        "[",
        "127.0.0.1.nip.io",
    ],
)
def test_not_loopback(host: str) -> None:
    assert not is_loopback_host(host)


@settings(max_examples=200, deadline=None)
@given(host=st.text(max_size=40))
def test_loopback_never_raises(host: str) -> None:
    assert is_loopback_host(host) in (True, False)
