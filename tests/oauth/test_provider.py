"""OAuthProvider as one layer: its decisions against a scripted authorization service.

The HTTP peer is an `httpx.MockTransport` (a unit test of the provider only; the
loopback and conformance tests cover the wire). Every answer is counted, so each
test asserts exactly which requests a decision cost.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from mcpconn import Challenge, OAuthError, ReauthRequired, Token, TokenRequest
from mcpconn.oauth import AuthorizationPrompt, ClientRegistration, OAuthProvider

MCP = "https://mcp.example.com/mcp"
REDIRECT = "http://127.0.0.1:9/cb"


@dataclass
class Service:
    """A protected resource and its authorization server(s), scripted per test."""

    issuer: str = "https://as1.example.com"
    scopes_supported: list[str] | None = None
    refresh_error: str | None = None  # answer every refresh grant with this error
    refresh_status: int = 400
    rotate: bool = True
    cimd: bool = False
    hits: Counter[str] = field(default_factory=Counter)
    forms: list[dict[str, list[str]]] = field(default_factory=list)
    auth_headers: list[str | None] = field(default_factory=list)
    n: int = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url).split("?")[0]
        host = request.url.host
        self.hits[f"{request.method} {host}{request.url.path}"] += 1
        if url == MCP:
            return httpx.Response(401, headers={"www-authenticate": 'Bearer scope="mcp"'})
        if url == "https://mcp.example.com/.well-known/oauth-protected-resource/mcp":
            body = {"resource": MCP, "authorization_servers": [self.issuer]}
            if self.scopes_supported is not None:
                body["scopes_supported"] = self.scopes_supported
            return httpx.Response(200, json=body)
        issuer = f"https://{host}"
        if request.url.path == "/.well-known/oauth-authorization-server":
            return httpx.Response(
                200,
                json={
                    "issuer": issuer,
                    "authorization_endpoint": f"{issuer}/authorize",
                    "token_endpoint": f"{issuer}/token",
                    "registration_endpoint": f"{issuer}/register",
                    "code_challenge_methods_supported": ["S256"],
                    "scopes_supported": ["mcp", "offline_access"],
                    "client_id_metadata_document_supported": self.cimd,
                },
            )
        if request.url.path == "/register":
            return httpx.Response(201, json={"client_id": f"{host}-client", "client_secret": "s"})
        if request.url.path == "/token":
            form = parse_qs(request.content.decode())
            self.forms.append(form)
            self.auth_headers.append(request.headers.get("authorization"))
            if form["grant_type"] == ["refresh_token"] and self.refresh_error:
                return httpx.Response(self.refresh_status, json={"error": self.refresh_error})
            self.n += 1
            body = {"access_token": f"at-{self.n}", "token_type": "Bearer", "expires_in": 60}
            if self.rotate or form["grant_type"] == ["authorization_code"]:
                body["refresh_token"] = f"rt-{self.n}"
            return httpx.Response(200, json=body)
        return httpx.Response(404)

    def grants(self) -> list[str]:
        return [f["grant_type"][0] for f in self.forms]


class Browser:
    """A user agent that approves at once (the authorization server is scripted here)."""

    def __init__(self) -> None:
        self.prompts: list[AuthorizationPrompt] = []

    async def __call__(self, prompt: AuthorizationPrompt) -> str:
        self.prompts.append(prompt)
        q = parse_qs(urlsplit(prompt.url).query)
        host = urlsplit(prompt.url).netloc
        params = {"code": "c", "state": q["state"][0], "iss": f"https://{host}"}
        return f"{q['redirect_uri'][0]}?{urlencode(params)}"

    def scopes(self) -> list[str | None]:
        return [p.scope for p in self.prompts]


def provider(service: Service, browser: Browser | None = None, **kwargs: object) -> OAuthProvider:
    http = httpx.AsyncClient(transport=httpx.MockTransport(service.handler))
    return OAuthProvider(
        user_agent=browser,
        redirect_uri=REDIRECT,
        http=http,
        **kwargs,  # type: ignore[arg-type]
    )


def req(*, force: bool = False, challenge: Challenge | None = None) -> TokenRequest:
    return TokenRequest("alice", force=force, challenge=challenge, resource=MCP)


async def test_first_login_then_refresh_grants_with_rotation() -> None:
    service, browser = Service(), Browser()
    oauth = provider(service, browser)
    assert (await oauth(req())).raw == "at-1"
    assert browser.scopes() == ["mcp offline_access"]  # challenge scope + offline_access
    assert (await oauth(req(force=True))).raw == "at-2"  # expired: refresh, no login
    assert (await oauth(req(force=True))).raw == "at-3"
    assert service.grants() == ["authorization_code", "refresh_token", "refresh_token"]
    # rotation honoured: each refresh presents the newest refresh token
    assert [f.get("refresh_token") for f in service.forms[1:]] == [["rt-1"], ["rt-2"]]
    assert all(f["resource"] == [MCP] for f in service.forms)
    assert len(browser.prompts) == 1
    assert service.hits["POST mcp.example.com/mcp"] == 1  # probed once, before the first login
    assert service.hits["POST as1.example.com/register"] == 1


async def test_without_rotation_the_old_refresh_token_is_kept() -> None:
    service = Service(rotate=False)
    oauth = provider(service, Browser())
    await oauth(req())
    await oauth(req(force=True))
    await oauth(req(force=True))
    assert [f.get("refresh_token") for f in service.forms[1:]] == [["rt-1"], ["rt-1"]]


async def test_a_revoked_refresh_token_is_forgotten_and_never_retried() -> None:
    service = Service(refresh_error="invalid_grant")
    oauth = provider(service, None)
    oauth._user_agent = Browser()  # first login only
    await oauth(req())
    oauth._user_agent = None  # no human at hand from now on
    with pytest.raises(ReauthRequired):
        await oauth(req(force=True))
    with pytest.raises(ReauthRequired):
        await oauth(req(force=True))
    assert service.grants() == ["authorization_code", "refresh_token"]  # one try, no loop


async def test_a_transient_refresh_failure_keeps_the_refresh_token() -> None:
    service = Service(refresh_error="temporarily_unavailable", refresh_status=503)
    oauth = provider(service, Browser())
    await oauth(req())
    with pytest.raises(OAuthError) as info:
        await oauth(req(force=True))
    assert info.value.error == "temporarily_unavailable"
    service.refresh_error = None
    assert (await oauth(req(force=True))).raw == "at-2"
    assert service.forms[-1]["refresh_token"] == ["rt-1"]


async def test_step_up_widens_scope_and_is_bounded() -> None:
    service, browser = Service(), Browser()
    oauth = provider(service, browser, max_step_ups=2)
    await oauth(req())
    up = Challenge(error="insufficient_scope", scope="mcp:write")
    await oauth(req(force=True, challenge=up))
    await oauth(req(force=True, challenge=up))
    with pytest.raises(ReauthRequired, match="step-up"):
        await oauth(req(force=True, challenge=up))
    assert browser.scopes() == [
        "mcp offline_access",
        "mcp offline_access mcp:write",
        "mcp offline_access mcp:write",
    ]
    assert "refresh_token" not in service.grants()  # a refresh cannot widen scope
    await oauth(req())  # a normal request resets the count
    await oauth(req(force=True, challenge=up))
    assert len(browser.prompts) == 4


async def test_a_moved_authorization_server_gets_a_new_registration_and_no_old_secrets() -> None:
    service, browser = Service(), Browser()
    oauth = provider(service, browser)
    await oauth(req())
    service.issuer = "https://as2.example.com"
    token = await oauth(req(force=True, challenge=Challenge(error="invalid_token")))
    assert token.raw == "at-2"
    assert service.grants() == ["authorization_code", "authorization_code"]  # no refresh at as2
    assert service.hits["POST as2.example.com/register"] == 1
    assert service.auth_headers[1] is not None
    assert "as1" not in str(service.forms[1]) and "rt-1" not in str(service.forms[1])
    assert urlsplit(browser.prompts[1].url).netloc == "as2.example.com"
    assert "client_id=as2.example.com-client" in browser.prompts[1].url


async def test_pre_registered_client_and_metadata_document_take_precedence() -> None:
    service, browser = Service(cimd=True), Browser()
    pre = ClientRegistration("pre", "secret", issuer="https://as1.example.com")
    await provider(service, browser, clients=[pre], client_metadata_url="https://me/cimd.json")(
        req()
    )
    assert "client_id=pre" in browser.prompts[0].url
    await provider(service, browser, client_metadata_url="https://me/cimd.json")(req())
    assert "client_id=https%3A%2F%2Fme%2Fcimd.json" in browser.prompts[1].url
    assert service.hits["POST as1.example.com/register"] == 0
    assert service.forms[1]["client_id"] == ["https://me/cimd.json"]  # a public client
    other = ClientRegistration("elsewhere", "x", issuer="https://other.example.com")
    await provider(service, browser, clients=[other])(req())
    # another issuer's client is never presented here: this one registers instead
    assert service.hits["POST as1.example.com/register"] == 1
    assert "client_id=as1.example.com-client" in browser.prompts[2].url


async def test_without_a_resource_the_provider_refuses() -> None:
    with pytest.raises(OAuthError, match="resource"):
        await provider(Service())(TokenRequest("alice"))


def test_reprs_show_no_secret() -> None:
    prompt = AuthorizationPrompt("https://as/authorize?state=SECRETSTATE", "alice", MCP, None)
    assert "SECRETSTATE" not in repr(prompt)
    oauth = provider(Service())
    assert repr(oauth) == "<OAuthProvider unentered keys=0>"
    assert "secret-value" not in repr(ClientRegistration("c", "secret-value"))
    body = json.dumps({"error": "invalid_grant", "error_description": "rt-SECRET"})
    from mcpconn.oauth._responses import parse_token_response

    with pytest.raises(OAuthError) as info:
        parse_token_response(400, body.encode())
    assert "rt-SECRET" not in repr(info.value) and "rt-SECRET" not in str(info.value)


async def test_no_login_without_pkce_s256() -> None:
    class NoPKCE(Service):
        def handler(self, request: httpx.Request) -> httpx.Response:
            response = super().handler(request)
            if request.url.path == "/.well-known/oauth-authorization-server":
                doc = response.json()
                del doc["code_challenge_methods_supported"]
                return httpx.Response(200, json=doc)
            return response

    service, browser = NoPKCE(), Browser()
    with pytest.raises(ReauthRequired, match="PKCE"):
        await provider(service, browser)(req())
    assert not browser.prompts and not service.forms


GARBAGE: list[httpx.Response] = [
    httpx.Response(200, content=b"not json"),
    httpx.Response(200, content=b"[" * 50_000),
    httpx.Response(200, content=b'{"a": "' + b"x" * 200_000 + b'"}'),
    httpx.Response(200, json=[1, 2, 3]),
    httpx.Response(200, json={"issuer": 5, "resource": None, "access_token": {"x": 1}}),
    httpx.Response(200, json={"access_token": "eyJhbGciOi.broken.jwt", "token_type": "Bearer"}),
    httpx.Response(302, headers={"location": "https://evil.example.com/"}),
    httpx.Response(500, content=b"\xff\xfe"),
]


@pytest.mark.parametrize("path", ["prm", "as", "register", "token"])
@pytest.mark.parametrize("answer", range(len(GARBAGE)))
async def test_garbage_from_any_endpoint_is_an_mcpconn_error(path: str, answer: int) -> None:
    """Hostile input raises only our errors, on every call (a second call after garbage too)."""
    from mcpconn import MCPConnError

    class Hostile(Service):
        def handler(self, request: httpx.Request) -> httpx.Response:
            p = request.url.path
            which = (
                "prm"
                if "protected-resource" in p
                else "as"
                if "authorization-server" in p
                else p.strip("/")
            )
            if which == path:
                self.hits["garbage"] += 1
                return GARBAGE[answer]
            return super().handler(request)

    service = Hostile()
    oauth = provider(service, Browser())
    for _ in range(2):
        try:
            token = await oauth(req())
        except MCPConnError:
            continue
        assert token.raw.startswith("at-")  # garbage it could skip (e.g. at the PRM)
    assert service.hits["garbage"] >= 1


def test_provider_options_are_checked() -> None:
    for bad in (0, -1, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="login_wait"):
            OAuthProvider(login_wait=bad)
    with pytest.raises(ValueError, match="max_step_ups"):
        OAuthProvider(max_step_ups=-1)


@pytest.mark.parametrize(
    "body",
    [
        {"access_token": "at-x", "token_type": "DPoP", "expires_in": 60},
        {"access_token": "eyJhbGciOiJIUzI1NiJ9.bm90LWpzb24.sig", "token_type": "Bearer"},
        {"token_type": "Bearer"},
    ],
)
async def test_an_unusable_token_after_a_login_parks_instead_of_asking_again(
    body: dict[str, object],
) -> None:
    class Unusable(Service):
        def handler(self, request: httpx.Request) -> httpx.Response:
            if request.url.path == "/token":
                self.forms.append(parse_qs(request.content.decode()))
                return httpx.Response(200, json=body)
            return super().handler(request)

    service, browser = Unusable(), Browser()
    with pytest.raises(ReauthRequired, match="code exchange"):
        await provider(service, browser)(req())
    assert len(browser.prompts) == 1


async def test_discovery_is_shared_by_every_principal_of_a_server() -> None:
    service, browser = Service(), Browser()
    oauth = provider(service, browser)
    await oauth(req())
    await oauth(TokenRequest("bob", resource=MCP))
    assert service.hits["POST mcp.example.com/mcp"] == 1  # one probe
    assert service.hits["GET mcp.example.com/.well-known/oauth-protected-resource/mcp"] == 1
    assert [p.principal for p in browser.prompts] == ["alice", "bob"]  # but two logins


@pytest.mark.parametrize("dpop", [True, False])
async def test_dpop_is_used_only_when_asked_and_offered(dpop: bool) -> None:
    from mcpconn.oauth._dpop import DPoPToken

    class Binding(Service):
        proofs: int = 0

        def handler(self, request: httpx.Request) -> httpx.Response:
            response = super().handler(request)
            if request.url.path == "/.well-known/oauth-authorization-server":
                return httpx.Response(
                    200, json=response.json() | {"dpop_signing_alg_values_supported": ["ES256"]}
                )
            if request.url.path == "/token" and "dpop" in request.headers:
                self.proofs += 1
                body = response.json() | {"token_type": "DPoP"}
                return httpx.Response(200, json=body)
            return response

    service = Binding()
    oauth = provider(service, Browser(), dpop=dpop)
    first = await oauth(req())
    second = await oauth(req(force=True))  # the refresh grant carries a proof too
    if dpop:
        assert isinstance(first, DPoPToken) and isinstance(second, DPoPToken)
        assert first.key is second.key and service.proofs == 2
    else:
        assert type(first) is type(second) is Token and service.proofs == 0


async def test_a_direct_get_may_name_the_server_by_its_audience() -> None:
    service, browser = Service(), Browser()
    token = await provider(service, browser)(TokenRequest("alice", audience=MCP + "/"))
    assert token.raw == "at-1" and browser.prompts[0].resource == MCP
