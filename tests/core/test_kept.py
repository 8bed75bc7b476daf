"""An error kept for later keeps its data and its chain, not the frames it was raised through."""

from __future__ import annotations

import weakref

import pytest

from mcpconn._core.kept import without_frames
from mcpconn._exceptions import NetworkError, Unauthorized


class Held:
    """A local of the raising frame: alive only while something keeps that frame."""


def _refuse() -> None:
    raise OSError(111, "refused")


def _connect(local: Held) -> None:
    try:
        _refuse()
    except OSError as cause:
        raise NetworkError("network error (ConnectError)") from cause


def _raise_chained() -> tuple[NetworkError, weakref.ref[Held]]:
    local = Held()
    seen = weakref.ref(local)
    with pytest.raises(NetworkError) as info:
        _connect(local)
    error = info.value
    del local, info  # the error's traceback is what still holds the raising frames
    return error, seen


def test_the_frames_go_and_with_them_what_they_held() -> None:
    error, local = _raise_chained()
    assert error.__traceback__ is not None and local() is not None  # the frame holds it
    assert without_frames(error) is error
    assert error.__traceback__ is None and error.__cause__ is not None
    assert error.__cause__.__traceback__ is None
    assert local() is None  # nothing keeps the raising frame now


def test_data_and_chain_are_kept() -> None:
    error, _ = _raise_chained()
    without_frames(error)
    assert str(error) == "network error (ConnectError)"
    assert isinstance(error.__cause__, OSError) and error.__cause__.errno == 111
    with pytest.raises(Unauthorized) as info:
        raise Unauthorized(None, rejected=None)
    assert without_frames(info.value).rejected is None and info.value.__traceback__ is None


def test_context_group_members_and_loops_are_followed() -> None:
    inner = ValueError("inner")
    try:
        raise inner
    except ValueError:
        pass
    group = ExceptionGroup("two", [inner, KeyError("k")])
    try:
        try:
            raise group
        except ExceptionGroup:
            raise RuntimeError("while handling") from None
    except RuntimeError as exc:
        outer = exc
    assert outer.__context__ is group and outer.__suppress_context__
    looped = TypeError("loop")
    looped.__context__ = outer
    outer.__cause__ = looped  # a loop: followed once
    without_frames(outer)
    for each in (outer, group, inner, looped):
        assert each.__traceback__ is None


def test_a_very_long_chain_is_bounded() -> None:
    errors = [ValueError(str(i)) for i in range(200)]
    for i, error in enumerate(errors):
        try:
            raise error
        except ValueError:
            pass
        if i:
            error.__cause__ = errors[i - 1]
    without_frames(errors[-1])
    assert errors[-1].__traceback__ is None
    assert errors[0].__traceback__ is not None  # beyond the bound: left as it was


@pytest.mark.parametrize("error", [ValueError("x"), NetworkError("y")])
def test_an_error_never_raised_is_returned_as_it_is(error: Exception) -> None:
    assert without_frames(error) is error and error.__traceback__ is None
