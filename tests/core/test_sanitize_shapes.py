"""Credentials nobody told the sanitizer about: found by their shape, and only those."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mcpconn._core.sanitize import REDACTED, redact, sanitize, sanitize_json

FUZZ = settings(max_examples=300, deadline=None)

# ---- the shapes, one example each ---------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("auth failed: Bearer abc123DEF456", f"auth failed: Bearer {REDACTED}"),
        ("bearer dGhpcyBpcyBh/b+c==, then", f"bearer {REDACTED}, then"),
        ("Basic dXNlcjpwYXNzd29yZA==", f"Basic {REDACTED}"),
        ("DPoP Zm9vYmFyYmF6cXV4", f"DPoP {REDACTED}"),
        ("GET /cb?code=SplxlOBeZQQYbYS6WxSbIA&state=xyz", f"GET /cb?code={REDACTED}&state=xyz"),
        (
            "grant_type=refresh_token&refresh_token=tGzv3JO&x=1",
            f"grant_type=refresh_token&refresh_token={REDACTED}&x=1",
        ),
        ("?access_token=a.b.c#frag", f"?access_token={REDACTED}#frag"),
        ("id_token=x client_secret=s3cr3t", f"id_token={REDACTED} client_secret={REDACTED}"),
        (
            '{"access_token": "2YotnFZFEjr1zCsicMWpAA", "token_type": "Bearer"}',
            f'{{"access_token": "{REDACTED}", "token_type": "Bearer"}}',
        ),
        (
            '{"refreshToken":"a\\"b","expires_in":3600}',
            f'{{"refreshToken":"{REDACTED}","expires_in":3600}}',
        ),
        ("{'client_secret': 'abc'}", f"{{'client_secret': '{REDACTED}'}}"),
        ('{"token": "t0k3n"}', f'{{"token": "{REDACTED}"}}'),
        ("password=hunter2", f"password={REDACTED}"),
        ("Cookie: sid=31d4d96e407aad42; lang=en", f"Cookie: {REDACTED}"),
        ("set-cookie: id=a3fWa; Expires=Thu, 21 Oct 2021 07:28:00 GMT", f"set-cookie: {REDACTED}"),
        ("Proxy-Authorization: Basic YWxhZGRpbjpvcGVuc2VzYW1l", f"Proxy-Authorization: {REDACTED}"),
        ("Authorization: Bearer x", f"Authorization: {REDACTED}"),
        ("X-Api-Key: 12345", f"X-Api-Key: {REDACTED}"),
        (
            '{"X-Auth-Token": "abc", "X-Request-Id": "7"}',
            f'{{"X-Auth-Token": "{REDACTED}", "X-Request-Id": "7"}}',
        ),
        ("x-goog-api-key:k", f"x-goog-api-key:{REDACTED}"),
        ("api_key=k&v=1", f"api_key={REDACTED}&v=1"),
        (
            "proxy http://alice:pa55@proxy.example:3128 refused",
            f"proxy http://{REDACTED}@proxy.example:3128 refused",
        ),
        # JWTs: eyJ glued to text, a JWE's five segments, a header with a space or newline
        ("xeyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.", f"x{REDACTED}"),
        ("a eyJhbGciOiJSU0EifQ.a2V5.aXY.Y2lwaGVy.dGFn b", f"a {REDACTED} b"),
        ("ewogICJhbGciOiAiSFMyNTYiCn0.eyJzdWIiOiJ4In0.c2ln", REDACTED),
        ("eyAiYWxnIjogIkhTMjU2IiB9.e30.c2ln!", f"{REDACTED}!"),
    ],
)
def test_each_shape_loses_its_value_and_keeps_its_name(text: str, expected: str) -> None:
    assert sanitize(text, limit=500) == expected
    assert redact(expected) == expected  # idempotent: the marker is no credential


@pytest.mark.parametrize(
    "text",
    [
        'Bearer realm="mcp", error="invalid_token", error_description="The access token expired"',
        "Bearer error=invalid_token",
        "Basic realm=x",
        "401: Bearer token required; basic auth is not supported",
        "Bearer authentication failed",
        "invalid token: expired",
        "error code: 500 (code 42); status_code=401, errcode=7",
        '{"code": -32602, "message": "Invalid params", "data": {"token_type": "Bearer"}}',
        "X-Request-Id: 9f1c2a7e; Content-Type: application/json; Retry-After: 5",
        'WWW-Authenticate: Bearer resource_metadata="https://mcp.example.com/.well-known/x"',
        "mcpconn 0.1.0 at https://api.example.com:8443/mcp/v1.2.3 (see mcpconn._core.sanitize)",
        "the keys of the cookies: secretary passed the new eyes.open.now test",
        "mailto:someone@example.com and https://example.com/@user",
        "café ☃ naïve façade",
    ],
)
def test_ordinary_text_is_unchanged(text: str) -> None:
    assert redact(text) == text
    assert sanitize(text, limit=500) == text


def test_mapping_values_under_a_credential_key_go_whatever_their_type() -> None:
    data = {
        "access_token": "abc",
        "Authorization": ["Bearer", "x"],
        "nested": {"client_secret": 12345678, "Cookie": "a=b", "refresh_token": None},
        "code": -32000,
        "token_type": "Bearer",
        "ok": True,
    }
    assert sanitize_json(data) == {
        "access_token": REDACTED,
        "Authorization": REDACTED,
        "nested": {"client_secret": REDACTED, "Cookie": REDACTED, "refresh_token": None},
        "code": -32000,
        "token_type": "Bearer",
        "ok": True,
    }
    shown = sanitize(data, limit=1000)
    for raw in ("abc", "'x'", "12345678", "a=b"):
        assert raw not in shown
    assert "-32000" in shown and "'token_type': 'Bearer'" in shown


# ---- properties: no generated credential survives, ordinary text is untouched ----------

B64TOKEN = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/"
# Not pure letters: a run of letters after "Bearer" is prose unless it is long.
scheme_tokens = st.builds(
    lambda head, digit, tail, pad: head + digit + tail + "=" * pad,
    st.text(st.sampled_from(B64TOKEN), min_size=7, max_size=40),
    st.sampled_from("0123456789-._~+/"),
    st.text(st.sampled_from(B64TOKEN), max_size=20),
    st.integers(0, 2),
)
# A value that form encoding, a query string or a header could carry.
form_values = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="&\"',;<>#\\"),
    min_size=8,
    max_size=40,
)
header_values = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters="\"'\\"),
    min_size=8,
    max_size=60,
).filter(lambda v: v.strip() == v)
# Before and after a credential: ends that cannot be read as part of its value.
before = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30).map(
    lambda s: s + " "
)
after = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30).map(
    lambda s: " " + s
)

SCHEMES = ["Bearer", "bearer", "BASIC", "DPoP"]
PARAMS = [
    "access_token",
    "refresh_token",
    "id_token",
    "client_secret",
    "code",
    "device_code",
    "code_verifier",
    "client_assertion",
    "subject_token",
    "api_key",
    "password",
    "token",
]
JSON_KEYS = [
    "access_token",
    "refresh_token",
    "id_token",
    "client_secret",
    "accessToken",
    "refreshToken",
    "idToken",
    "clientSecret",
    "token",
    "password",
    "api_key",
]
HEADERS = [
    "Cookie",
    "Set-Cookie",
    "Authorization",
    "Proxy-Authorization",
    "X-Api-Key",
    "X-Auth-Token",
    "x-amz-security-token",
    "X-Goog-Api-Key",
    "X-Session",
]


def credential_texts() -> st.SearchStrategy[tuple[str, str]]:
    """(text holding a credential, the credential), in every shape."""
    return st.one_of(
        st.tuples(st.sampled_from(SCHEMES), scheme_tokens).map(lambda p: (f"{p[0]} {p[1]}", p[1])),
        st.tuples(st.sampled_from(PARAMS), form_values, st.sampled_from("?& ")).map(
            lambda p: (f"{p[2]}{p[0]}={p[1]}&next=1", p[1])
        ),
        st.tuples(st.sampled_from(JSON_KEYS), form_values, st.sampled_from(['"', "'"])).map(
            lambda p: (f"{{{p[2]}{p[0]}{p[2]}: {json.dumps(p[1])}, {p[2]}x{p[2]}: 1}}", p[1])
        ),
        st.tuples(st.sampled_from(HEADERS), header_values).map(lambda p: (f"{p[0]}: {p[1]}", p[1])),
        jwts().map(lambda jwt: (jwt, jwt)),
    )


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwts() -> st.SearchStrategy[str]:
    header = st.builds(
        lambda gap, alg: b64url(f'{{{gap}"alg":{json.dumps(alg)}}}'.encode()),
        st.sampled_from(["", " ", "\n", "\r\n", "\t"]),
        st.sampled_from(["HS256", "RS256", "none", "ES384"]),
    )
    segment = st.binary(min_size=1, max_size=60).map(b64url)
    return st.builds(
        lambda h, p, s, extra: ".".join([h, p, s, *extra]),
        header,
        segment,
        st.one_of(st.just(""), segment),
        st.sampled_from([[], ["a2V5", "dGFn"]]),
    )


@FUZZ
@given(shaped=credential_texts(), head=before, tail=after, limit=st.integers(20, 400))
def test_no_generated_credential_survives(
    shaped: tuple[str, str], head: str, tail: str, limit: int
) -> None:
    text, credential = shaped
    kept = head + text.replace(credential, REDACTED) + tail
    assume(credential[:8] not in kept and credential not in REDACTED)
    for out in (sanitize(head + text + tail, limit=limit), redact(head + text + tail)):
        assert credential[:8] not in out  # not even a prefix, wherever the cut falls
    once = redact(head + text + tail)
    assert redact(once) == once


@FUZZ
@given(key=st.sampled_from(JSON_KEYS + HEADERS), value=form_values | st.integers(10**7, 10**12))
def test_no_credential_under_a_key_survives_json(key: str, value: object) -> None:
    body = {"error": {"details": [{key: value, "n": 1}]}}
    assert str(value) not in json.dumps(sanitize_json(body))
    assert str(value) not in sanitize(body, limit=1000)


WORDS = [
    "error",
    "the",
    "token",
    "tokens",
    "expired",
    "Bearer token",
    "basic auth",
    "code",
    "key",
    "keys",
    "cookies",
    "secretary",
    "authentication",
    "authorized",
    "passed",
    "new",
    "eyes",
    "1.2.3",
    "v2.0.1-rc.1",
    "api.example.com",
    "https://api.example.com/mcp",
    "status=500",
    "retry=3",
    "id=42",
    "code:",
    "HTTP/1.1",
    "(",
    ")",
    ",",
    ";",
    "-",
    "invalid_token",
    'Bearer realm="mcp"',
    "Bearer error=insufficient_scope",
    "X-Request-Id: 7",
    "500",
    "Content-Type: text/html",
    "token_type",
    "a@b.example",
    "mcpconn._core.jsonrpc",
    "café",
]


@FUZZ
@given(words=st.lists(st.sampled_from(WORDS), max_size=30), glue=st.sampled_from([" ", ", ", "; "]))
def test_ordinary_sentences_are_unchanged(words: list[str], glue: str) -> None:
    text = glue.join(words)
    assert redact(text) == text
    assert sanitize(text, limit=len(text) + 3) == text


# ---- cost: linear in the input, whatever its shape ----------------------------------

#: Far past what a server sends (`sanitize` reads 16 KiB): a linear pass over it takes
#: a fraction of a second, a quadratic one hours, so a pattern that backtracks over the
#: input (an unbounded ``x-`` header name without its lookbehind, say) cannot finish
#: within the suite's per-test timeout. No clock is read: the outcome is never close.
_HOSTILE_SIZE = 1 << 20


@pytest.mark.parametrize(
    ("unit", "redacted"),
    [
        ("eyJ", False),
        ("ey", False),
        ("x-", False),
        ("Bearer a", False),
        ("a.b", False),
        ("access_token=", True),
        ('"token": "\\', True),
        ("://a:", False),
        ("code=x&", True),
    ],
)
def test_redacting_hostile_text_is_linear_work(unit: str, redacted: bool) -> None:
    text = unit * (_HOSTILE_SIZE // len(unit))
    out = redact(text)
    assert (REDACTED in out) is redacted  # the whole text was looked at, and judged
    assert (out == text) is not redacted
