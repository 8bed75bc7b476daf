"""Reading exp/iat from JWTs without verifying: every shape we could think of."""

from __future__ import annotations

import base64
import json
import math

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcpconn._core.jwt import MAX_NUMERIC_DATE, Claims, numeric_date, read_claims
from mcpconn._exceptions import MalformedTokenError

EXP = 1_900_000_000
KEY = "a-test-secret-long-enough-for-hs256!"  # >= 32 bytes, or pyjwt warns
IAT = 1_899_996_400


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def seg(obj: object) -> str:
    return b64(json.dumps(obj).encode())


HEADER = seg({"alg": "HS256", "typ": "JWT"})


def with_payload(payload: str) -> str:
    return f"{HEADER}.{payload}.{b64(b'sig')}"


def test_reads_exp_and_iat_from_a_real_jwt() -> None:
    raw = jwt.encode({"sub": "alice", "exp": EXP, "iat": IAT}, KEY, algorithm="HS256")
    assert read_claims(raw) == Claims(kind="jws", expires_at=float(EXP), issued_at=float(IAT))


def test_signature_is_not_verified() -> None:
    raw = jwt.encode({"exp": EXP}, KEY, algorithm="HS256")
    forged = raw.rsplit(".", 1)[0] + "." + b64(b"not the signature")
    assert read_claims(forged).expires_at == EXP


def test_unsecured_jwt_with_empty_signature_is_read() -> None:
    raw = f"{seg({'alg': 'none'})}.{seg({'exp': EXP})}."
    assert read_claims(raw).expires_at == EXP


def test_no_exp_means_no_known_expiry_but_still_a_jwt() -> None:
    raw = jwt.encode({"sub": "alice"}, KEY, algorithm="HS256")
    assert read_claims(raw) == Claims(kind="jws", expires_at=None, issued_at=None)


def test_float_exp_is_a_valid_numeric_date() -> None:
    assert read_claims(with_payload(seg({"exp": 1_900_000_000.5}))).expires_at == 1_900_000_000.5


def test_padded_segments_are_tolerated() -> None:
    padded = base64.urlsafe_b64encode(json.dumps({"exp": EXP}).encode()).decode()
    assert padded.endswith("=")
    assert read_claims(with_payload(padded)).expires_at == EXP


@pytest.mark.parametrize(
    "raw",
    [
        "opaque-token-123",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "ya29.a0AfH6SMBx.more-stuff",  # dots, but no JOSE header: opaque
        "abc.def.ghi",
        "eyJ",  # no dot at all: always opaque, even if it starts like a JWT
        "eyJhbGciOiJIUzI1NiJ9",
        "a.b",
        "....",
    ],
)
def test_opaque_strings_have_no_known_expiry(raw: str) -> None:
    assert read_claims(raw) == Claims(kind="opaque")


def test_five_segments_is_a_jwe_with_no_readable_expiry() -> None:
    raw = ".".join([seg({"alg": "RSA-OAEP", "enc": "A256GCM"}), b64(b"k"), b64(b"iv"), "ct", "tag"])
    assert read_claims(raw) == Claims(kind="jwe")


