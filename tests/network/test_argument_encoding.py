"""A user's tool arguments meet the same fate with and without the ``orjson`` extra."""

from __future__ import annotations

import enum
import json
import uuid

import anyio
import pytest

from mcpconn import ServerConfig, State, Supervisor, TokenSource
from mcpconn._core import jsonrpc
from mcpconn.testing import JWTProvider, MockServer


class Colour(enum.Enum):
    RED = "red"


@pytest.mark.parametrize("encoder", ["orjson", "stdlib"])
async def test_an_argument_json_cannot_hold_fails_the_call_alone(
    encoder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if encoder == "stdlib":
        monkeypatch.setattr(jsonrpc, "_orjson", None)  # as without the extra
        monkeypatch.setattr(jsonrpc, "loads", json.loads)
    async with MockServer() as server, Supervisor(TokenSource(JWTProvider(server.issuer))) as sup:
        conn = await sup.connect(ServerConfig("mock", server.url), "ann")
        with anyio.fail_after(10):
            await conn.wait_for(State.READY)
            for refused in (uuid.UUID(int=1), Colour.RED):
                with pytest.raises(TypeError, match="is not JSON serializable"):
                    await conn.call_tool("echo", {"text": "x", "extra": [refused]})
            assert conn.state is State.READY  # the caller's mistake, not the connection's
            result = await conn.call_tool("echo", {"text": "hi"})
    assert "hi" in str(result["content"])
    assert server.stats().by_rpc_method.get("tools/call", 0) == 1  # nothing refused was sent
