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


# The sans-IO core: stdlib, pyjwt, tenacity's strategies and our own errors/config only.
CORE_PACKAGES = {"_core", "_exceptions", "_config"}
CORE_ALLOWED = {"jwt", "tenacity", "orjson"}  # orjson: an optional decoder
# The layers, top to bottom: a module may import only from its own layer or one below.
# A layer is a package (or a top-level module) of src/mcpconn; the package tree is the
# architecture, so this list is the one place that draws it.
ORDER = [
    {"_cli", "testing", "contrib"},
    {"_supervision"},
    {"_mcp"},
    {"redis_store", "_redis", "oauth"},
    {"_tokens"},
    {"_http"},
    CORE_PACKAGES,
]
# Inside a package, the same rule between its modules (top to bottom).
INNER = {
    "_supervision": [
        {"supervisor"},
        {"connection"},
        {"runner"},
        {"session_task"},
        {"context"},
        {"inbox", "notifications", "stats"},
    ],
    "_mcp": [
        {"session"},
        {"listening", "opening", "recovering"},
        {"handshake", "inbound", "lists"},
        {"transports"},
    ],
    "_tokens": [{"auth"}, {"source"}, {"flights"}, {"view", "judge"}, {"provider"}, {"store"}],
    "oauth": [
        {"_provider"},
        {"_clients", "_login", "_login_flights"},
        {"_metadata", "_grants"},
        {"_http", "_dpop"},
        {"_authorization", "_identity"},
        {"_discovery", "_responses"},
    ],
}
# mcpconn.oauth's deciding modules are sans-IO too (its shell is _http, _grants, ...).
OAUTH_SANS_IO = {"_authorization", "_discovery", "_identity", "_responses"}


def _module_name(path: pathlib.Path) -> list[str]:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def _imports(path: pathlib.Path) -> set[tuple[str, ...]]:
    """Every mcpconn module ``path`` imports at run time, as parts under mcpconn."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):  # imports for type checking only are not dependencies
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            node.body = []
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me[:-1]
    found: set[tuple[str, ...]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "mcpconn":
                target = node.module.split(".")[1:]
            else:
                if node.module:
                    found.add((node.module.split(".")[0],))
                continue
            found.add(tuple(target))
            for alias in node.names:  # `from . import module`
                candidate = SRC.joinpath(*target, alias.name)
                if candidate.with_suffix(".py").exists() or candidate.is_dir():
                    found.add((*target, alias.name))
        elif isinstance(node, ast.Import):
            found.update((alias.name.split(".")[0],) for alias in node.names)
    return found


def _rank(order: list[set[str]], name: str) -> int | None:
    return next((i for i, layer in enumerate(order) if name in layer), None)


def _sources() -> list[pathlib.Path]:
    return sorted(SRC.rglob("*.py"))


def _ours(dep: tuple[str, ...]) -> bool:
    return bool(dep) and ((SRC / dep[0]).is_dir() or (SRC / f"{dep[0]}.py").exists())


def test_the_core_does_no_io() -> None:
    stdlib_io = {"anyio", "httpx", "trio", "asyncio", "socket", "time", "random", "logging"}
    core = [p for p in _sources() if _module_name(p)[:1] and _module_name(p)[0] in CORE_PACKAGES]
    assert len(core) > 10
    for path in core:
        for dep in _imports(path):
            if _ours(dep):
                assert dep[0] in CORE_PACKAGES, f"{path} imports mcpconn.{'.'.join(dep)}"
            else:
                assert dep[0] not in stdlib_io, f"{path} imports {dep[0]}"


def test_the_oauth_decisions_do_no_io() -> None:
    stdlib_io = {"anyio", "httpx", "trio", "asyncio", "socket", "time", "random", "logging"}
    for name in OAUTH_SANS_IO:
        path = SRC / "oauth" / f"{name}.py"
        for dep in _imports(path):
            if _ours(dep):
                allowed = dep[0] in CORE_PACKAGES or (
                    dep[0] == "oauth" and dep[1:2] and dep[1] in OAUTH_SANS_IO
                )
                assert allowed, f"{path} imports mcpconn.{'.'.join(dep)}"
            else:
                assert dep[0] not in stdlib_io | {"secrets"}, f"{path} imports {dep[0]}"


def test_imports_point_downward_only() -> None:
    checked = 0
    for path in _sources():
        me = _module_name(path)
        if not me:
            continue
        mine = _rank(ORDER, me[0])
        for dep in _imports(path):
            if not dep or (
                len(dep) == 1
                and not (SRC / dep[0]).exists()
                and not (SRC / f"{dep[0]}.py").exists()
            ):
                continue  # a third-party or stdlib module
            theirs = _rank(ORDER, dep[0])
            if mine is not None and theirs is not None:
                checked += 1
                assert theirs >= mine, f"{'.'.join(me)} imports mcpconn.{'.'.join(dep)}"
            inner = INNER.get(me[0])
            if inner and dep[0] == me[0] and len(me) > 1 and len(dep) > 1:
                a, b = _rank(inner, me[1]), _rank(inner, dep[1])
                if a is not None and b is not None and me[1] != dep[1]:
                    assert b >= a, f"{'.'.join(me)} imports mcpconn.{'.'.join(dep)}"
    assert checked > 50


def test_every_layer_is_a_package_in_the_file_list() -> None:
    """A newcomer can draw the layers from ``ls src/mcpconn``."""
    for layer in ORDER:
        for name in layer:
            assert (SRC / name).is_dir() or (SRC / f"{name}.py").exists(), name
    loose = {p.stem for p in SRC.glob("_*.py")} - {"__init__", "__main__"}
    assert loose <= CORE_PACKAGES, f"modules outside any layer package: {loose - CORE_PACKAGES}"
