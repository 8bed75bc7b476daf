"""DPoP (RFC 9449): proofs, nonces, and a bound token through BearerAuth on loopback."""

from __future__ import annotations

import base64
import hashlib
import json
from urllib.parse import parse_qs

import httpx
import jwt
import pytest

from helpers.loopback import Headers, serve
from mcpconn import BearerAuth, Token, TokenRequest, TokenSource
from mcpconn.oauth._dpop import DPoPKey, DPoPToken
from mcpconn.oauth._grants import request_token


def _verify(proof: str, key: DPoPKey) -> dict[str, object]:
    header = jwt.get_unverified_header(proof)
    assert header["typ"] == "dpop+jwt" and header["alg"] == "ES256"
    assert header["jwk"] == key.public_jwk and "d" not in header["jwk"]
    public = jwt.PyJWK(header["jwk"], algorithm="ES256")
    claims: dict[str, object] = jwt.decode(proof, public, algorithms=["ES256"])
    return claims


def test_a_proof_is_signed_fresh_and_names_the_request() -> None:
    key = DPoPKey()
    one = _verify(key.proof("post", "https://rs.example.com/mcp?x=1#f", access_token="tok"), key)
    two = _verify(key.proof("POST", "https://rs.example.com/mcp", access_token="tok"), key)
    assert one["htm"] == "POST" and one["htu"] == "https://rs.example.com/mcp"  # no query
    digest = hashlib.sha256(b"tok").digest()
    assert one["ath"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert one["jti"] != two["jti"]
    assert isinstance(one["iat"], int) and "nonce" not in one
    assert "ath" not in _verify(key.proof("POST", "https://as.example.com/token"), key)


def test_nonces_are_kept_per_origin_and_bounded() -> None:
    key = DPoPKey()
    assert key.remember_nonce("https://rs.example.com/mcp", "n1")
    assert not key.remember_nonce("https://RS.example.com/other", "n1")  # not new
    assert not key.remember_nonce("https://rs.example.com/mcp", "x" * 1000)
    assert not key.remember_nonce("https://rs.example.com/mcp", None)
    assert _verify(key.proof("GET", "https://rs.example.com/a"), key)["nonce"] == "n1"
    assert "nonce" not in _verify(key.proof("GET", "https://as.example.com/a"), key)


def test_reprs_show_no_key_material() -> None:
    key = DPoPKey()
    token = DPoPToken("bound-secret-token", key=key)
    assert repr(key) == f"<DPoPKey ES256 jkt={key.thumbprint}>"
    assert "bound-secret-token" not in repr(token) and key.public_jwk["x"] not in repr(token)
    assert token.same_credential(Token("bound-secret-token"))


async def test_bearer_auth_sends_dpop_and_retries_once_with_the_servers_nonce() -> None:
    key = DPoPKey()
    calls: list[TokenRequest] = []

    async def provider(request: TokenRequest) -> Token:
        calls.append(request)
        return DPoPToken("bound-token", key=key)

    seen: list[dict[str, str]] = []

    async def handler(
        method: str, path: str, headers: Headers, body: bytes
    ) -> tuple[int, Headers, bytes]:
        h = dict(headers)
        seen.append(h)
        claims = jwt.decode(h["dpop"], options={"verify_signature": False})
        if claims.get("nonce") != "server-nonce":
            return (
                401,
                [
                    ("www-authenticate", 'DPoP error="use_dpop_nonce"'),
                    ("dpop-nonce", "server-nonce"),
                ],
                b"",
            )
        return 200, [], b"ok"

    auth = BearerAuth(TokenSource(provider), "alice")
    async with serve(handler) as server, httpx.AsyncClient(auth=auth) as client:
        first = await client.post(server.url + "/mcp", content=b"{}")
        second = await client.post(server.url + "/mcp", content=b"{}")
    assert (first.status_code, second.status_code) == (200, 200)
    assert [h["authorization"] for h in seen] == ["DPoP bound-token"] * 3
    assert len(calls) == 1  # a nonce retry is not a refresh
    jtis = {jwt.decode(h["dpop"], options={"verify_signature": False})["jti"] for h in seen}
    assert len(jtis) == 3  # a fresh proof every time
    assert len(seen) == 3  # the second request carried the nonce from the start


async def test_the_token_endpoint_nonce_is_retried_once() -> None:
    key = DPoPKey()
    proofs: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        proofs.append(request.headers["dpop"])
        nonce = jwt.decode(request.headers["dpop"], options={"verify_signature": False}).get(
            "nonce"
        )
        if nonce != "as-nonce":
            return httpx.Response(
                400, json={"error": "use_dpop_nonce"}, headers={"DPoP-Nonce": "as-nonce"}
            )
        assert parse_qs(request.content.decode())["grant_type"] == ["client_credentials"]
        return httpx.Response(200, json={"access_token": "t", "token_type": "DPoP"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        response = await request_token(
            http, "https://as.example.com/token", {"grant_type": "client_credentials"}, dpop=key
        )
    assert response.token_type == "DPoP" and len(proofs) == 2
    for proof in proofs:
        assert _verify(proof, key)["htu"] == "https://as.example.com/token"


async def test_a_nonce_that_never_satisfies_is_not_retried_forever() -> None:
    key = DPoPKey()
    n = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal n
        n += 1
        return httpx.Response(
            400, json={"error": "use_dpop_nonce"}, headers={"DPoP-Nonce": f"n{n}"}
        )

    from mcpconn import OAuthError

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        with pytest.raises(OAuthError) as info:
            await request_token(http, "https://as.example.com/token", {}, dpop=key)
    assert info.value.status_code == 400 and n == 2  # one retry, then the answer stands
    assert json.dumps(key.public_jwk)  # the key is still usable
