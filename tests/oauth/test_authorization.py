"""Sans-IO authorization request and redirect: PKCE, state, iss, scope selection."""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import parse_qs, urlsplit

import pytest

from mcpconn import Challenge, OAuthError
from mcpconn.oauth._authorization import (
    MAX_SCOPES,
    authorization_url,
    code_challenge,
    parse_redirect,
    select_scope,
    verifier_from,
)
from mcpconn.oauth._discovery import AuthorizationServer

SERVER = AuthorizationServer(
    issuer="https://as.example.com",
    authorization_endpoint="https://as.example.com/authorize?tenant=1",
    token_endpoint="https://as.example.com/token",
)
REDIRECT = "http://127.0.0.1:8765/callback"


def test_pkce_s256_matches_rfc_7636_appendix_b() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert code_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_verifier_from_random_bytes() -> None:
    verifier = verifier_from(bytes(range(32)))
    assert 43 <= len(verifier) <= 128
    digest = hashlib.sha256(verifier.encode()).digest()
    assert code_challenge(verifier) == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    with pytest.raises(ValueError, match="32 random bytes"):
        verifier_from(b"short")
    with pytest.raises(ValueError, match="verifier"):
        code_challenge("too short")


def _query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def test_authorization_url_carries_everything() -> None:
    verifier = verifier_from(b"\x01" * 32)
    url = authorization_url(
        SERVER,
        client_id="c1",
        redirect_uri=REDIRECT,
        state="st",
        verifier=verifier,
        scope="a b",
        resource="https://mcp.example.com/mcp",
    )
    assert url.startswith("https://as.example.com/authorize?tenant=1&")
    q = _query(url)
    assert q["response_type"] == ["code"] and q["client_id"] == ["c1"]
    assert q["redirect_uri"] == [REDIRECT] and q["state"] == ["st"]
    assert q["code_challenge"] == [code_challenge(verifier)]
    assert q["code_challenge_method"] == ["S256"]
    assert q["resource"] == ["https://mcp.example.com/mcp"]
    assert q["scope"] == ["a b"]
    assert q["tenant"] == ["1"]
    assert verifier not in url


def test_authorization_url_omits_an_empty_scope() -> None:
    url = authorization_url(
        SERVER,
        client_id="c",
        redirect_uri=REDIRECT,
        state="s",
        verifier=verifier_from(b"\x02" * 32),
        scope=None,
        resource="https://r",
    )
    assert "scope" not in _query(url)


# -- scope selection ----------------------------------------------------------------


def test_scope_from_the_challenge_wins() -> None:
    chosen = select_scope(challenge=Challenge(scope="mcp:basic"), scopes_supported=["x", "y"])
    assert chosen == "mcp:basic"


def test_scope_from_scopes_supported_when_the_challenge_has_none() -> None:
    chosen = select_scope(challenge=Challenge(), scopes_supported=["a", "b", "c"])
    assert chosen == "a b c"


def test_scope_omitted_when_nothing_defines_it() -> None:
    assert select_scope(challenge=None, scopes_supported=None) is None
    assert select_scope(challenge=Challenge(scope="  "), scopes_supported=[]) is None


def test_step_up_asks_for_the_union() -> None:
    chosen = select_scope(
        challenge=Challenge(error="insufficient_scope", scope="mcp:write"),
        scopes_supported=["mcp:profile"],
        previous=["mcp:basic"],
    )
    assert chosen == "mcp:basic mcp:write"


def test_offline_access_added_only_when_asked() -> None:
    assert select_scope(challenge=None, scopes_supported=["a"], offline_access=True) == (
        "a offline_access"
    )
    assert select_scope(challenge=None, scopes_supported=["a"]) == "a"
    both = select_scope(
        challenge=Challenge(scope="a offline_access"), scopes_supported=None, offline_access=True
    )
    assert both == "a offline_access"


def test_scope_tokens_that_are_not_rfc_6749_are_dropped_and_the_count_bounded() -> None:
    hostile = Challenge(scope='ok "quoted" back\\slash ' + " ".join(f"s{i}" for i in range(500)))
    chosen = select_scope(challenge=hostile, scopes_supported=None)
    assert chosen is not None
    words = chosen.split()
    assert words[0] == "ok" and '"quoted"' not in words and "back\\slash" not in words
    assert len(words) == MAX_SCOPES


# -- the redirect -----------------------------------------------------------------------


def _redirect(**params: str) -> str:
    from urllib.parse import urlencode

    return f"{REDIRECT}?{urlencode(params)}"


def _parse(url: str, *, iss_supported: bool = False) -> str:
    return parse_redirect(
        url, redirect_uri=REDIRECT, state="s1", issuer=SERVER.issuer, iss_supported=iss_supported
    )


def test_redirect_with_code_state_and_iss() -> None:
    assert _parse(_redirect(code="c", state="s1", iss=SERVER.issuer), iss_supported=True) == "c"


def test_redirect_without_iss_when_not_advertised() -> None:
    assert _parse(_redirect(code="c", state="s1")) == "c"


def test_redirect_without_the_promised_iss_is_refused() -> None:
    with pytest.raises(OAuthError, match="lacks the iss"):
        _parse(_redirect(code="c", state="s1"), iss_supported=True)


@pytest.mark.parametrize(
    "iss", ["https://evil.example.com", SERVER.issuer + "/", "HTTPS://as.example.com", ""]
)
@pytest.mark.parametrize("advertised", [True, False])
def test_redirect_with_another_iss_is_refused_even_unadvertised(iss: str, advertised: bool) -> None:
    with pytest.raises(OAuthError, match="different issuer"):
        _parse(_redirect(code="c", state="s1", iss=iss), iss_supported=advertised)


@pytest.mark.parametrize("state", ["s2", "", "S1"])
def test_redirect_with_the_wrong_state_is_refused(state: str) -> None:
    with pytest.raises(OAuthError, match="state"):
        _parse(_redirect(code="c", state=state))


def test_redirect_without_state_or_with_two_is_refused() -> None:
    with pytest.raises(OAuthError, match="state"):
        _parse(_redirect(code="c"))
    with pytest.raises(OAuthError, match="repeats"):
        _parse(f"{REDIRECT}?code=c&state=s1&state=s1")


def test_redirect_elsewhere_is_refused() -> None:
    with pytest.raises(OAuthError, match="redirect URI"):
        _parse("https://evil.example.com/callback?code=c&state=s1")
    with pytest.raises(OAuthError, match="redirect URI"):
        _parse("http://127.0.0.1:8765/other?code=c&state=s1")


def test_redirect_error_keeps_only_a_well_formed_code() -> None:
    with pytest.raises(OAuthError) as info:
        _parse(_redirect(error="access_denied", error_description="no way", state="s1"))
    assert info.value.error == "access_denied"
    assert "no way" not in str(info.value)
    with pytest.raises(OAuthError) as info:
        _parse(_redirect(error="<script>", state="s1"))
    assert info.value.error == "invalid error code"


def test_redirect_without_a_code_is_refused() -> None:
    with pytest.raises(OAuthError, match="no authorization code"):
        _parse(_redirect(state="s1"))
    with pytest.raises(OAuthError, match="no authorization code"):
        _parse(_redirect(state="s1", code="x" * 5000))


@pytest.mark.parametrize("garbage", [None, 12, "x" * 20000, "http://[::1"])
def test_redirect_garbage_is_refused(garbage: object) -> None:
    with pytest.raises(OAuthError):
        _parse(garbage)  # type: ignore[arg-type]
