"""The public surface: what `mcpconn.__all__` promises, and the layering rule."""

from __future__ import annotations

import ast
import pathlib

import mcpconn
import mcpconn.testing

SRC = pathlib.Path(mcpconn.__file__).parent

# Names the issues call fixed: tests outside this repo use them.
FIXED = {
    "Backoff",
    "BearerAuth",
    "Connection",
    "JSONRPCError",
    "MCPConnError",
    "MalformedTokenError",
    "ReauthRequired",
    "ServerConfig",
    "State",
    "Supervisor",
    "Token",
    "TokenProviderError",
    "TokenRequest",
    "TokenSource",
}


def test_all_is_sorted_complete_and_importable() -> None:
    assert mcpconn.__all__ == sorted(mcpconn.__all__)
    assert set(mcpconn.__all__) >= FIXED
    for name in mcpconn.__all__:
        assert getattr(mcpconn, name) is not None
    public = {n for n in vars(mcpconn) if not n.startswith("_")}
    # everything public in the namespace is in __all__ (submodules excepted)
    modules = {n for n in public if isinstance(getattr(mcpconn, n), type(mcpconn))}
    assert public - modules == set(mcpconn.__all__)


def test_testing_all_is_sorted() -> None:
    assert mcpconn.testing.__all__ == sorted(mcpconn.testing.__all__, key=str)
    for name in mcpconn.testing.__all__:
        assert hasattr(mcpconn.testing, name)


def test_state_members_are_the_promised_ones() -> None:
    names = {s.name for s in mcpconn.State}
    assert {"CONNECTING", "READY", "BACKOFF", "NEEDS_REAUTH", "CLOSED"} <= names


def test_every_error_is_ours() -> None:
    for name in mcpconn.__all__:
        obj = getattr(mcpconn, name)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            assert issubclass(obj, mcpconn.MCPConnError), name


CORE = {
    "_backoff",
    "_budget",
    "_config",
    "_exceptions",
    "_freshness",
    "_http_rules",
    "_jsonrpc",
    "_jwt",
    "_machine",
    "_sse",
    "_token",
}
CORE_ALLOWED = {"jwt", "tenacity", "httpx_sse"}
# Each layer may import only from the layers listed after it.
ORDER = [
    {"_supervisor"},
    {"_connection"},
    {"_session"},
    {"_handshake", "_inbound"},
    {"_transports"},
    {"_auth"},
    {
        "_tokens",
        "_store",
        "_lists",
        "_notifications",
        "_stats",
        "_pool",
        "_http",
        "_sealed",
        "_redis_health",
        "_redis_lua",
        "_redis_lock",
        "_redis_pubsub",
    },
    CORE,
]


def _imports(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):  # imports for type checking only are not dependencies
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            node.body = []
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level and node.module:
                found.add(node.module.split(".")[0])
            elif node.level:
                found.update(alias.name for alias in node.names)
            elif node.module:
                found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
    return found


def _layer(module: str) -> int | None:
    for i, layer in enumerate(ORDER):
        if module in layer:
            return i
    return None


def test_the_core_does_no_io() -> None:
    stdlib_io = {"anyio", "httpx", "trio", "asyncio", "socket", "time", "random", "logging"}
    for name in CORE:
        imported = _imports(SRC / f"{name}.py")
        third_party = {m for m in imported if not m.startswith("_") and m not in CORE_ALLOWED}
        bad = third_party & stdlib_io
        assert not bad, f"{name} imports {bad}"
        ours = {m for m in imported if m.startswith("_")}
        assert ours <= CORE | {"__future__"}, f"{name} imports shell modules {ours - CORE}"


def test_imports_point_downward_only() -> None:
    for path in [*SRC.glob("_*.py"), *SRC.glob("_transports/*.py")]:
        module = "_transports" if path.parent.name == "_transports" else path.stem
        mine = _layer(module)
        if mine is None:
            continue
        for dep in _imports(path):
            theirs = _layer(dep)
            if theirs is not None and dep != module:
                assert theirs >= mine, f"{module} (layer {mine}) imports {dep} (layer {theirs})"
