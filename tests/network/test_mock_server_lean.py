"""The mock server's lean mode: one signature check per token, short answers in one send."""

from __future__ import annotations

from typing import Any

import anyio

from mcpconn import ServerConfig, State, Supervisor, TokenSource
from mcpconn.testing import JWTIssuer, JWTProvider, MockServer


class CountingIssuer(JWTIssuer):
    """A real issuer that counts the signatures it checks."""

    def __init__(self) -> None:
        super().__init__()
        self.verified = 0

    def verify(self, raw: str, *, now: float | None = None) -> dict[str, Any]:
        self.verified += 1
        return super().verify(raw, now=now)


async def test_lean_checks_a_signature_once_and_serves_a_whole_client() -> None:
    issuer = CountingIssuer()
    async with (
        MockServer(issuer=issuer, lean=True, eras=["stateless"]) as server,
        TokenSource(JWTProvider(issuer, lifetime=60)) as tokens,
        Supervisor(tokens) as sup,
    ):
        conn = await sup.connect(ServerConfig("lean", server.url), "alice")
        with anyio.fail_after(10):
            await conn.wait_for(State.READY)
            await server.wait_for_streams(1)  # the subscriptions/listen stream
            seen: list[Any] = []
            async with conn.notifications() as notes:
                server.emit("notifications/tools/list_changed")
                async for note in notes:  # the acknowledgement may still be on its way
                    seen.append(note["method"])
                    if note["method"] != "notifications/subscriptions/acknowledged":
                        break
            progress: list[float] = []

            def on_progress(note: dict[str, Any]) -> None:
                progress.append(note["progress"])

            result = await conn.call_tool("progress", {"steps": 2}, on_progress=on_progress)
        assert seen[-1] == "notifications/tools/list_changed"
        assert result["isError"] is False and progress == [1, 2]
        stats = server.stats()
        assert stats.requests_total >= 3 and stats.by_status.keys() == {200}
        assert issuer.verified == 1  # one token, many requests


async def test_lean_still_judges_expiry_and_revocation() -> None:
    issuer = CountingIssuer()
    async with MockServer(issuer=issuer, lean=True) as server:
        token = server.mint("alice", lifetime=60)
        assert server.verified is not None
        claims = issuer.verify(token)
        server.verified.put(token, claims)
        assert server.verified.get(token, server.now()) == claims
        assert server.verified.get(token, claims["exp"]) is None  # expired: verify again
