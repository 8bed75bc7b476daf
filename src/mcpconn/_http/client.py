"""Which transport a client gets: ours where it does everything asked, httpx's otherwise.

`H11Transport` speaks plain HTTP/1.1 to the origin. A proxy (given, or from
the environment when ``trust_env``), HTTP/2, or a transport of the caller's
own is left to httpx: `make_client` then builds the client exactly as
``httpx.AsyncClient(**kwargs)`` would, so nothing the user configured is lost.
"""

from __future__ import annotations

import ssl
from typing import Any

import httpx

try:  # httpx's own reading of the proxy environment (private, so guarded)
    from httpx._utils import get_environment_proxies
except ImportError:  # pragma: no cover - a later httpx moved it
    from urllib.request import getproxies as get_environment_proxies  # type: ignore[assignment]

from .transport import DEFAULT_LIMITS, H11Transport

__all__ = ["make_client", "uses_h11"]


def uses_h11(
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    proxy: Any = None,
    mounts: Any = None,
    http2: bool = False,
    trust_env: bool = True,
) -> bool:
    """True when `H11Transport` can carry everything these client settings ask for."""
    if transport is not None or proxy is not None or mounts or http2:
        return False
    return not (trust_env and get_environment_proxies())


def make_client(
    *,
    verify: ssl.SSLContext | str | bool = True,
    cert: Any = None,
    trust_env: bool = True,
    http2: bool = False,
    proxy: Any = None,
    mounts: Any = None,
    transport: httpx.AsyncBaseTransport | None = None,
    limits: httpx.Limits = DEFAULT_LIMITS,
    **kwargs: Any,
) -> httpx.AsyncClient:
    """An `httpx.AsyncClient` on `H11Transport` when `uses_h11`, else on httpx's own."""
    if uses_h11(transport=transport, proxy=proxy, mounts=mounts, http2=http2, trust_env=trust_env):
        if isinstance(verify, ssl.SSLContext):
            context = verify
        else:
            context = httpx.create_ssl_context(verify=verify, cert=cert, trust_env=trust_env)
            context.set_alpn_protocols(["http/1.1"])
        ours = H11Transport(ssl_context=context, limits=limits)
        return httpx.AsyncClient(transport=ours, trust_env=trust_env, **kwargs)
    return httpx.AsyncClient(
        verify=verify,
        cert=cert,
        trust_env=trust_env,
        http2=http2,
        proxy=proxy,
        mounts=mounts,
        transport=transport,
        limits=limits,
        **kwargs,
    )
