"""The mock MCP server's auth, faults, counters, controls, JWT helpers and CLI (loopback)."""

from __future__ import annotations

import argparse
import json
from typing import Any

import anyio
import httpx
import pytest
from mock_client import (
    SSE,
    both_modes,
    hdrs,
    init_params,
    initialize,
    post,
    rpc,
)

import mcpconn
import mcpconn.testing
from mcpconn._cli.mock_server import add_mock_server_parser, serve_mock_server
from mcpconn.testing import Fault, JWTIssuer, JWTProvider, MockServer, TokenRejected


# -- auth ------------------------------------------------------------------------------------
@both_modes
async def test_auth_rejections(server: MockServer, client: httpx.AsyncClient) -> None:
    ping = rpc(1, "initialize", init_params())
    expired = server.issuer.mint("alice", lifetime=10, now=server.now() - 60)
    forged = JWTIssuer("another-secret-that-is-long-enough-for-hs256").mint("alice")
    cases = [
        (None, "no bearer token"),
        (expired, "token expired"),
        (forged, "token signature is invalid"),
        ("not.a.jwt", "token is malformed"),
    ]
    for token, description in cases:
        response = await client.post(server.url, json=ping, headers=hdrs(token))
        assert response.status_code == 401
        challenge = response.headers["www-authenticate"]
        assert challenge.startswith('Bearer error="invalid_token"')
        assert f'error_description="{description}"' in challenge
        assert f'resource_metadata="{server.resource_metadata_url}"' in challenge
    stats = server.stats()
    assert stats.expired_tokens_seen == 1 and stats.unauthorized_total == 4
    assert [r.token_expired for r in server.records] == [False, True, False, False]
    assert [r.token_present for r in server.records] == [False, True, True, True]
    assert all(expired not in repr(r) and forged not in repr(r) for r in server.records)
    metadata = await client.get(server.resource_metadata_url)
    assert metadata.json()["resource"] == server.url


@both_modes
async def test_revoke_restore_and_clock_offset(
    server: MockServer, client: httpx.AsyncClient
) -> None:
    token = server.mint("alice", lifetime=60)
    body = rpc(1, "initialize", init_params())
    assert (await client.post(server.url, json=body, headers=hdrs(token))).status_code == 200
    server.revoke("alice")
    revoked = await client.post(server.url, json=body, headers=hdrs(token))
    assert revoked.status_code == 401 and "principal revoked" in revoked.headers["www-authenticate"]
    assert (await client.post(server.url, json=body, headers=hdrs(server.mint("bob")))).is_success
    server.restore("alice")
    assert (await client.post(server.url, json=body, headers=hdrs(token))).status_code == 200
    server.clock_offset = 120.0
    skewed = await client.post(server.url, json=body, headers=hdrs(token))
    assert skewed.status_code == 401 and server.stats().expired_tokens_seen == 1
    server.clock_offset = 0.0
    assert (await client.post(server.url, json=body, headers=hdrs(token))).status_code == 200


# -- faults ----------------------------------------------------------------------------------
@both_modes
async def test_status_faults(server: MockServer, client: httpx.AsyncClient) -> None:
    token = server.mint("alice")
    body = rpc(1, "initialize", init_params())
    rule = server.faults.add(Fault.status(503, retry_after=2), times=2, path="/mcp")
    statuses = [(await client.post(server.url, json=body, headers=hdrs(token))) for _ in range(3)]
    assert [r.status_code for r in statuses] == [503, 503, 200]
    assert statuses[0].headers["retry-after"] == "2" and rule.hits == 2 and len(server.faults) == 0
    with server.faults.injected(Fault.insufficient_scope("tools:write"), principal="bob"):
        assert (await client.post(server.url, json=body, headers=hdrs(token))).status_code == 200
        bob = await client.post(server.url, json=body, headers=hdrs(server.mint("bob")))
    assert bob.status_code == 403
    assert 'error="insufficient_scope"' in bob.headers["www-authenticate"]
    assert 'scope="tools:write"' in bob.headers["www-authenticate"]
    server.faults.add(Fault.status(401), times=1)
    unauthorized = await client.post(server.url, json=body, headers=hdrs(token))
    assert 'error="invalid_token"' in unauthorized.headers["www-authenticate"]
    server.faults.add(Fault.rate_limited(retry_after=3), times=1)
    limited = await client.post(server.url, json=body, headers=hdrs(token))
    assert (limited.status_code, limited.headers["retry-after"]) == (429, "3")


