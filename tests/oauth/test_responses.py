"""Sans-IO token and registration answers: bounded numbers, no credential in a repr."""

from __future__ import annotations

import base64
import json
import math

import pytest

from mcpconn import OAuthError
from mcpconn.oauth._identity import (
    ClientRegistration,
    apply_client_auth,
    parse_registration,
    registration_request,
)
from mcpconn.oauth._responses import (
    MAX_BODY_BYTES,
    MAX_EXPIRES_IN,
    parse_token_response,
    token_from_response,
)

ACCESS = "opaque-access-token-value"
REFRESH = "opaque-refresh-token-value"


def _ok(**fields: object) -> bytes:
    return json.dumps({"access_token": ACCESS, "token_type": "Bearer", **fields}).encode()


def test_token_response_parsed() -> None:
    resp = parse_token_response(200, _ok(expires_in=3600, refresh_token=REFRESH, scope="a b"))
    assert (resp.access_token, resp.refresh_token) == (ACCESS, REFRESH)
    assert resp.expires_in == 3600.0 and resp.scope == "a b"
    assert ACCESS not in repr(resp) and REFRESH not in repr(resp)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (60, 60.0),
        ("120", 120.0),
        (1e300, MAX_EXPIRES_IN),
        (10**400, MAX_EXPIRES_IN),
        (True, None),
        (-5, None),
        (0, None),
        ("soon", None),
        (None, None),
        ([1], None),
        ("nan", None),
        ("inf", MAX_EXPIRES_IN),
    ],
)
def test_expires_in_is_bounded(value: object, expected: float | None) -> None:
    body = (
        _ok(expires_in=value)
        if not (isinstance(value, int) and value > 10**300)
        else (
            b'{"access_token": "'
            + ACCESS.encode()
            + b'", "token_type": "Bearer", "expires_in": 1'
            + b"0" * 400
            + b"}"
        )
    )
    got = parse_token_response(200, body).expires_in
    assert got == expected and (got is None or math.isfinite(got))


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[1, 2]",
        json.dumps({"token_type": "Bearer"}).encode(),
        json.dumps({"access_token": "", "token_type": "Bearer"}).encode(),
        json.dumps({"access_token": "has space", "token_type": "Bearer"}).encode(),
        json.dumps({"access_token": "x\r\nInjected: 1", "token_type": "Bearer"}).encode(),
        json.dumps({"access_token": 12, "token_type": "Bearer"}).encode(),
        json.dumps({"access_token": ACCESS}).encode(),
        b"[" * 100_000,
        b'{"a": "' + b"x" * MAX_BODY_BYTES + b'"}',
    ],
)
def test_garbage_token_answers_raise_oauth_error_only(body: bytes) -> None:
    with pytest.raises(OAuthError):
        parse_token_response(200, body)


def test_error_answer_keeps_the_code_never_the_description() -> None:
    body = json.dumps({"error": "invalid_grant", "error_description": ACCESS}).encode()
    with pytest.raises(OAuthError) as info:
        parse_token_response(400, body)
    assert info.value.error == "invalid_grant" and info.value.status_code == 400
    assert ACCESS not in str(info.value) and ACCESS not in repr(info.value)
    with pytest.raises(OAuthError) as info:
        parse_token_response(400, json.dumps({"error": ACCESS + " x"}).encode())
    assert ACCESS not in str(info.value)
    with pytest.raises(OAuthError) as info:
        parse_token_response(500, b"<html>")
    assert info.value.error is None


def test_an_invalid_refresh_token_is_dropped_not_fatal() -> None:
    resp = parse_token_response(200, _ok(refresh_token="with space"))
    assert resp.refresh_token is None


def test_token_from_response_reads_expiry_and_refuses_non_bearer() -> None:
    token = token_from_response(parse_token_response(200, _ok(expires_in=10)), now=1000.0)
    assert token.raw == ACCESS and token.expires_at == 1010.0
    assert token.issued_at == 1000.0 and token.lifetime == 10.0  # its margin scales with it
    dpop = parse_token_response(
        200, json.dumps({"access_token": ACCESS, "token_type": "DPoP"}).encode()
    )
    with pytest.raises(OAuthError, match="non-bearer"):
        token_from_response(dpop, now=0.0)


