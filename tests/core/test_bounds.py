"""Bounded numbers: every reader gives the value within its bounds, or None; never raises."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcpconn._core import bounds
from mcpconn._core.bounds import (
    INT64_MAX,
    INT64_MIN,
    MAX_HINT_SECONDS,
    json_int,
    json_number,
    parse_digits,
    wait_hint,
)

FUZZ = settings(max_examples=300, deadline=None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("42", 42),
        (b"42", 42),
        ("007", 7),
        ("0" * 5000 + "9", 9),  # leading zeros are not digits that count
        ("1000", 1000),
        ("1001", None),  # above high
        ("9" * 400, None),  # checked by length before any conversion
        ("9" * 5000, None),  # more than int() would even take
        ("", None),
        (" 1", None),
        ("1 ", None),
        ("+1", None),
        ("-1", None),
        ("1.0", None),
        ("1e3", None),
        ("\u00b2", None),  # superscript two: str.isdigit() says yes, int() says no
        ("\u0661", None),  # Arabic-Indic one
        ("\uff11", None),  # fullwidth one
        (b"\xb2", None),
    ],
)
def test_parse_digits(text: str | bytes, expected: int | None) -> None:
    assert parse_digits(text, high=1000) == expected


def test_parse_digits_low_bound() -> None:
    assert parse_digits("0", low=1, high=10) is None
    assert parse_digits("1", low=1, high=10) == 1


@FUZZ
@given(text=st.one_of(st.text(max_size=40), st.binary(max_size=40)), high=st.integers(0, 10**20))
def test_parse_digits_never_raises_and_stays_in_bounds(text: str | bytes, high: int) -> None:
    value = parse_digits(text, high=high)
    assert value is None or 0 <= value <= high


@FUZZ
@given(value=st.integers(0, 10**15), zeros=st.integers(0, 30))
def test_parse_digits_reads_every_number_in_bounds(value: int, zeros: int) -> None:
    text = "0" * zeros + str(value)
    assert parse_digits(text, high=10**15) == value
    assert parse_digits(text.encode(), high=10**15) == value
    assert parse_digits(text, high=value - 1) is None if value else True


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (5, 5),
        (-5, -5),
        (5.0, 5),
        (INT64_MAX, INT64_MAX),
        (INT64_MIN, INT64_MIN),
        (INT64_MAX + 1, None),
        (10**400, None),
        (1e300, None),
        (5.5, None),
        (math.nan, None),
        (math.inf, None),
        (True, None),
        ("5", None),
        (None, None),
        ([5], None),
    ],
)
def test_json_int(value: object, expected: int | None) -> None:
    assert json_int(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, 1.0),
        (0.5, 0.5),
        (-2, -2.0),
        (10**400, None),  # an int too large for a float: no OverflowError
        (math.nan, None),
        (math.inf, None),
        (-math.inf, None),
        (False, None),
        ("1", None),
        ({}, None),
    ],
)
def test_json_number(value: object, expected: float | None) -> None:
    assert json_number(value) == expected


def test_json_number_bounds() -> None:
    assert json_number(5, low=0, high=4) is None
    assert json_number(4, low=0, high=4) == 4.0


json_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=4),
    lambda children: st.lists(children, max_size=2) | st.dictionaries(st.text(), children),
    max_leaves=4,
)


@FUZZ
@given(value=json_like)
def test_json_readers_never_raise(value: Any) -> None:
    as_int = json_int(value)
    assert as_int is None or (type(as_int) is int and INT64_MIN <= as_int <= INT64_MAX)
    as_number = json_number(value)
    assert as_number is None or (type(as_number) is float and math.isfinite(as_number))


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (None, None),
        (0.0, None),  # "wait no time" is no wait hint: the backoff curve applies
        (-5.0, None),
        (math.nan, None),
        (math.inf, None),
        (MAX_HINT_SECONDS * 2, None),
        (0.001, 0.001),
        (30.0, 30.0),
        (MAX_HINT_SECONDS, MAX_HINT_SECONDS),
    ],
)
def test_wait_hint(seconds: float | None, expected: float | None) -> None:
    assert wait_hint(seconds) == expected


@FUZZ
@given(seconds=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)))
def test_a_wait_hint_is_a_positive_bounded_wait_or_none(seconds: float | None) -> None:
    hint = wait_hint(seconds)
    assert hint is None or 0.0 < hint <= MAX_HINT_SECONDS


def test_module_exports() -> None:
    assert bounds.__all__ == sorted(bounds.__all__)
    for name in bounds.__all__:
        assert hasattr(bounds, name)
