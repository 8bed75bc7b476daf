"""The one helper for numbers in our own settings, and the classes that use it."""

from __future__ import annotations

import math
from typing import Any

import pytest

from mcpconn import Limits, ServerConfig, StormControl, Supervisor, Timeouts, TokenSource
from mcpconn._core.freshness import FreshnessPolicy
from mcpconn._core.settings import number, whole_number
from mcpconn._core.token import Token
from mcpconn._http.shards import ClientShards


def test_number_takes_a_finite_number_in_range() -> None:
    assert number(0, "x") == 0.0
    assert number(2, "x", above=True) == 2.0
    assert number(-5.5, "x", low=-math.inf) == -5.5
    assert number(1, "x", low=1) == 1.0


@pytest.mark.parametrize(
    ("value", "kwargs"),
    [
        (-0.1, {}),
        (0, {"above": True}),
        (0.5, {"low": 1}),
        (math.nan, {}),
        (math.inf, {}),
        (-math.inf, {"low": -math.inf}),
        (10**400, {}),  # an int too large for a float is not finite
    ],
)
def test_number_rejects_what_is_out_of_range_with_value_error(
    value: float, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(ValueError, match="the_name must be a finite number"):
        number(value, "the_name", **kwargs)


@pytest.mark.parametrize("value", [True, "1", None, [1]])
def test_number_rejects_what_is_not_a_number_with_type_error(value: object) -> None:
    with pytest.raises(TypeError, match="the_name must be a number"):
        number(value, "the_name")


def test_whole_number_is_an_int_at_least_low() -> None:
    assert whole_number(1, "n") == 1
    assert whole_number(0, "n", low=0) == 0
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        whole_number(0, "n")
    for bad in (1.0, True, "3"):
        with pytest.raises(TypeError):
            whole_number(bad, "n")


def _tokens() -> TokenSource:
    async def provider(request: object) -> str:
        return "unused"

    return TokenSource(provider)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"probe_interval": 0},  # would spin instead of probing
        {"probe_interval": -1},
        {"idle_timeout": 0},
        {"wake_jitter": -0.1},
        {"wake_jitter": math.nan},
        {"productive_after": 0},
        {"close_timeout": math.inf},
        {"shard_size": 0},
    ],
)
def test_the_supervisor_validates_its_numbers(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be"):
        Supervisor(_tokens(), **kwargs)


def test_the_supervisor_accepts_its_defaults_and_sane_values() -> None:
    Supervisor(_tokens())
    Supervisor(_tokens(), probe_interval=0.2, idle_timeout=5, wake_jitter=0, close_timeout=0)


@pytest.mark.parametrize(
    "build",
    [
        lambda: Timeouts(read=0),
        lambda: Timeouts(connect=math.nan),
        lambda: Timeouts(close=-1),
        lambda: Limits(max_sse_line_bytes=0),
        lambda: Limits(notification_buffer=-1),
        lambda: ServerConfig("s", "https://mcp.example.com/", ping_interval=0),
        lambda: StormControl(retry_rate=0),
        lambda: StormControl(connect_burst=0.5),
        lambda: FreshnessPolicy(max_age=0),
        lambda: ClientShards(0),
        lambda: Token("opaque", expires_at=math.inf),
    ],
)
def test_config_classes_reject_nonsense_numbers_at_construction(build: Any) -> None:
    with pytest.raises(ValueError, match="must be"):
        build()


def test_a_zero_close_timeout_is_allowed() -> None:
    assert Timeouts(close=0).close == 0


def test_config_classes_reject_bools_and_strings_as_numbers() -> None:
    with pytest.raises(TypeError):
        Timeouts(read="5")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Limits(max_json_response_bytes=True)
