"""One request through a client: httpx's own loop, or a shorter one on `H11Transport`.

Above the transport, ``httpx.AsyncClient.send`` merges the URL and headers,
runs every response through the cookie jar and formats a log line: about a
fifth of a tool call's client CPU (profiled). For a client on `H11Transport`
with nothing that needs that loop (no event hooks, mounts, default params,
base URL, or cookies yet) `send` takes the steps that matter itself: it builds
the same `httpx.Request`, drives the same `httpx.Auth` flow (the token read per
request, one retry on 401), passes the same timeouts, keeps a ``Set-Cookie``
in the client's jar (the next request then goes httpx's way, with the
cookie), and logs httpx's line when that logger is on. A 401 that the flow
would only annotate (`BearerAuth.settle_direct`: no retry wanted, the token
unchanged since) is annotated without building the flow's request. Every other
client is sent through ``client.send``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import httpx

from .transport import H11Transport

__all__ = ["SENT_CREDENTIAL", "send", "short_path"]

#: Where a response sent without an `httpx.Request` keeps the credential it carried.
SENT_CREDENTIAL = "mcpconn.credential"

_httpx_log = logging.getLogger("httpx")


def short_path(client: httpx.AsyncClient) -> bool:
    """True when `send` may skip httpx's client loop for ``client``."""
    return (
        type(client._transport) is H11Transport
        and not client._mounts
        and not client.event_hooks["request"]
        and not client.event_hooks["response"]
        and not client.params
        and not client.base_url.raw_host
        and not client.cookies.jar
    )


async def send(
    client: httpx.AsyncClient,
    method: str,
    url: httpx.URL,
    *,
    headers: Mapping[str, str],
    content: bytes | None,
    auth: httpx.Auth | None,
    timeout: httpx.Timeout,
) -> httpx.Response:
    """Send one request (never following redirects); the response is streaming."""
    if not short_path(client):
        request = client.build_request(
            method, url, headers=headers, content=content, timeout=timeout
        )
        return await client.send(request, auth=auth, stream=True, follow_redirects=False)
    first: httpx.Response | None = None
    if content is not None and not url.userinfo and (auth is None or _plain_bearer(auth)):
        first = await _send_direct(client, method, url, headers, content, auth, timeout)
        if first is not None and (auth is None or first.status_code not in (401, 403)):
            return first
        if first is not None:
            try:
                settled = await _settled(auth, url, first)
            except BaseException:
                await first.aclose()
                raise
            if settled:
                return first
    request = httpx.Request(
        method,
        url,
        headers=_merged(client, headers),
        content=content,
        extensions={"timeout": timeout.as_dict()},
    )
    flow = client._build_request_auth(request, auth).async_auth_flow(request)
    history: list[httpx.Response] = []  # as httpx keeps it: who sent which credential
    try:
        request = await flow.__anext__()
        response = _answered(first, request)
        if response is None and first is not None:
            await first.aclose()  # a refresh came in between: the flow sends its own
        while True:
            answer = response or await _send_single(client, request)
            try:
                try:
                    next_request = await flow.asend(answer)
                except StopAsyncIteration:
                    answer.history = list(history)
                    return answer
                await answer.aread()
                history.append(answer)
                request, response = next_request, None
            except BaseException:
                await answer.aclose()
                raise
    except BaseException:
        if first is not None:
            await first.aclose()  # idempotent
        raise
    finally:
        await flow.aclose()


def _merged(
    client: httpx.AsyncClient, headers: Mapping[str, str], credential: str | None = None
) -> list[tuple[str, str]]:
    """The client's headers, then ours in their place (case-insensitive), as httpx merges
    them, without two intermediate Headers objects; with ``credential``, its bearer header
    replaces any other Authorization (as the flow's ``request.headers[...] =`` does)."""
    ours = {name.lower() for name in headers}
    if credential is not None:
        ours.add("authorization")
    merged = [pair for pair in client.headers.multi_items() if pair[0] not in ours]
    if credential is None:
        merged.extend(headers.items())
    else:
        merged.extend(pair for pair in headers.items() if pair[0].lower() != "authorization")
        merged.append(("Authorization", f"Bearer {credential}"))
    return merged


