"""Request metadata headers of the 2026-07-28 HTTP binding: value encoding, ``x-mcp-header``.

A tool's ``inputSchema`` may mark properties with ``x-mcp-header: Name``; the
client then mirrors the argument into ``Mcp-Param-Name`` (spec:
basic/transports/streamable-http, "Custom Headers from Tool Parameters"). An
annotation is valid only on a property reached through a chain of plain
``properties`` keys, names an RFC 9110 token, sits on a string/integer/boolean
property and is unique ignoring case; a tool with an invalid one must be left
out of ``tools/list``. Sans-IO: plain functions over decoded JSON.
"""

from __future__ import annotations

import base64
import re
from typing import Any

__all__ = ["encode_header_value", "param_header_map", "param_headers"]

_HEADER_SAFE = re.compile(r"[\x20-\x7e]*")
_SENTINEL = re.compile(r"=\?base64\?.*\?=", re.DOTALL)
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_ANNOTATION = "x-mcp-header"
_PRIMITIVES = ("string", "integer", "boolean")
#: JSON Schema keywords whose values are subschemas (leaving the ``properties`` chain).
_ONE = frozenset(
    [
        "items",
        "contains",
        "additionalProperties",
        "propertyNames",
        "unevaluatedItems",
        "unevaluatedProperties",
        "not",
        "if",
        "then",
        "else",
        "contentSchema",
    ]
)
_MANY = frozenset(("allOf", "anyOf", "oneOf", "prefixItems"))
_MAP = frozenset(("patternProperties", "dependentSchemas", "$defs", "definitions"))


def encode_header_value(value: str) -> str:
    """The spec's value encoding: plain when header-safe, else ``=?base64?...?=``."""
    if _HEADER_SAFE.fullmatch(value) and value == value.strip() and not _SENTINEL.fullmatch(value):
        return value
    return "=?base64?" + base64.b64encode(value.encode()).decode("ascii") + "?="


def param_header_map(schema: Any) -> dict[tuple[str, ...], str]:
    """Property path -> header token for every annotation; `ValueError` names a bad one."""
    found: dict[tuple[str, ...], str] = {}
    seen: set[str] = set()
    stack: list[tuple[tuple[str, ...] | None, Any]] = [((), schema)]
    while stack:
        path, node = stack.pop()
        if not isinstance(node, dict):
            continue
        if _ANNOTATION in node:
            token = node[_ANNOTATION]
            if not path:
                raise ValueError(f"{_ANNOTATION} is not on a property reached through properties")
            if not isinstance(token, str) or not _TOKEN.fullmatch(token):
                raise ValueError(f"{_ANNOTATION} on {'.'.join(path)!r} is not an RFC 9110 token")
            if node.get("type") not in _PRIMITIVES:
                raise ValueError(f"{_ANNOTATION} on {'.'.join(path)!r} is not on a primitive")
            if token.lower() in seen:
                raise ValueError(f"{_ANNOTATION} {token!r} appears twice")
            seen.add(token.lower())
            found[path] = token
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                for name, sub in value.items():
                    stack.append(((*path, name) if path is not None else None, sub))
            elif key in _ONE:
                stack.append((None, value))
            elif key in _MANY and isinstance(value, list):
                stack.extend((None, sub) for sub in value)
            elif key in _MAP and isinstance(value, dict):
                stack.extend((None, sub) for sub in value.values())
    return found


def _render(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | str):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return None


def param_headers(header_map: dict[tuple[str, ...], str], arguments: Any) -> dict[str, str]:
    """The ``Mcp-Param-*`` headers for a call's arguments; absent or null values are omitted."""
    headers: dict[str, str] = {}
    for path, token in header_map.items():
        node = arguments
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        rendered = _render(node)
        if rendered is not None:
            headers[f"Mcp-Param-{token}"] = encode_header_value(rendered)
    return headers
