"""The private httpx APIs mcpconn reads are there and mean what we take them to mean.

``_http/send.py`` skips httpx's client loop by reading ``client._transport``,
``client._mounts`` and ``client._build_request_auth``; ``_http/client.py``
reads the proxy environment with ``httpx._utils.get_environment_proxies``.
pyproject.toml bounds httpx below the next minor release: before raising that
bound, this module must pass on the new release, and each failure names the
attribute that moved.
"""

from __future__ import annotations

import inspect
import tomllib
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement


class _Transport(httpx.AsyncBaseTransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(204)


def _attribute(obj: object, name: str) -> object:
    if not hasattr(obj, name):
        pytest.fail(
            f"httpx {httpx.__version__}: {type(obj).__name__}.{name} is gone; "
            f"mcpconn._http.send reads it (fix it there before raising the httpx bound)"
        )
    return getattr(obj, name)


async def test_the_client_keeps_its_transport_in_the_transport_attribute() -> None:
    ours = _Transport()
    async with httpx.AsyncClient(transport=ours) as client:
        assert _attribute(client, "_transport") is ours, (
            f"httpx {httpx.__version__}: AsyncClient._transport is not the transport given"
        )


async def test_the_client_keeps_its_mounts_in_the_mounts_attribute() -> None:
    async with httpx.AsyncClient() as plain:
        assert not _attribute(plain, "_mounts"), "AsyncClient._mounts of a plain client"
    async with httpx.AsyncClient(mounts={"http://x.example": _Transport()}) as mounted:
        assert _attribute(mounted, "_mounts"), (
            f"httpx {httpx.__version__}: AsyncClient._mounts does not hold the mounts given"
        )


async def test_the_client_builds_a_request_auth_flow_from_request_and_auth() -> None:
    auth = httpx.BasicAuth("user", "pass")
    async with httpx.AsyncClient() as client:
        build = _attribute(client, "_build_request_auth")
        assert callable(build)
        params = list(inspect.signature(build).parameters)
        assert params[:2] == ["request", "auth"], (
            f"httpx {httpx.__version__}: AsyncClient._build_request_auth{params}"
        )
        request = client.build_request("GET", "http://x.example/")
        built = build(request, auth)
        assert built is auth and callable(_attribute(built, "async_auth_flow"))
        assert isinstance(build(request, httpx.USE_CLIENT_DEFAULT), httpx.Auth)


def test_the_proxy_environment_reader_is_where_we_import_it_from() -> None:
    try:
        from httpx._utils import get_environment_proxies
    except ImportError:
        pytest.fail(
            f"httpx {httpx.__version__}: httpx._utils.get_environment_proxies is gone; "
            "mcpconn._http.client falls back to urllib's reading of the environment"
        )
    assert isinstance(get_environment_proxies(), dict)


def test_pyproject_bounds_httpx_and_the_installed_one_is_inside() -> None:
    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    (httpx_req,) = (
        Requirement(dep) for dep in project["project"]["dependencies"] if dep.startswith("httpx")
    )
    assert any(spec.operator == "<" for spec in httpx_req.specifier), (
        f"{httpx_req}: private APIs need an upper bound"
    )
    assert httpx_req.specifier.contains(httpx.__version__), (
        f"httpx {httpx.__version__} is outside pyproject's {httpx_req}: "
        "check this module passes on it, then move the bound"
    )