def _plain_bearer(auth: httpx.Auth) -> bool:
    """An auth whose flow's first step only sets a token's header, offered as
    ``token_for(url)`` and vouched for by ``direct_flow`` being its own flow
    (`mcpconn._tokens.auth.BearerAuth`; a subclass with another flow is not)."""
    flow = getattr(type(auth), "direct_flow", None)
    return flow is not None and flow is type(auth).async_auth_flow


async def _send_direct(
    client: httpx.AsyncClient,
    method: str,
    url: httpx.URL,
    headers: Mapping[str, str],
    content: bytes,
    auth: httpx.Auth | None,
    timeout: httpx.Timeout,
) -> httpx.Response | None:
    """A request with its body in memory, straight to `H11Transport`: no `httpx.Request`,
    and `BearerAuth`'s header set from its token (its flow runs only on a 401 or 403).
    None for a token that binds itself to each request (DPoP): the flow sets that one.

    The merged header pairs are made in the call: no frame here keeps them, and
    `H11Transport.send_bytes` lets go of them once the head is written (a dozen objects
    that would otherwise wait out the round trip, promoted by a burst's young collections)."""
    credential = None
    if auth is not None:
        token = await auth.token_for(url)  # type: ignore[attr-defined]
        if getattr(token, "authorize", None) is not None:  # binds itself per request (DPoP)
            return None
        credential = token.raw
    transport: H11Transport = client._transport  # type: ignore[assignment]
    try:
        response = await transport.send_bytes(
            method.encode("ascii"),
            url,
            _merged(client, headers, credential),
            content,
            timeout.as_dict(),
        )
    except httpx.TransportError as exc:
        exc.request = httpx.Request(method, url)  # as httpx's request_context does
        raise
    if credential is not None:
        response.extensions[SENT_CREDENTIAL] = credential
    _after(client, method, url, response)
    return response


async def _settled(auth: httpx.Auth | None, url: httpx.URL, first: httpx.Response) -> bool:
    """A direct 401/403 whose flow would only annotate it (`BearerAuth.settle_direct`),
    annotated without building the flow's request; never when the token changed since."""
    sent = first.extensions.get(SENT_CREDENTIAL)
    settle = getattr(auth, "settle_direct", None)
    if sent is None or settle is None:
        return False
    token = await auth.token_for(url)  # type: ignore[union-attr]
    return token.raw == sent and bool(settle(first, token))


def _answered(first: httpx.Response | None, request: httpx.Request) -> httpx.Response | None:
    """The direct answer, if the flow's first request is the one it answered (the same
    credential: no refresh in between); the flow then goes on from that answer."""
    if first is None:
        return None
    sent = first.extensions.get(SENT_CREDENTIAL)
    value = request.headers.get("authorization", "")
    if sent is not None and value.partition(" ")[2].strip() == sent:
        first.request = request
        return first
    return None


async def _send_single(client: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
    try:
        response = await client._transport.handle_async_request(request)
    except httpx.TransportError as exc:
        exc.request = request  # as httpx's request_context does
        raise
    response.request = request
    _after(client, request.method, request.url, response)
    return response


def _after(
    client: httpx.AsyncClient, method: str, url: httpx.URL, response: httpx.Response
) -> None:
    """What httpx's loop does with every response that matters here: cookies, its log line."""
    if "set-cookie" in response.headers:
        client.cookies.extract_cookies(response)
    if _httpx_log.isEnabledFor(logging.INFO):
        _httpx_log.info(
            'HTTP Request: %s %s "%s %d %s"',
            method,
            url,
            response.http_version,
            response.status_code,
            response.reason_phrase,
        )