async def test_405_on_get_and_session_expiry_faults(
    server: MockServer, client: httpx.AsyncClient
) -> None:
    session = await initialize(client, server, server.mint("alice"))
    server.faults.add(Fault.method_not_allowed(), method="GET", times=1)
    assert (await client.get(server.url, headers=session)).status_code == 405
    server.faults.add(Fault.session_expired(), rpc_method="tools/list", times=1)
    expired = await client.post(server.url, json=rpc(1, "tools/list"), headers=session)
    assert expired.status_code == 404
    assert (await client.post(server.url, json=rpc(2, "ping"), headers=session)).status_code == 404


async def test_stream_cut_cleanly_and_mid_event(
    server: MockServer, client: httpx.AsyncClient
) -> None:
    session = await initialize(client, server, server.mint("alice"))
    server.faults.add(Fault.cut(after_events=2), method="GET", times=1)
    async with client.stream("GET", server.url, headers=session) as response:
        await server.wait_for_streams(1)
        for n in range(3):
            server.emit("notifications/message", {"n": n})
        got = await SSE(response).messages()
    assert [m["params"]["n"] for m in got] == [0, 1]
    server.faults.add(Fault.cut_mid_event(after_events=1), method="GET", times=1)
    raw = bytearray()

    async def read_cut_stream() -> None:
        async with client.stream("GET", server.url, headers=session) as response:
            await server.wait_for_streams(1)
            server.emit("notifications/message", {"n": "first"})
            server.emit("notifications/message", {"n": "second"})
            async for chunk in response.aiter_raw():
                raw.extend(chunk)

    with pytest.raises(httpx.RemoteProtocolError):  # no terminating chunk
        await read_cut_stream()
    priming, first, partial = bytes(raw).split(b"\n\n")
    assert priming.endswith(b"data: ") and b'"first"' in first  # one whole event ...
    assert partial.startswith(b"id: L-") and b'"second"}' not in partial  # ... then half of one


async def test_stalls(server: MockServer, client: httpx.AsyncClient) -> None:
    token = server.mint("alice")
    body = rpc(1, "initialize", init_params())
    server.faults.add(Fault.stall(), times=1)
    with pytest.raises(httpx.ReadTimeout):
        await client.post(server.url, json=body, headers=hdrs(token), timeout=0.2)
    server.faults.add(Fault.stall(after_headers=True), times=1)
    async with client.stream(
        "POST", server.url, json=body, headers=hdrs(token), timeout=0.2
    ) as response:
        assert response.status_code == 200
        with pytest.raises(httpx.ReadTimeout):
            await response.aread()
    assert (await client.post(server.url, json=body, headers=hdrs(token))).status_code == 200


@pytest.mark.parametrize(
    ("fault", "check"),
    [
        (Fault.garbage(), lambda raw: b"\xff\xfe\x00" in raw),
        (Fault.oversized(200_000), lambda raw: max(len(x) for x in raw.split(b"\n")) >= 200_000),
        (Fault.non_json(), lambda raw: b"data: this is not json{" in raw),
        (
            Fault.not_jsonrpc(),
            lambda raw: json.loads(raw.split(b"data: ")[1]) == {"hello": "world"},
        ),
    ],
)
async def test_bad_byte_faults(
    server: MockServer, client: httpx.AsyncClient, fault: Fault, check: Any
) -> None:
    server.faults.add(fault, times=1)
    body = rpc(1, "initialize", init_params())
    async with client.stream(
        "POST", server.url, json=body, headers=hdrs(server.mint("alice"))
    ) as response:
        raw = await response.aread()
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert check(raw)


