"""The Token value: from_jwt, explicit expiry, and never showing the credential."""

from __future__ import annotations

import math
import re

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcpconn._core.token import Token
from mcpconn._exceptions import MalformedTokenError

KEY = "a-test-secret-long-enough-for-hs256!"
NOW = 1_900_000_000.0


def mint(**claims: object) -> str:
    return jwt.encode(dict(claims), KEY, algorithm="HS256")


def test_from_jwt_reads_the_claims() -> None:
    token = Token.from_jwt(mint(exp=int(NOW) + 3600, iat=int(NOW)))
    assert token.expires_at == NOW + 3600
    assert token.issued_at == NOW
    assert token.lifetime == 3600


def test_opaque_token_has_no_known_expiry() -> None:
    token = Token.from_jwt("opaque-credential")
    assert token == Token("opaque-credential")
    assert token.expires_at is None
    assert token.lifetime is None


def test_the_seed_id_only_token_gets_its_expiry_from_the_jwt() -> None:
    # The seed stored an ID token with no ExpiresAt and served it forever.
    id_token = mint(sub="alice", exp=int(NOW) - 60, aud="muster")
    assert Token.from_jwt(id_token).expires_at == NOW - 60


@pytest.mark.parametrize(
    ("claim", "expires_at", "expires_in", "expected"),
    [
        (NOW + 100, None, None, NOW + 100),
        (NOW + 100, NOW + 50, None, NOW + 50),  # explicit earlier: wins
        (NOW + 100, NOW + 500, None, NOW + 100),  # explicit later: the claim wins
        (NOW + 100, None, 30, NOW + 30),
        (NOW + 100, None, 300, NOW + 100),
        (NOW + 100, NOW + 80, 60, NOW + 60),
        (None, NOW + 80, None, NOW + 80),
        (None, None, 60, NOW + 60),
    ],
)
def test_explicit_expiry_wins_only_when_earlier(
    claim: float | None, expires_at: float | None, expires_in: float | None, expected: float
) -> None:
    raw = mint(exp=claim) if claim is not None else "opaque"
    token = Token.from_jwt(raw, expires_at=expires_at, expires_in=expires_in, now=NOW)
    assert token.expires_at == expected


def test_expires_in_needs_now() -> None:
    with pytest.raises(ValueError, match="now"):
        Token.from_jwt("opaque", expires_in=60)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 10**400])
def test_non_finite_explicit_expiry_is_rejected(bad: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        Token("opaque", expires_at=bad)
    with pytest.raises(ValueError, match="finite"):
        Token.from_jwt("opaque", expires_in=bad, now=NOW)


@pytest.mark.parametrize("bad", ["soon", True, [1]])
def test_non_numeric_explicit_expiry_is_rejected(bad: object) -> None:
    with pytest.raises(TypeError):
        Token("opaque", expires_at=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "raw",
    ["", " ", "   ", "\t", "\n", " abc", "abc ", "ab cd", "abc\r\nX-Evil: 1", "tök", "\x00abc"],
)
def test_empty_whitespace_and_control_characters_are_malformed(raw: str) -> None:
    with pytest.raises(MalformedTokenError):
        Token(raw)
    with pytest.raises(MalformedTokenError):
        Token.from_jwt(raw)


def test_non_str_raw_is_malformed() -> None:
    with pytest.raises(MalformedTokenError, match="NoneType"):
        Token(None)  # type: ignore[arg-type]


def test_a_malformed_jwt_is_an_error_not_a_token() -> None:
    header = mint(exp=1).split(".")[0]
    with pytest.raises(MalformedTokenError):
        Token.from_jwt(f"{header}.not-json!.sig")


def test_repr_and_str_never_show_the_credential() -> None:
    raw = mint(sub="alice", exp=int(NOW))
    token = Token.from_jwt(raw)
    for text in (repr(token), str(token), f"{token}", repr([token]), repr({"t": token})):
        assert raw not in text
        for part in raw.split("."):
            assert part not in text
    assert token.fingerprint in repr(token)
    assert "2030-03-17T17:46:40+00:00" in repr(token)
    assert "unknown" in repr(Token("opaque-credential"))


def test_fingerprint_tells_tokens_apart() -> None:
    a, b = Token("credential-a"), Token("credential-b")
    assert a.fingerprint != b.fingerprint
    assert a.fingerprint == Token("credential-a", expires_at=1).fingerprint
    assert a.fingerprint.startswith("sha256:")
    assert len(a.fingerprint) == len("sha256:") + 8


def test_same_credential_compares_raw_only() -> None:
    a = Token("credential-a", expires_at=10)
    assert a.same_credential(Token("credential-a", expires_at=20))
    assert not a.same_credential(Token("credential-b", expires_at=10))
    assert not a.same_credential(None)


def test_token_is_frozen() -> None:
    token = Token("credential")
    with pytest.raises(AttributeError):
        token.raw = "other"  # type: ignore[misc]


def test_lifetime_is_none_when_iat_is_not_before_exp() -> None:
    assert Token("x", expires_at=10, issued_at=20).lifetime is None


@given(st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1))
def test_any_visible_ascii_string_is_a_token_or_a_clear_error(raw: str) -> None:
    try:
        token = Token.from_jwt(raw, now=NOW)
    except MalformedTokenError:
        return
    assert token.raw == raw
    # The repr is built from the fingerprint and the expiry only.
    assert re.fullmatch(
        r"<Token sha256:[0-9a-f]{8} expires_at=(?:[0-9T:+-]+|unknown)>", repr(token)
    )