def test_jwe_with_a_header_that_is_not_an_object_is_malformed() -> None:
    raw = ".".join([b64(b'{"alg": '), "a", "b", "c", "d"])
    with pytest.raises(MalformedTokenError, match="header"):
        read_claims(raw)


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (f"{HEADER}.{seg({'exp': EXP})}", "2 segments"),  # truncated: signature missing
        (f"{HEADER}.{seg({'exp': EXP})}.sig.extra", "4 segments"),
        (f"{HEADER}.a.b.c.d.e", "6 segments"),
        (f"{HEADER}.", "2 segments"),
        (with_payload("abcde"), "cannot be decoded"),  # length % 4 == 1: not base64
        (with_payload("ab$cd"), "base64url"),
        (with_payload("ab+/"), "base64url"),  # standard alphabet, not url-safe
        (f"{HEADER}.{seg({'exp': EXP})}.s!g", "base64url"),
        (with_payload(b64(b"not json")), "payload is not valid JSON"),
        (with_payload(b64(b"\xff\xfe")), "payload is not valid JSON"),
        (with_payload(seg([1, 2, 3])), "payload is not a JSON object"),
        (with_payload(seg("exp")), "payload is not a JSON object"),
        (with_payload(""), "payload is not valid JSON"),
        (f"{b64(b'{not json')}.{seg({'exp': EXP})}.sig", "header is not valid JSON"),
        (f"{b64(b'{}')[:-1]}x.{seg({'exp': EXP})}.sig", "header"),
        (with_payload(seg({"exp": "1900000000"})), "str"),
        (with_payload(seg({"exp": True})), "bool"),
        (with_payload(seg({"exp": False})), "bool"),
        (with_payload(seg({"exp": None})), "NoneType"),
        (with_payload(seg({"exp": [EXP]})), "list"),
        (with_payload(seg({"exp": {"t": EXP}})), "dict"),
        (with_payload(seg({"exp": 10**30})), "NumericDate"),  # huge
        (with_payload(seg({"exp": 10**400})), "NumericDate"),  # too big for a float
        (with_payload(seg({"exp": MAX_NUMERIC_DATE + 1})), "NumericDate"),
        (with_payload(seg({"exp": -1})), "NumericDate"),
        (with_payload(b64(b'{"exp": NaN}')), "NumericDate"),
        (with_payload(b64(b'{"exp": Infinity}')), "NumericDate"),
        (with_payload(b64(b'{"exp": -Infinity}')), "NumericDate"),
        (with_payload(b64(b'{"exp": 1e400}')), "NumericDate"),
    ],
)
def test_malformed_jwts_raise_a_clear_error(raw: str, match: str) -> None:
    with pytest.raises(MalformedTokenError, match=match) as info:
        read_claims(raw)
    assert raw not in str(info.value)
    assert raw not in repr(info.value)


def test_pyjwt_errors_are_wrapped_and_chained() -> None:
    # An unsupported critical header extension: pyjwt refuses it even unverified.
    raw = f"{seg({'alg': 'HS256', 'crit': ['x-unknown'], 'x-unknown': 1})}.{seg({'exp': EXP})}.s"
    with pytest.raises(MalformedTokenError) as info:
        read_claims(raw)
    assert isinstance(info.value.__cause__, jwt.PyJWTError)


@pytest.mark.parametrize("iat", ["yesterday", True, None, -5, 10**30, [1], math.inf])
def test_a_bad_iat_is_ignored_not_rejected(iat: object) -> None:
    payload = (
        seg({"exp": EXP, "iat": iat})
        if iat is not math.inf
        else b64(b'{"exp": 1900000000, "iat": Infinity}')
    )
    assert read_claims(with_payload(payload)) == Claims(kind="jws", expires_at=EXP, issued_at=None)


def test_non_str_is_rejected() -> None:
    with pytest.raises(MalformedTokenError, match="bytes"):
        read_claims(b"abc")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0.0),
        (1, 1.0),
        (1.5, 1.5),
        (MAX_NUMERIC_DATE, MAX_NUMERIC_DATE),
        (True, None),
        (-0.5, None),
        (math.nan, None),
        (math.inf, None),
        (10**400, None),
        ("1", None),
    ],
)
def test_numeric_date(value: object, expected: float | None) -> None:
    assert numeric_date(value) == expected


@given(st.text(max_size=200))
def test_read_claims_never_crashes_on_text(raw: str) -> None:
    try:
        claims = read_claims(raw)
    except MalformedTokenError:
        return
    assert claims.kind in ("opaque", "jws", "jwe")
    if claims.expires_at is not None:
        assert 0 <= claims.expires_at <= MAX_NUMERIC_DATE


@given(
    st.dictionaries(
        st.sampled_from(["exp", "iat", "sub", "aud"]),
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(),
            st.floats(allow_nan=True, allow_infinity=True),
            st.text(max_size=5),
        ),
    )
)
def test_any_payload_is_read_or_rejected_never_valid_forever(payload: dict[str, object]) -> None:
    raw = with_payload(b64(json.dumps(payload).encode()))
    try:
        claims = read_claims(raw)
    except MalformedTokenError:
        assert "exp" in payload
        return
    if "exp" in payload:
        assert claims.expires_at == numeric_date(payload["exp"])
        assert claims.expires_at is not None
    else:
        assert claims.expires_at is None
