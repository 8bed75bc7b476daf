"""Sans-IO discovery: which documents, in which order, and which ones to believe."""

from __future__ import annotations

import pytest

from mcpconn import Challenge, OAuthError
from mcpconn.oauth._discovery import (
    authorization_server_urls,
    canonical_resource,
    legacy_authorization_server,
    legacy_metadata_urls,
    parse_authorization_server,
    parse_protected_resource,
    protected_resource_urls,
)

AS_DOC = {
    "issuer": "https://as.example.com",
    "authorization_endpoint": "https://as.example.com/authorize",
    "token_endpoint": "https://as.example.com/token",
    "code_challenge_methods_supported": ["S256"],
}


def test_prm_urls_challenge_first_then_path_aware_then_root() -> None:
    hint = Challenge(resource_metadata="https://mcp.example.com/custom/prm.json")
    assert protected_resource_urls("https://mcp.example.com/mcp", hint) == [
        "https://mcp.example.com/custom/prm.json",
        "https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
        "https://mcp.example.com/.well-known/oauth-protected-resource",
    ]


def test_prm_urls_without_challenge_or_path() -> None:
    assert protected_resource_urls("https://mcp.example.com/", None) == [
        "https://mcp.example.com/.well-known/oauth-protected-resource"
    ]
    assert protected_resource_urls("https://mcp.example.com/a/b/", Challenge()) == [
        "https://mcp.example.com/.well-known/oauth-protected-resource/a/b",
        "https://mcp.example.com/.well-known/oauth-protected-resource",
    ]


@pytest.mark.parametrize(
    "hint",
    ["javascript:alert(1)", "/relative", "https://x/#frag", "https://x/\r\nSet-Cookie: a", ""],
)
def test_prm_url_hint_that_is_not_an_http_url_is_ignored(hint: str) -> None:
    urls = protected_resource_urls("https://mcp.example.com/mcp", Challenge(resource_metadata=hint))
    assert urls[0] == "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"


def test_prm_duplicate_hint_is_tried_once() -> None:
    root = "https://mcp.example.com/.well-known/oauth-protected-resource"
    urls = protected_resource_urls("https://mcp.example.com", Challenge(resource_metadata=root))
    assert urls == [root]


def test_as_urls_with_path_in_the_spec_order() -> None:
    assert authorization_server_urls("https://auth.example.com/tenant1") == [
        "https://auth.example.com/.well-known/oauth-authorization-server/tenant1",
        "https://auth.example.com/.well-known/openid-configuration/tenant1",
        "https://auth.example.com/tenant1/.well-known/openid-configuration",
    ]


def test_as_urls_without_path() -> None:
    assert authorization_server_urls("https://auth.example.com/") == [
        "https://auth.example.com/.well-known/oauth-authorization-server",
        "https://auth.example.com/.well-known/openid-configuration",
    ]


def test_legacy_2025_03_26_uses_the_server_origin() -> None:
    assert legacy_metadata_urls("http://localhost:9/mcp") == [
        "http://localhost:9/.well-known/oauth-authorization-server"
    ]
    server = legacy_authorization_server("http://localhost:9/mcp")
    assert server.issuer == "http://localhost:9"
    assert server.authorization_endpoint == "http://localhost:9/authorize"
    assert server.token_endpoint == "http://localhost:9/token"
    assert server.registration_endpoint == "http://localhost:9/register"


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("HTTPS://MCP.Example.COM/mcp", "https://mcp.example.com/mcp"),
        ("https://mcp.example.com/", "https://mcp.example.com"),
        ("https://mcp.example.com/mcp/#x", "https://mcp.example.com/mcp"),
        ("https://mcp.example.com:8443/Path", "https://mcp.example.com:8443/Path"),
    ],
)
def test_canonical_resource(url: str, canonical: str) -> None:
    assert canonical_resource(url) == canonical


def test_prm_resource_is_kept_exactly_as_published() -> None:
    prm = parse_protected_resource(
        {"resource": "http://localhost:5", "authorization_servers": ["http://localhost:6"]},
        server_url="http://localhost:5/mcp",
    )
    assert prm.resource == "http://localhost:5"  # no "/" appended
    assert prm.authorization_servers == ("http://localhost:6",)
    assert prm.scopes_supported is None


