"""One request through a client: httpx's own loop, or a shorter one on `H11Transport`.

Above the transport, ``httpx.AsyncClient.send`` merges the URL and headers,
runs every response through the cookie jar and formats a log line: about a
fifth of a tool call's client CPU (profiled). For a client on `H11Transport`
with nothing that needs that loop (no event hooks, mounts, default params,
base URL, or cookies yet) `send` takes the steps that matter itself: it builds
the same `httpx.Request`, drives the same `httpx.Auth` flow (the token read per
request, one retry on 401), passes the same timeouts, keeps a ``Set-Cookie``
in the client's jar (the next request then goes httpx's way, with the
cookie), and logs httpx's line when that logger is on. Every other client is
sent through ``client.send``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import httpx

from .transport import H11Transport

__all__ = ["send", "short_path"]

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
    # the client's headers, then ours in their place (case-insensitive), as httpx merges
    # them, without building two intermediate Headers objects
    ours = {name.lower() for name in headers}
    merged = [(k, v) for k, v in client.headers.multi_items() if k not in ours]
    merged.extend(headers.items())
    request = httpx.Request(
        method, url, headers=merged, content=content, extensions={"timeout": timeout.as_dict()}
    )
    flow = client._build_request_auth(request, auth).async_auth_flow(request)
    history: list[httpx.Response] = []  # as httpx keeps it: who sent which credential
    try:
        request = await flow.__anext__()
        while True:
            response = await _send_single(client, request)
            try:
                try:
                    next_request = await flow.asend(response)
                except StopAsyncIteration:
                    response.history = list(history)
                    return response
                await response.aread()
                history.append(response)
                request = next_request
            except BaseException:
                await response.aclose()
                raise
    finally:
        await flow.aclose()


async def _send_single(client: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
    try:
        response = await client._transport.handle_async_request(request)
    except httpx.TransportError as exc:
        exc.request = request  # as httpx's request_context does
        raise
    response.request = request
    if "set-cookie" in response.headers:
        client.cookies.extract_cookies(response)
    if _httpx_log.isEnabledFor(logging.INFO):
        _httpx_log.info(
            'HTTP Request: %s %s "%s %d %s"',
            request.method,
            request.url,
            response.http_version,
            response.status_code,
            response.reason_phrase,
        )
    return response
