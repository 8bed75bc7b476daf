"""What the provider sees: `TokenRequest.challenge` (the rejection that forced a refresh)
and `TokenRequest.resource` (the server, on every request made for a connection)."""

from __future__ import annotations

import itertools

import anyio

from helpers.loopback import Headers, serve
from mcpconn import (
    Backoff,
    BearerAuth,
    ServerConfig,
    State,
    Supervisor,
    Token,
    TokenRequest,
    TokenSource,
)
from mcpconn.testing import MockServer

RESOURCE = "https://downstream.example.com/mcp"
STEP_UP = 'Bearer error="insufficient_scope", scope="mcp:write", resource_metadata="https://x/prm"'
EXPIRED = 'Bearer error="invalid_token", error_description="expired"'


class Recorder:
    """A provider that mints a new opaque token per call and remembers every request."""

    def __init__(self, *, step_up: bool = False) -> None:
        self.requests: list[TokenRequest] = []
        self.step_up = step_up
        self._n = itertools.count()

    async def __call__(self, request: TokenRequest) -> Token:
        self.requests.append(request)
        return Token(f"opaque-{next(self._n)}")


def test_token_request_defaults() -> None:
    request = TokenRequest("alice")
    assert request.challenge is None and request.resource is None


async def test_a_direct_get_names_no_resource_and_no_challenge() -> None:
    provider = Recorder()
    await TokenSource(provider).get("alice")
    assert provider.requests[0].resource is None and provider.requests[0].challenge is None


async def _rejecting(status: int, challenge: str, provider: Recorder) -> list[str]:
    """Send one request through BearerAuth to a server that rejects ``opaque-0`` only."""
    import httpx

    async def handler(
        method: str, path: str, headers: Headers, body: bytes
    ) -> tuple[int, Headers, bytes]:
        if dict(headers).get("authorization") == "Bearer opaque-0":
            return status, [("www-authenticate", challenge)], b"no"
        return 200, [], b"ok"

    source = TokenSource(provider)
    auth = BearerAuth(source, "alice", resource=RESOURCE)
    async with serve(handler) as server, httpx.AsyncClient(auth=auth) as client:
        response = await client.get(server.url + "/mcp")
    return [
        str(response.status_code),
        *(dict(h).get("authorization", "") for _, _, h in server.requests),
    ]


async def test_a_401_hands_its_challenge_and_the_resource_to_the_provider() -> None:
    provider = Recorder()
    seen = await _rejecting(401, EXPIRED, provider)
    assert seen == ["200", "Bearer opaque-0", "Bearer opaque-1"]
    first, forced = provider.requests
    assert (first.force, first.challenge, first.resource) == (False, None, RESOURCE)
    assert forced.force and forced.resource == RESOURCE
    assert forced.challenge is not None and forced.challenge.error == "invalid_token"


async def test_a_403_insufficient_scope_steps_up_only_with_a_provider_that_can() -> None:
    plain = Recorder()
    assert await _rejecting(403, STEP_UP, plain) == ["403", "Bearer opaque-0"]
    assert len(plain.requests) == 1  # parks as before: nothing to widen scope with

    stepping = Recorder(step_up=True)
    assert await _rejecting(403, STEP_UP, stepping) == ["200", "Bearer opaque-0", "Bearer opaque-1"]
    challenge = stepping.requests[1].challenge
    assert challenge is not None and challenge.error == "insufficient_scope"
    assert challenge.scope == "mcp:write" and stepping.requests[1].resource == RESOURCE


async def test_a_403_without_insufficient_scope_is_never_retried() -> None:
    provider = Recorder(step_up=True)
    assert await _rejecting(403, 'Bearer error="forbidden"', provider) == ["403", "Bearer opaque-0"]
    assert len(provider.requests) == 1


async def test_the_connections_forced_refreshes_carry_challenge_and_resource() -> None:
    provider = Recorder()
    async with MockServer() as server:
        server.revoke("bob")  # every token of bob is answered 401
        fast = Backoff(initial=0.01, max_delay=0.02, auth_attempts=2)
        async with TokenSource(provider) as tokens, Supervisor(tokens, backoff=fast) as sup:
            conn = await sup.connect(ServerConfig("s", server.url, listen=False), "bob")
            with anyio.fail_after(10):
                await conn.wait_for(State.NEEDS_REAUTH)
    assert {r.resource for r in provider.requests} == {server.url}
    forced = [r for r in provider.requests if r.force]
    assert len(forced) >= 2  # BearerAuth's one, then the connection's own
    for request in forced:
        assert request.challenge is not None and request.challenge.error == "invalid_token"
        assert request.challenge.resource_metadata == server.resource_metadata_url
