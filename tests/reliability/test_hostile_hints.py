"""Hostile servers that point elsewhere or say "later": redirects, foreign origins, Retry-After.

A redirect is never followed (so no token reaches another origin); a Retry-After is capped,
and one that cannot mean "later" is no hint at all.
"""

from __future__ import annotations

import pytest

import mcpconn
from mcpconn import Connection, State, Supervisor

from ._hostile import Stream, against, sse_head, until_client_leaves, wait_for_error
from ._raw import RawRequest, RawServer, Writer, head, once, raw_server

# ---- redirects and origins ------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_a_redirect_is_a_typed_error_and_the_other_origin_sees_no_token(
    status: int,
) -> None:
    async with raw_server() as elsewhere:

        async def redirect(stream: Stream, req: RawRequest) -> None:
            hdrs = {"location": elsewhere.url, "content-length": "0"}
            await stream.send(head(status, hdrs))

        async def check(raw: RawServer, sup: Supervisor, bad: Connection) -> None:
            await wait_for_error(
                sup, bad, mcpconn.HTTPStatusError, (State.BACKOFF, State.CONNECTING)
            )
            assert isinstance(bad.last_error, mcpconn.HTTPStatusError)
            assert bad.last_error.status_code == status

        raw = await against({"on_initialize": redirect}, check)
        assert raw.requests and all("authorization" in r.headers for r in raw.requests)
        assert elsewhere.requests == []  # never followed, so never a token elsewhere


async def test_a_legacy_endpoint_on_another_origin_is_refused() -> None:
    async with raw_server() as elsewhere:

        async def endpoint(stream: Stream, req: RawRequest) -> None:
            await sse_head(stream)
            await stream.send(b"event: endpoint\ndata: " + elsewhere.url.encode() + b"\n\n")
            await until_client_leaves(stream)

        async def check(raw: RawServer, sup: Supervisor, bad: Connection) -> None:
            await wait_for_error(
                sup, bad, mcpconn.ProtocolError, (State.BACKOFF, State.CONNECTING, State.FAILED)
            )

        await against({"on_get": once(endpoint)}, check, transport="sse", protocol_version=None)
        assert elsewhere.requests == []


# ---- Retry-After ------------------------------------------------------------------------


def busy(status: int, retry_after: str) -> Writer:
    """Every handshake refused with ``status`` and this ``Retry-After``."""

    async def write(stream: Stream, req: RawRequest) -> None:
        await stream.send(head(status, {"retry-after": retry_after, "content-length": "0"}))

    return write


async def third_refusal(raw: RawServer, bad: Connection) -> mcpconn.RateLimited:
    """The error of ``bad`` once the server refused three handshakes (fast enough)."""
    await raw.wait(lambda r: r.count("POST", "initialize") >= 3)
    assert isinstance(bad.last_error, mcpconn.RateLimited)
    return bad.last_error


@pytest.mark.parametrize("value", ["31536000", "Fri, 01 Jan 2100 00:00:00 GMT"])
async def test_a_retry_after_of_a_year_is_capped(value: str) -> None:
    async def check(raw: RawServer, sup: Supervisor, bad: Connection) -> None:
        retry_after = (await third_refusal(raw, bad)).retry_after
        assert retry_after is not None and retry_after > 1e6

    backoff = mcpconn.Backoff(initial=0.01, max_delay=0.05, retry_after_cap=0.05)
    await against({"on_initialize": busy(503, value)}, check, backoff=backoff)


@pytest.mark.parametrize(
    "value",
    [
        "soon",
        "-5",
        "0",
        "1e999",
        "9" * 400,
        "",
        "Mon, 99 Foo 20xx",
        "Thu, 01 Jan 1970 00:00:00 GMT",
    ],
)
async def test_a_garbage_retry_after_is_ignored(value: str) -> None:
    async def check(raw: RawServer, sup: Supervisor, bad: Connection) -> None:
        # the default cap is 300 s: only an ignored hint lets retries come this fast;
        # a past date, 0 or a negative is no hint (None), so the backoff curve applies
        assert (await third_refusal(raw, bad)).retry_after is None

    await against({"on_initialize": busy(429, value)}, check)
