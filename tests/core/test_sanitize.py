"""The one sanitizer for server text, and the parsers that apply it with the sent credential."""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from mcpconn._core import sanitize as _sanitize
from mcpconn._core.http_rules import check_content_type, error_for_status, parse_challenges
from mcpconn._core.jsonrpc import ErrorResponse, parse_message
from mcpconn._core.sanitize import MAX_CHARS, REDACTED, redact, sanitize, sanitize_json
from mcpconn._exceptions import InvalidMessage, Unauthorized, UnexpectedContentType

FUZZ = settings(max_examples=200, deadline=None)
# As tests/conftest.py's leak guard sees a JWT.
JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6OTk5OTk5OTk5OX0"
    ".c2lnbmF0dXJlLXNpZ25hdHVyZQ"
)
OPAQUE = "d3b07384-d9a0-4c9b-8f3e-1a2b3c4d5e6f"  # also matches an RFC 6750 error code's shape

# Credentials as a provider may hand them out: visible ASCII, no spaces.
secrets = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=8, max_size=40)
noise = st.text(max_size=60)


def shown(text: str, secret: str) -> bool:
    # the marker itself is no leak: a secret such as "[redacte" is a piece of it
    text = text.replace(REDACTED, "\x00")
    return secret in text or JWT_SHAPE.search(text) is not None


def has_controls(text: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain words", "plain words"),
        (f"bad token {OPAQUE}!", f"bad token {REDACTED}!"),
        (f"Bearer {JWT}", f"Bearer {REDACTED}"),
        (f"{OPAQUE[:10]}\u200b{OPAQUE[10:]}", REDACTED),  # a zero-width space does not hide it
        (f"{OPAQUE[:10]}\n{OPAQUE[10:]}", REDACTED),
        ("line\r\nforged: entry\x1b[31m", "lineforged: entry[31m"),
        ("\u202eevil", "evil"),  # a right-to-left override
        ("caf\u00e9 \u2603", "caf\u00e9 \u2603"),  # printable non-ASCII stays
    ],
)
def test_sanitize(text: str, expected: str) -> None:
    assert sanitize(text, [OPAQUE]) == expected


def test_sanitize_bounds_and_marks_the_cut() -> None:
    out = sanitize("x" * 10_000)
    assert len(out) == MAX_CHARS and out.endswith("...")
    assert len(sanitize("y" * 50, limit=10)) == 10


def test_redaction_comes_before_the_cut() -> None:
    text = "a" * (MAX_CHARS - 10) + OPAQUE
    out = sanitize(text, [OPAQUE])
    assert OPAQUE[:8] not in out  # no prefix of the secret survives the cut


def test_non_strings_are_rendered_bounded_never_by_repr() -> None:
    deep: Any = []
    for _ in range(100_000):  # repr() would raise RecursionError
        deep = [deep]
    assert len(sanitize(deep)) <= MAX_CHARS
    assert sanitize({"k": [1, None, True, 2.5, OPAQUE]}, [OPAQUE]) == (
        f"{{'k': [1, None, True, 2.5, '{REDACTED}']}}"
    )
    assert sanitize(10**5000) == "<int>"  # str() of it would raise ValueError
    assert sanitize(b"bytes \xff " + OPAQUE.encode(), [OPAQUE]) == f"bytes \ufffd {REDACTED}"


def test_short_secrets_are_not_searched_for() -> None:
    assert sanitize("abc", ["", "a"]) == "abc"


@pytest.mark.parametrize("secret", ["redacted", "[redacted]", "dact"])
def test_a_secret_the_marker_holds_is_still_removed(secret: str) -> None:
    out = sanitize(f"x {secret} y", [secret])
    assert secret not in out and out == "x *** y"


def test_a_secret_with_quotes_inside_a_structure_is_not_escaped_past_the_search() -> None:
    secret = "q'uo\"te\\d-token"
    out = sanitize([secret, {"k": secret}], [secret])
    assert secret not in out and "uo" not in out and out.count(REDACTED) == 2


def test_redact_keeps_the_shape() -> None:
    assert redact(f"x\n{OPAQUE}", [OPAQUE]) == f"x\n{REDACTED}"
    assert redact("x" * 500) == "x" * 500


def test_sanitize_json_keeps_structure_and_cleans_strings() -> None:
    data = {"supported": ["2025-11-25"], OPAQUE: {"t": JWT, "n": 3, "f": 1.5, "b": None}}
    assert sanitize_json(data, [OPAQUE]) == {
        "supported": ["2025-11-25"],
        REDACTED: {"t": REDACTED, "n": 3, "f": 1.5, "b": None},
    }
    deep: Any = "leaf"
    for _ in range(50):
        deep = [deep]
    assert "..." in json.dumps(sanitize_json(deep))
    assert len(sanitize_json(list(range(10_000)))) < 300
    assert sanitize_json(10**100) is None
    assert sanitize_json(object()) is None


