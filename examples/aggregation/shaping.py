"""Small conversions between the SDK's models, mcpconn's plain dicts and JSON.

Downstream results arrive as dicts and go up as SDK models under new names; statistics
go out as JSON. Kept apart so the routing code reads as routing.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping
from typing import Any

import mcp_types as types


def renamed(model: Any, item: dict[str, Any], new: str, *, key: str = "name") -> Any:
    """A downstream tool, prompt or resource as ``model``, under its namespaced name."""
    return model.model_validate({**item, key: new})


def without_protocol_meta(result: dict[str, Any]) -> dict[str, Any]:
    """Drop the downstream's ``io.modelcontextprotocol/*`` ``_meta`` (its serverInfo...)."""
    meta = result.get("_meta")
    if isinstance(meta, dict):
        kept = {k: v for k, v in meta.items() if not k.startswith("io.modelcontextprotocol/")}
        result = {k: v for k, v in result.items() if k != "_meta"}
        if kept:
            result["_meta"] = kept
    return result


def error_result(text: str) -> types.CallToolResult:
    """A tool result the client shows its user: tool failures are results, not errors."""
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)


def dump(value: Any) -> Any:
    """SDK models (or dicts of them) as plain JSON dicts."""
    if hasattr(value, "model_dump"):
        return value.model_dump(by_alias=True, mode="json", exclude_none=True)
    if isinstance(value, dict):
        return {k: dump(v) for k, v in value.items()}
    return value


def jsonable(value: Any) -> Any:
    """Statistics as JSON: dataclasses to dicts, enums (keys too) to their values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {jsonable(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no infinity
    return value.value if isinstance(value, enum.Enum) else value
