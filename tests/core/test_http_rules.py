"""HTTP status, header and content-type rules."""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcpconn import _exceptions as errors
from mcpconn._core import http_rules as _http_rules
from mcpconn._core.bounds import MAX_HINT_SECONDS
from mcpconn._core.http_rules import (
    MAX_HEADER_CHARS,
    MAX_PARAMS,
    parse_challenges,
    parse_retry_after,
    parse_www_authenticate,
)

# --- WWW-Authenticate ---------------------------------------------------------------


def test_bearer_challenge_with_mcp_params() -> None:
    value = (
        'Bearer error="invalid_token", error_description="The access token expired", '
        'resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource", '
        'scope="files:read files:write"'
    )
    assert parse_www_authenticate(value) == errors.Challenge(
        scheme="Bearer",
        error="invalid_token",
        error_description="The access token expired",
        scope="files:read files:write",
        resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource",
        params={
            "error": "invalid_token",
            "error_description": "The access token expired",
            "resource_metadata": "https://mcp.example.com/.well-known/oauth-protected-resource",
            "scope": "files:read files:write",
        },
    )


def test_rfc6750_example() -> None:
    value = (
        'Bearer realm="example", error="invalid_token", '
        'error_description="The access token expired"'
    )
    challenge = parse_www_authenticate(value)
    assert challenge is not None
    assert (challenge.error, challenge.params["realm"]) == ("invalid_token", "example")


def test_insufficient_scope() -> None:
    challenge = parse_www_authenticate('Bearer error="insufficient_scope", scope="admin"')
    assert challenge is not None
    assert errors.Forbidden(challenge).insufficient_scope
    assert challenge.scope == "admin"


def test_bare_scheme() -> None:
    assert parse_www_authenticate("Bearer") == errors.Challenge()
    assert parse_www_authenticate("  bearer  ") == errors.Challenge()


def test_scheme_and_names_are_case_insensitive() -> None:
    challenge = parse_www_authenticate('BEARER Error="invalid_token", SCOPE=a')
    assert challenge is not None
    assert (challenge.scheme, challenge.error, challenge.scope) == ("Bearer", "invalid_token", "a")


def test_quoted_string_escapes_and_commas() -> None:
    value = r'Bearer error_description="say \"hi\", then \\ go", error="x"'
    challenge = parse_www_authenticate(value)
    assert challenge is not None
    assert challenge.error_description == 'say "hi", then \\ go'
    assert challenge.error == "x"


def test_bearer_after_other_challenges() -> None:
    value = 'Basic realm="a, Bearer error=fake", Newauth realm="apps", type=1, Bearer error="real"'
    challenge = parse_www_authenticate(value)
    assert challenge is not None
    assert challenge.error == "real"
    assert dict(challenge.params) == {"error": "real"}


def test_bearer_before_other_challenges() -> None:
    challenge = parse_www_authenticate('Bearer scope="a", Basic realm="b"')
    assert challenge is not None
    assert dict(challenge.params) == {"scope": "a"}


def test_token68_is_skipped() -> None:
    challenge = parse_www_authenticate("Basic dXNlcjpwYXNz==, Bearer error=invalid_token")
    assert challenge is not None
    assert challenge.error == "invalid_token"


def test_rfc9110_example_without_bearer_gives_the_first() -> None:
    value = 'Newauth realm="apps", type=1, title="Login to \\"apps\\"", Basic realm="simple"'
    challenges = parse_challenges(value)
    assert [(c.scheme, dict(c.params)) for c in challenges] == [
        ("Newauth", {"realm": "apps", "type": "1", "title": 'Login to "apps"'}),
        ("Basic", {"realm": "simple"}),
    ]
    assert parse_www_authenticate(value) == challenges[0]


def test_token68_keeps_no_params() -> None:
    challenges = parse_challenges("Negotiate YII+Ag==, Bearer error=x, Basic abc=")
    assert [(c.scheme, dict(c.params)) for c in challenges] == [
        ("Negotiate", {}),
        ("Bearer", {"error": "x"}),
        ("Basic", {}),
    ]


def test_several_header_values() -> None:
    challenge = parse_www_authenticate(['Basic realm="a"', 'Bearer error="invalid_token"'])
    assert challenge is not None
    assert challenge.error == "invalid_token"
    assert parse_www_authenticate([]) is None


def test_hostile_iterable_does_not_raise() -> None:
    def explode() -> Iterator[str]:
        yield "Bearer"
        raise RuntimeError("boom")

    assert parse_challenges(explode()) == []


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
    lines = ["Basic realm=x"] * 10_000 + ["Bearer"]
    assert parse_www_authenticate(lines) is not None  # the Bearer line is cut off
    assert parse_www_authenticate(lines).scheme == "Basic"  # type: ignore[union-attr]


def test_spaces_around_equals_and_unquoted_values() -> None:
    value = "Bearer error = invalid_token ,resource_metadata=https://x.example/prm"
    challenge = parse_www_authenticate(value)
    assert challenge is not None
    assert (challenge.error, challenge.resource_metadata) == (
        "invalid_token",
        "https://x.example/prm",
    )