@FUZZ
@given(before=noise, after=noise, secret=secrets, limit=st.integers(0, 300))
@example(before="a", after="b", secret="[redacte", limit=300)  # a piece of the marker
def test_no_secret_no_control_character_and_bounded(
    before: str, after: str, secret: str, limit: int
) -> None:
    for value in (before + secret + after, [before, {after: secret}], before + JWT + after):
        out = sanitize(value, [secret], limit=limit)
        assert not shown(out, secret)
        assert not has_controls(out)
        assert len(out) <= max(limit, 3)


@FUZZ
@given(value=st.recursive(st.none() | st.integers() | noise, st.lists, max_leaves=8), s=secrets)
@example(value=500000000, s="00000000")  # an all-digit credential inside a number
@example(value=[2.000000005], s="00000000")
def test_sanitize_json_never_shows_the_secret(value: Any, s: str) -> None:
    out = sanitize_json([value, s, {s: s}], [s])
    assert not shown(repr(out), s)


# ---- the parsers apply it with the credential they are given -------------------------


@FUZZ
@given(secret=secrets, before=noise, after=noise)
@example(secret="RPCError", before="", after="")  # in the class name: skipped, not failed
def test_a_jsonrpc_error_never_carries_the_secret(secret: str, before: str, after: str) -> None:
    def texts(echo: str) -> tuple[str, ...]:
        body = {"jsonrpc": "2.0", "id": 1, "error": {"code": 1, "message": echo, "data": [echo]}}
        message = parse_message(json.dumps(body), [secret])
        assert isinstance(message, ErrorResponse)
        error = message.error
        return (str(error), repr(error), repr(vars(error)), error.message, repr(error.data))

    # a "secret" the error shows without being sent one (its class name: "RPCError") is
    # no leak
    assume(not any(secret in text for text in texts("")))
    for text in texts(before + secret + after):
        assert not shown(text, secret)


@FUZZ
@given(secret=secrets, member=st.sampled_from(["jsonrpc", "id"]), wrap=st.booleans())
def test_invalid_message_never_quotes_the_secret(secret: str, member: str, wrap: bool) -> None:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "result": {}}
    body[member] = [secret] if wrap or member == "id" else secret
    with pytest.raises(InvalidMessage) as info:
        parse_message(json.dumps(body), [secret])
    assert not shown(str(info.value), secret)
    assert len(str(info.value)) < 150


def test_invalid_message_quotes_at_most_a_few_characters() -> None:
    with pytest.raises(InvalidMessage) as info:
        parse_message(json.dumps({"jsonrpc": "x" * 10_000, "id": 1, "result": {}}))
    assert len(str(info.value)) < 100


@FUZZ
@given(
    secret=st.text(st.sampled_from("abcdef0123456789-._~"), min_size=8, max_size=40),
    template=st.sampled_from(
        [
            'Bearer error="{t}"',
            "Bearer error={t}",
            'Bearer error_description="{t}", scope="{t}"',
            'Bearer realm="x", resource_metadata="{t}", {t}="{t}"',
            "{t} realm=x",
            "Basic {t}, Bearer error=invalid_token, x={t}",
        ]
    ),
    status=st.sampled_from([401, 403]),
)
def test_a_challenge_never_carries_the_secret(secret: str, template: str, status: int) -> None:
    value = template.format(t=secret)
    for challenge in parse_challenges(value, [secret]):
        assert not shown(repr(vars(challenge)), secret)
    error = error_for_status(
        status, {"www-authenticate": value}, had_session=True, era="sse", now=0.0, secrets=[secret]
    )
    assert error is not None
    assert not shown(str(error) + repr(error) + repr(vars(error)), secret)


def test_an_error_code_shaped_token_is_no_error_code() -> None:
    header = {"www-authenticate": f'Bearer error="{OPAQUE}"'}
    error = error_for_status(401, header, had_session=True, era="sse", now=0.0, secrets=[OPAQUE])
    assert isinstance(error, Unauthorized)
    assert error.challenge is not None and error.challenge.error == REDACTED
    # without the credential the challenge keeps the server's text, but no message
    # quotes an unregistered code
    plain = error_for_status(401, header, had_session=True, era="sse", now=0.0)
    assert isinstance(plain, Unauthorized)
    assert OPAQUE not in str(plain) + repr(plain)
    assert str(plain) == "401 Unauthorized (unregistered error code)"
    for code in ("invalid_token", "insufficient_scope", "use_dpop_nonce"):
        header = {"www-authenticate": f"Bearer error={code}"}
        quoted = error_for_status(401, header, had_session=True, era="sse", now=0.0)
        assert str(quoted) == f"401 Unauthorized ({code})"


@FUZZ
@given(secret=secrets, before=noise)
def test_an_unexpected_content_type_never_carries_the_secret(secret: str, before: str) -> None:
    with pytest.raises(UnexpectedContentType) as info:
        check_content_type(f"x/{before}{secret}", ("application/json",), [secret])
    error = info.value
    assert not shown(str(error) + repr(error) + repr(vars(error)), secret)


def test_module_exports() -> None:
    assert _sanitize.__all__ == sorted(_sanitize.__all__)