# -- client identity ----------------------------------------------------------------


def test_registration_request_for_a_native_client() -> None:
    body = registration_request(
        client_name="agg",
        redirect_uri="http://127.0.0.1:1/cb",
        auth_methods_supported=("client_secret_post", "none"),
    )
    assert body["application_type"] == "native"
    assert body["grant_types"] == ["authorization_code", "refresh_token"]
    assert body["redirect_uris"] == ["http://127.0.0.1:1/cb"]
    assert body["token_endpoint_auth_method"] == "client_secret_post"
    web = registration_request(
        client_name="agg", redirect_uri="https://agg.example.com/cb", auth_methods_supported=None
    )
    assert web["application_type"] == "web"


def test_registration_answer_parsed_and_bound_to_its_issuer() -> None:
    body = json.dumps(
        {
            "client_id": "cid",
            "client_secret": "sek",
            "token_endpoint_auth_method": "client_secret_post",
        }
    ).encode()
    reg = parse_registration(201, body, issuer="https://as")
    assert (reg.client_id, reg.client_secret, reg.auth_method, reg.issuer) == (
        "cid",
        "sek",
        "client_secret_post",
        "https://as",
    )
    assert "sek" not in repr(reg)
    assert ClientRegistration.from_json(reg.to_json()) == reg


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, b'{"error": "invalid_client_metadata"}'),
        (201, b"{}"),
        (201, b'{"client_id": 5}'),
        (500, b""),
    ],
)
def test_registration_failures(status: int, body: bytes) -> None:
    with pytest.raises(OAuthError):
        parse_registration(status, body, issuer="https://as")


def test_stored_registration_garbage_reads_as_none() -> None:
    assert ClientRegistration.from_json("nope") is None
    assert ClientRegistration.from_json('{"client_secret": "x"}') is None
    assert ClientRegistration.from_json('{"client_id": "c", "auth_method": "weird"}') is None


@pytest.mark.parametrize(
    ("client", "supported", "method"),
    [
        (ClientRegistration("c", "s"), None, "client_secret_basic"),
        (ClientRegistration("c", "s"), ("client_secret_post",), "client_secret_post"),
        (ClientRegistration("c", "s"), ("none",), "none"),
        (ClientRegistration("c"), ("client_secret_basic",), "none"),
        (
            ClientRegistration("c", "s", "client_secret_post"),
            ("client_secret_basic",),
            "client_secret_post",
        ),
        (ClientRegistration("c", "s"), ("private_key_jwt",), "client_secret_basic"),
    ],
)
def test_token_endpoint_auth_method_choice(
    client: ClientRegistration, supported: tuple[str, ...] | None, method: str
) -> None:
    assert client.method_for(supported) == method


def test_client_auth_applied() -> None:
    client = ClientRegistration("id:with/odd", "se cret")
    form: dict[str, str] = {}
    headers = apply_client_auth(client, "client_secret_basic", form)
    assert form == {"client_id": "id:with/odd"}  # never the secret
    decoded = base64.b64decode(headers["Authorization"].removeprefix("Basic ")).decode()
    assert decoded == "id%3Awith%2Fodd:se%20cret"
    form = {}
    assert apply_client_auth(client, "client_secret_post", form) == {}
    assert form == {"client_id": "id:with/odd", "client_secret": "se cret"}
    form = {}
    apply_client_auth(client, "none", form)
    assert form == {"client_id": "id:with/odd"}


def test_client_registration_validates() -> None:
    with pytest.raises(ValueError, match="client_id"):
        ClientRegistration("")
    with pytest.raises(ValueError, match="auth method"):
        ClientRegistration("c", auth_method="magic")  # type: ignore[arg-type]