async def test_wrong_content_type_delay_and_disconnect(
    server: MockServer, client: httpx.AsyncClient
) -> None:
    token = server.mint("alice")
    body = rpc(1, "initialize", init_params())
    server.faults.add(Fault.wrong_content_type(), times=1)
    html = await client.post(server.url, json=body, headers=hdrs(token))
    assert (html.status_code, html.headers["content-type"]) == (200, "text/html")
    slow = server.faults.add(Fault.delay(0.01), times=1)
    assert (await client.post(server.url, json=body, headers=hdrs(token))).status_code == 200
    assert slow.hits == 1
    server.faults.add(Fault.disconnect(), times=1)
    with pytest.raises(httpx.TransportError):
        await client.post(server.url, json=body, headers=hdrs(token))
    assert server.records[-1].status == 0


# -- counters, concurrency, shutdown --------------------------------------------------------
async def test_counters_and_waiting(server: MockServer, client: httpx.AsyncClient) -> None:
    session = await initialize(client, server, server.mint("alice"))
    before = server.stats().requests_total
    t0 = server.records[-1].at

    async def bob_calls() -> None:
        bob = await initialize(client, server, server.mint("bob"))
        await client.post(server.url, json=rpc(1, "ping"), headers=bob)

    async with anyio.create_task_group() as tg:
        tg.start_soon(bob_calls)
        with anyio.fail_after(5):
            await server.wait_for_requests(3, principal="bob")
    await client.post(server.url, json=rpc(2, "tools/list"), headers=session)
    stats = server.stats()
    assert stats.requests_total == before + 4
    assert stats.by_principal == {"alice": 3, "bob": 3}
    assert stats.by_rpc_method["initialize"] == 2 and stats.by_rpc_method["tools/list"] == 1
    assert stats.by_status == {200: 4, 202: 2}
    assert all(r.at >= t0 for r in server.requests_since(t0))
    assert stats.to_json()["by_principal"] == {"alice": 3, "bob": 3}


async def test_concurrent_clients(server: MockServer, client: httpx.AsyncClient) -> None:
    async def one(i: int) -> None:
        session = await initialize(client, server, server.mint(f"user{i % 4}"))
        body = rpc(1, "tools/call", {"name": "add", "arguments": {"a": i, "b": 1}})
        _, msg = await post(client, server.url, body, session)
        assert msg is not None and msg["result"]["structuredContent"]["result"] == i + 1

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(one, i)
    stats = server.stats()
    assert stats.by_principal == {f"user{i}": 15 for i in range(4)}
    assert stats.sessions == 20 and stats.open_connections > 1


async def test_shutdown_closes_streams_promptly(client: httpx.AsyncClient) -> None:
    ended: list[str] = []

    async def listen(url: str, headers: dict[str, str], name: str) -> None:
        try:
            async with client.stream("GET", url, headers=headers) as response:
                async for _ in response.aiter_raw():
                    pass
        except httpx.TransportError:
            pass
        ended.append(name)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            async with MockServer() as server:
                token = server.mint("alice")
                session = await initialize(client, server, token)
                tg.start_soon(listen, server.url, session, "get")
                tg.start_soon(listen, server.sse_url, hdrs(token), "legacy")
                await server.wait_for_streams(2)
                server.faults.add(Fault.stall())
                tg.start_soon(listen, server.url, session, "stalled")
                await server.wait_for_requests(server.stats().requests_total + 1)
            # leaving the block closed every connection: the listeners all end
    assert sorted(ended) == ["get", "legacy", "stalled"]
    assert server.stats().open_streams == 0