@pytest.mark.parametrize(
    "resource",
    [
        "https://evil.example.com/mcp",
        "https://mcp.example.com/other",
        "https://mcp.example.com/mc",  # a prefix, but not at a segment boundary
        "http://mcp.example.com/mcp",  # another scheme
        "https://mcp.example.com/mcp?tenant=2",
        None,
        42,
    ],
)
def test_prm_for_another_resource_is_refused(resource: object) -> None:
    with pytest.raises(OAuthError):
        parse_protected_resource(
            {"resource": resource, "authorization_servers": ["https://as.example.com"]},
            server_url="https://mcp.example.com/mcp",
        )


def test_prm_without_usable_authorization_servers_is_refused() -> None:
    for servers in ([], ["not a url"], "https://as.example.com", None, [1, None]):
        with pytest.raises(OAuthError):
            parse_protected_resource(
                {"resource": "https://mcp.example.com/mcp", "authorization_servers": servers},
                server_url="https://mcp.example.com/mcp",
            )


def test_prm_bounds_its_lists() -> None:
    prm = parse_protected_resource(
        {
            "resource": "https://mcp.example.com/mcp",
            "authorization_servers": ["https://as.example.com"] * 1000,
            "scopes_supported": ["s"] * 1000 + [3],
        },
        server_url="https://mcp.example.com/mcp",
    )
    assert len(prm.authorization_servers) <= 64
    assert prm.scopes_supported is not None and len(prm.scopes_supported) <= 64


def test_as_metadata_parsed() -> None:
    doc = AS_DOC | {
        "scopes_supported": ["a", "offline_access"],
        "authorization_response_iss_parameter_supported": True,
        "client_id_metadata_document_supported": True,
        "registration_endpoint": "https://as.example.com/register",
        "token_endpoint_auth_methods_supported": ["none"],
    }
    server = parse_authorization_server(doc, expected_issuer="https://as.example.com")
    assert server.iss_parameter_supported and server.client_id_metadata_document_supported
    assert server.offers_offline_access
    assert server.registration_endpoint == "https://as.example.com/register"
    assert server.token_endpoint_auth_methods_supported == ("none",)


@pytest.mark.parametrize(
    "issuer",
    ["https://attacker.example.com", "https://as.example.com/", "HTTPS://as.example.com", None],
)
def test_as_metadata_with_another_issuer_is_refused(issuer: object) -> None:
    with pytest.raises(OAuthError, match="different issuer"):
        parse_authorization_server(AS_DOC | {"issuer": issuer}, expected_issuer=AS_DOC["issuer"])


@pytest.mark.parametrize("methods", [None, [], ["plain"], "S256"])
def test_as_metadata_without_s256_is_read_but_flagged(methods: object) -> None:
    doc = dict(AS_DOC)
    if methods is None:
        del doc["code_challenge_methods_supported"]
    else:
        doc["code_challenge_methods_supported"] = methods
    server = parse_authorization_server(doc, expected_issuer=AS_DOC["issuer"])
    assert not server.supports_s256  # usable for client_credentials, never for a code flow
    assert parse_authorization_server(AS_DOC, expected_issuer=AS_DOC["issuer"]).supports_s256


@pytest.mark.parametrize("field", ["authorization_endpoint", "token_endpoint"])
def test_as_metadata_without_a_valid_endpoint_is_refused(field: str) -> None:
    for bad in (None, "ftp://as.example.com/x", "/token", 7):
        with pytest.raises(OAuthError, match="endpoint"):
            parse_authorization_server(AS_DOC | {field: bad}, expected_issuer=AS_DOC["issuer"])


def test_as_metadata_iss_flag_must_be_true_not_truthy() -> None:
    doc = AS_DOC | {"authorization_response_iss_parameter_supported": "yes"}
    assert not parse_authorization_server(
        doc, expected_issuer=AS_DOC["issuer"]
    ).iss_parameter_supported
