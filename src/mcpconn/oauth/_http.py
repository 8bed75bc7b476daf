"""The thin httpx layer under ``mcpconn.oauth``: bounded reads, one error type.

Every body is read at most `MAX_BODY_BYTES` deep, every httpx failure becomes an
`OAuthError` chained to its cause (a transient one: the token source backs off),
and no URL query (which may carry a code) or body is ever logged.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any, cast

import httpx

from .._core.http_rules import parse_www_authenticate
from .._exceptions import Challenge, OAuthError
from ._responses import MAX_BODY_BYTES, parse_json_object

__all__ = ["get_json", "post", "probe_challenge"]

_ACCEPT_JSON = {"Accept": "application/json"}


async def _read(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    chunks_iter = cast(AsyncGenerator[bytes, None], response.aiter_bytes())
    async with aclosing(chunks_iter) as body:  # closed even when cut short
        async for chunk in body:
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise OAuthError("an authorization server answer exceeds the size limit")
            chunks.append(chunk)
    return b"".join(chunks)


async def _send(
    http: httpx.AsyncClient, method: str, url: str, **kwargs: Any
) -> tuple[httpx.Response, bytes]:
    try:
        async with http.stream(method, url, **kwargs) as response:
            return response, await _read(response)
    except httpx.HTTPError as exc:
        raise OAuthError(
            f"{method} to the authorization service failed: {type(exc).__name__}"
        ) from exc


async def get_json(http: httpx.AsyncClient, url: str) -> dict[str, Any] | None:
    """The JSON object at ``url``; None when it is not there (any non-200, or not JSON)."""
    response, body = await _send(http, "GET", url, headers=_ACCEPT_JSON)
    if response.status_code != 200:
        return None
    return parse_json_object(body)


async def post(
    http: httpx.AsyncClient,
    url: str,
    *,
    form: dict[str, str] | None = None,
    json_body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes, httpx.Headers]:
    """POST a form or a JSON body; (status, body, headers)."""
    merged = {**_ACCEPT_JSON, **(headers or {})}
    content: bytes | None = None
    if json_body is not None:
        content = json.dumps(json_body).encode()
        merged["Content-Type"] = "application/json"
    response, body = await _send(http, "POST", url, data=form, content=content, headers=merged)
    return response.status_code, body, response.headers


async def probe_challenge(http: httpx.AsyncClient, server_url: str) -> Challenge | None:
    """Ask the MCP server without a token, to read its 401 challenge (RFC 9728 hint).

    Used once, before the first login, when no 401 has been seen yet.
    """
    ping = {"jsonrpc": "2.0", "id": "mcpconn-oauth-probe", "method": "ping"}
    headers = {"Accept": "application/json, text/event-stream"}
    response, _ = await _send(http, "POST", server_url, json=ping, headers=headers)
    if response.status_code not in (401, 403):
        return None
    return parse_www_authenticate(response.headers.get_list("www-authenticate"))
