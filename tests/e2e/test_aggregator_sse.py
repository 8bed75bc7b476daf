"""``--transport sse``: the aggregator in front of a legacy HTTP+SSE server (2024-11-05)."""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import pytest
from stack import AGGREGATOR, MARKS, SECRET, Process, Stack, mint, principal, text_of

pytestmark = MARKS


class SSEStack(Stack):
    """Only the mock, and only its legacy endpoint."""

    def start(self) -> None:
        self.mock.start()
        sse = self.mock.url.replace("/mcp", "/sse")
        args = ["--port", "0", "--jwt-secret", SECRET, "--server", f"beta={sse}"]
        self.aggregator = Process(str(AGGREGATOR), *args, "--transport", "sse")
        self.port = int(self.aggregator.wait_ready().split()[1])


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    s = SSEStack(sdk=False)
    try:
        s.start()
        yield s
    finally:
        s.close()


async def test_tools_through_a_legacy_sse_downstream(stack: Stack) -> None:
    who = principal("sse")
    async with stack.client(mint(who), "2026-07-28") as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert {"beta_echo", "beta_add"} <= names
        with anyio.fail_after(10):
            assert text_of(await client.call_tool("beta_echo", {"text": "old"})) == "old"
    [conn] = [c for c in (await stack.status())["connections"] if c["principal"] == who]
    assert (conn["era"], conn["state"]) == ("sse", "ready")
