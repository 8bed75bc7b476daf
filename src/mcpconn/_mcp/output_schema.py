"""``validate_output=True``: a tool result's ``structuredContent`` against its ``outputSchema``.

Results stay plain dicts (faithful forwarding); this only checks, on request.
The schema is the one cached from ``tools/list``. References are resolved
inside the schema only: a ``$ref`` to anything else is refused, never fetched
(a server must not make us reach out to a URL of its choosing). Needs the
``validate`` extra (jsonschema). A failure is `InvalidMessage`, naming the
failing keyword only (the path would quote the server's keys).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._exceptions import InvalidMessage

__all__ = ["check_output"]


def _refuse(uri: str) -> Any:
    raise LookupError("remote $ref not fetched")


def check_output(result: Mapping[str, Any], schema: Mapping[str, Any] | None) -> None:
    """Raise `InvalidMessage` unless ``result`` conforms to ``schema`` (None: nothing to check)."""
    if schema is None or result.get("isError") is True:
        return
    try:
        import jsonschema  # type: ignore[import-untyped]
        from referencing import Registry
        from referencing.exceptions import Unresolvable
    except ImportError as exc:  # pragma: no cover - the extra is not installed
        raise RuntimeError("validate_output=True needs the 'validate' extra") from exc
    content = result.get("structuredContent")
    if not isinstance(content, dict):
        raise InvalidMessage("the tool declares an outputSchema but sent no structuredContent")
    try:
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        validator = cls(schema, registry=Registry(retrieve=_refuse))  # type: ignore[call-arg]
        error = next(iter(validator.iter_errors(content)), None)
    except jsonschema.SchemaError:
        raise InvalidMessage("the tool's outputSchema is not a valid JSON Schema") from None
    except (Unresolvable, LookupError):
        raise InvalidMessage("the tool's outputSchema refers to a schema we do not fetch") from None
    if error is not None:
        keyword = str(error.validator)[:40]
        raise InvalidMessage(f"structuredContent does not match the outputSchema ({keyword})")
