"""WWW-Authenticate parsing as BearerAuth relies on it: right on real headers, never raises.

The parser lives in `_http_rules` (the one parser of mcpconn); these are the
token layer's own checks of it, hypothesis included.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcpconn._exceptions import Challenge
from mcpconn._http_rules import (
    MAX_HEADER_CHARS,
    MAX_PARAMS,
    parse_challenges,
    parse_www_authenticate,
)


def test_rfc6750_invalid_token() -> None:
    header = (
        'Bearer realm="example", error="invalid_token", '
        'error_description="The access token expired"'
    )
    assert parse_www_authenticate(header) == Challenge(
        scheme="Bearer",
        error="invalid_token",
        error_description="The access token expired",
        params={
            "realm": "example",
            "error": "invalid_token",
            "error_description": "The access token expired",
        },
    )


def test_rfc9728_resource_metadata_and_scope() -> None:
    header = (
        'Bearer resource_metadata="https://mcp.example/.well-known/oauth-protected-resource", '
        'scope="files:read files:write", error="insufficient_scope"'
    )
    challenge = parse_www_authenticate(header)
    assert challenge is not None
    assert challenge.resource_metadata == (
        "https://mcp.example/.well-known/oauth-protected-resource"
    )
    assert challenge.scope == "files:read files:write"
    assert challenge.error == "insufficient_scope"


def test_bare_bearer() -> None:
    assert parse_www_authenticate("Bearer") == Challenge(scheme="Bearer", params={})


def test_scheme_and_param_names_are_case_insensitive() -> None:
    challenge = parse_www_authenticate('bEaReR ERROR="invalid_token"')
    assert challenge == Challenge(
        scheme="Bearer", error="invalid_token", params={"error": "invalid_token"}
    )


def test_unquoted_values_and_odd_spacing() -> None:
    challenge = parse_www_authenticate("Bearer   error = invalid_token ,scope=read")
    assert challenge is not None
    assert challenge.error == "invalid_token"
    assert challenge.scope == "read"


def test_quoted_string_escapes_and_commas() -> None:
    challenge = parse_www_authenticate(r'Bearer error_description="a \"quoted\", text", error=x')
    assert challenge is not None
    assert challenge.error_description == 'a "quoted", text'
    assert challenge.error == "x"


def test_bearer_is_picked_among_several_challenges() -> None:
    header = 'Basic realm="a", Bearer error="invalid_token", Digest realm="b", nonce="n"'
    challenges = parse_challenges(header)
    assert [c.scheme for c in challenges] == ["Basic", "Bearer", "Digest"]
    assert challenges[2].params == {"realm": "b", "nonce": "n"}
    chosen = parse_www_authenticate(header)
    assert chosen is not None
    assert chosen.scheme == "Bearer"
    assert chosen.error == "invalid_token"


def test_several_header_lines() -> None:
    chosen = parse_www_authenticate(['Basic realm="a"', 'Bearer error="invalid_token"'])
    assert chosen is not None
    assert chosen.error == "invalid_token"


def test_token68_is_skipped_and_the_next_challenge_still_parses() -> None:
    challenges = parse_challenges('Negotiate YII+Ag==, Bearer error="invalid_token"')
    assert [c.scheme for c in challenges] == ["Negotiate", "Bearer"]
    assert challenges[0].params == {}
    assert challenges[1].error == "invalid_token"


def test_no_bearer_gives_the_first_challenge() -> None:
    chosen = parse_www_authenticate('Basic realm="x"')
    assert chosen is not None
    assert chosen.scheme == "Basic"


@pytest.mark.parametrize("header", [None, "", "   ", ",,,", [], ["", " "]])
def test_nothing_parses_to_none(header: str | list[str] | None) -> None:
    assert parse_www_authenticate(header) is None


def test_first_duplicate_param_wins() -> None:
    challenge = parse_www_authenticate('Bearer error="first", error="second"')
    assert challenge is not None
    assert challenge.error == "first"


def test_unterminated_quote_runs_to_the_end() -> None:
    challenge = parse_www_authenticate('Bearer error="invalid_token')
    assert challenge is not None
    assert challenge.error == "invalid_token"


def test_work_is_bounded() -> None:
    many = "Bearer " + ", ".join(f"p{i}=v" for i in range(1000))
    challenge = parse_www_authenticate(many)
    assert challenge is not None
    assert len(challenge.params) == MAX_PARAMS
    huge = 'Bearer error="' + "x" * (MAX_HEADER_CHARS * 4) + '"'
    challenge = parse_www_authenticate(huge)
    assert challenge is not None
    assert challenge.error is not None
    assert len(challenge.error) < MAX_HEADER_CHARS


def test_a_hostile_iterable_does_not_raise() -> None:
    def explode() -> object:
        yield 'Bearer error="x"'
        raise RuntimeError("boom")

    assert parse_challenges(explode()) == []  # type: ignore[arg-type]


header_alphabet = st.sampled_from(
    list('Bearer Basic error=",\\ \t=;/+-_.~abcXYZ0189\x00\u00ff\u4e2d')
)


@given(st.one_of(st.text(), st.text(alphabet=header_alphabet)))
def test_never_raises(header: str) -> None:
    for challenge in parse_challenges(header):
        assert isinstance(challenge, Challenge)
        assert challenge.scheme
        assert len(challenge.params) <= MAX_PARAMS
    result = parse_www_authenticate(header)
    assert result is None or isinstance(result, Challenge)


@given(st.lists(st.text(alphabet=header_alphabet), max_size=5))
def test_never_raises_on_lists(headers: list[str]) -> None:
    result = parse_www_authenticate(headers)
    assert result is None or isinstance(result, Challenge)


@given(
    error=st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E)),
    scope=st.from_regex(r"[a-z:]{1,10}( [a-z:]{1,10}){0,3}", fullmatch=True),
)
def test_round_trip_of_quoted_values(error: str, scope: str) -> None:
    quoted = error.replace("\\", "\\\\").replace('"', '\\"')
    chosen = parse_www_authenticate(f'Basic realm="r", Bearer error="{quoted}", scope="{scope}"')
    assert chosen is not None
    assert chosen.error == error
    assert chosen.scope == scope