def test_first_of_repeated_param_wins() -> None:
    challenge = parse_www_authenticate('Bearer error="a", error="b"')
    assert challenge is not None
    assert challenge.error == "a"


def test_unterminated_quote_is_lenient() -> None:
    challenge = parse_www_authenticate('Bearer error="invalid_token')
    assert challenge is not None
    assert challenge.error == "invalid_token"


@pytest.mark.parametrize("value", [None, "", "   ", ",,,", '"Bearer"', "=Bearer", ["", " "]])
def test_nothing_parses_to_none(value: str | list[str] | None) -> None:
    assert parse_www_authenticate(value) is None


@settings(max_examples=300, deadline=None)
@given(
    value=st.one_of(
        st.text(max_size=200),
        st.lists(
            st.sampled_from(
                [
                    "Bearer",
                    "Basic",
                    " ",
                    ",",
                    "=",
                    '"',
                    "\\",
                    "error",
                    "scope",
                    "x",
                    "\t",
                    "==",
                    "\u00e9",
                ]
            ),
            max_size=40,
        ).map("".join),
    )
)
def test_www_authenticate_never_raises(value: str) -> None:
    challenges = parse_challenges(value)
    assert all(c.scheme and len(c.params) <= MAX_PARAMS for c in challenges)
    challenge = parse_www_authenticate(value)
    assert challenge is None or challenge in challenges
    if any(c.scheme == "Bearer" for c in challenges):
        assert challenge is not None
        assert challenge.scheme == "Bearer"


# --- Retry-After --------------------------------------------------------------------

NOW = float(calendar.timegm((2026, 11, 27, 12, 0, 0)))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("+4", 4.0),
        ("86400000", 86400000.0),  # uncapped: capping is the policy's job
        (str(int(MAX_HINT_SECONDS)), MAX_HINT_SECONDS),
        # no hint, so the backoff curve applies: nothing that cannot mean "wait longer"
        ("0", None),
        ("000", None),
        ("0.0", None),
        ("-3", None),
        ("-0", None),
        (str(int(MAX_HINT_SECONDS) + 1), None),  # beyond a century: absurd
        ("1" + "0" * 12, None),
        ("\u00b2", None),  # passes str.isdigit, fails int()
        ("Thu, 01 Jan 1970 00:00:00 GMT", None),  # the epoch: long past
        ("Fri, 27 Nov 2026 12:00:00 GMT", None),  # exactly now
        ("Fri, 27 Nov 9999 12:00:00 GMT", None),  # beyond a century
        ("Fri, 27 Nov 2026 12:00:00 GMT" + " " * 100 + "x", None),
        (None, None),
        ("", None),
        ("soon", None),
        ("1e3", None),
        ("12 s", None),
        ("nan", None),
        ("inf", None),
        ("9" * 400, None),  # not finite
        ("Fri, 27 Nov 2026 12:00:30 GMT", 30.0),
        ("Fri, 27 Nov 2026 11:00:00 GMT", None),  # in the past
        ("Friday, 27-Nov-26 12:01:00 GMT", 60.0),  # RFC 850
        ("Fri Nov 27 12:00:10 2026", 10.0),  # asctime
        ("Fri, 27 Nov 2026 13:00:05 +0100", 5.0),
        ("Fri, 32 Foo 2026 12:00:00 GMT", None),
    ],
)
def test_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


def test_retry_after_date_is_relative_to_now() -> None:
    when = format_datetime(datetime(2030, 1, 1, tzinfo=UTC), usegmt=True)
    epoch = calendar.timegm((2030, 1, 1, 0, 0, 0))
    assert parse_retry_after(when, now=epoch - 90) == 90.0
    assert parse_retry_after(when, now=epoch + 90) is None


@settings(max_examples=300, deadline=None)
@given(value=st.text(max_size=60), now=st.floats(min_value=0, max_value=4e9))
def test_retry_after_never_raises(value: str, now: float) -> None:
    result = parse_retry_after(value, now=now)
    assert result is None or 0.0 < result <= MAX_HINT_SECONDS


def test_module_exports() -> None:
    for name in _http_rules.__all__:
        assert hasattr(_http_rules, name)


_header_alphabet = st.sampled_from(
    list('Bearer Basic error=",\\ \t=;/+-_.~abcXYZ0189\x00\u00ff\u4e2d')
)


@given(st.lists(st.text(alphabet=_header_alphabet), max_size=5))
def test_www_authenticate_never_raises_on_several_values(headers: list[str]) -> None:
    result = _http_rules.parse_www_authenticate(headers)
    assert result is None or isinstance(result, errors.Challenge)


@given(
    error=st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E)),
    scope=st.from_regex(r"[a-z:]{1,10}( [a-z:]{1,10}){0,3}", fullmatch=True),
)
def test_quoted_values_round_trip(error: str, scope: str) -> None:
    quoted = error.replace("\\", "\\\\").replace('"', '\\"')
    header = f'Basic realm="r", Bearer error="{quoted}", scope="{scope}"'
    chosen = _http_rules.parse_www_authenticate(header)
    assert chosen is not None
    assert chosen.error == error
    assert chosen.scope == scope