# -- control endpoints, issuer, provider, CLI, exports ---------------------------------------
async def test_control_endpoints(client: httpx.AsyncClient) -> None:
    async with MockServer(control=True) as server:
        ctl = server.control_url
        token = (await client.post(ctl + "mint", json={"principal": "alice"})).json()["token"]
        session = await initialize(client, server, token)
        await client.post(ctl + "revoke", json={"principal": "alice"})
        assert (
            await client.post(server.url, json=rpc(1, "ping"), headers=session)
        ).status_code == 401
        await client.post(ctl + "restore", json={"principal": "alice"})
        many = await client.post(ctl + "revoke", json={"principals": ["bob", "carol"]})
        assert many.json() == {"revoked": ["bob", "carol"]} and server.revoked == {"bob", "carol"}
        await client.post(ctl + "restore", json={"principals": ["bob", "carol"]})
        assert server.revoked == set()
        await client.post(ctl + "faults", json={"kind": "status", "status": 502, "times": 1})
        assert (
            await client.post(server.url, json=rpc(1, "ping"), headers=session)
        ).status_code == 502
        assert (await client.post(ctl + "faults", json={"kind": "nope"})).status_code == 400
        assert (await client.post(ctl + "emit", json={"count": 2})).json() == {"delivered": 0}
        clock = await client.post(ctl + "clock", json={"offset": 3600})
        assert clock.json() == {"clock_offset": 3600.0} and server.clock_offset == 3600
        assert (
            await client.post(server.url, json=rpc(1, "ping"), headers=session)
        ).status_code == 401
        await client.post(ctl + "clock", json={"offset": 0})
        assert (await client.post(ctl + "expire-sessions", json={})).json() == {"expired": 1}
        records = (await client.get(ctl + "records", params={"since": 0})).json()
        stats = (await client.get(ctl + "stats")).json()
    assert stats["by_status"] == {"200": 1, "202": 1, "401": 2, "502": 1}
    assert stats["requests_total"] == 5 == len(records)  # control requests are not counted
    assert records[-1]["token_expired"] is True and "token" not in records[-1]


def test_jwt_issuer() -> None:
    now = [1000.0]
    issuer = JWTIssuer("a-test-secret-that-is-long-enough-for-hs256", clock=lambda: now[0])
    a, b = issuer.mint("alice", lifetime=10), issuer.mint("alice", lifetime=10)
    ca, cb = issuer.verify(a), issuer.verify(b)
    assert ca["sub"] == cb["sub"] == "alice" and ca["jti"] != cb["jti"]
    assert ca["exp"] == 1010 and issuer.minted["alice"] == 2
    now[0] = 1010.0
    with pytest.raises(TokenRejected) as expired:
        issuer.verify(a)
    assert expired.value.reason == "expired" and expired.value.claims is not None
    with pytest.raises(TokenRejected, match="signature") as forged:
        JWTIssuer("some-other-secret-long-enough-for-hs256").verify(b, now=1000.0)
    assert forged.value.reason == "bad_signature"
    short = JWTIssuer("s3cret")  # a short test secret is fine (no pyjwt warning -> error)
    assert short.verify(short.mint("bob"))["sub"] == "bob"
    assert "secret" not in repr(issuer)


class _Req:
    def __init__(self, principal: str, force: bool = False) -> None:
        self.principal, self.audience, self.force, self.reason = principal, None, force, "test"


async def test_jwt_provider() -> None:
    issuer = JWTIssuer()
    provider = JWTProvider(issuer, lifetime=5)
    token = await provider(_Req("alice"))
    assert issuer.verify(token)["sub"] == "alice"
    await provider(_Req("alice", force=True))
    assert provider.calls["alice"] == 2 and provider.forced_calls["alice"] == 1
    provider.revoke("alice")
    with pytest.raises(mcpconn.ReauthRequired):
        await provider(_Req("alice"))
    provider.restore("alice")
    provider.fail_with(RuntimeError("idp down"))
    with pytest.raises(RuntimeError):
        await provider(_Req("bob"))
    provider.fail_with(None)
    provider.hang()
    got: list[str] = []

    async def call() -> None:
        got.append(await provider(_Req("carol")))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            await provider.wait_for_call()
            assert got == []
            provider.resume()
    assert issuer.verify(got[0])["sub"] == "carol" and provider.total_calls == 5


async def test_cli_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="mcpconn")
    add_mock_server_parser(parser.add_subparsers())
    for argv in (["--port", "x"], ["--token-lifetime", "-1"], ["--eras", "grpc"]):
        args = parser.parse_args(["mock-server", *argv])
        assert await serve_mock_server(args) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("mcpconn mock-server: error: --")


def test_exports() -> None:
    names = mcpconn.testing.__all__
    assert names == sorted(names)
    assert all(hasattr(mcpconn.testing, n) for n in names)
