"""``validate_output``: structuredContent against outputSchema, never fetching a $ref."""

from __future__ import annotations

from typing import Any

import pytest

from mcpconn import InvalidMessage
from mcpconn._mcp.output_schema import check_output

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"n": {"$ref": "#/$defs/count"}},
    "required": ["n"],
    "$defs": {"count": {"type": "integer"}},
}


def test_conforming_content_passes_and_no_schema_checks_nothing() -> None:
    check_output({"structuredContent": {"n": 3}}, SCHEMA)
    check_output({"content": []}, None)
    check_output({"isError": True, "content": []}, SCHEMA)  # an error result has no content


@pytest.mark.parametrize(
    ("result", "why"),
    [
        ({"structuredContent": {"n": "three"}}, "(type)"),
        ({"structuredContent": {}}, "(required)"),
        ({"content": []}, "no structuredContent"),
    ],
)
def test_nonconforming_content_is_invalid(result: dict[str, Any], why: str) -> None:
    with pytest.raises(InvalidMessage) as info:
        check_output(result, SCHEMA)
    assert why in str(info.value)
    assert "three" not in str(info.value)  # the server's values are not quoted


def test_a_remote_ref_is_refused_not_fetched() -> None:
    remote = {"type": "object", "properties": {"n": {"$ref": "http://127.0.0.1:9/count.json"}}}
    with pytest.raises(InvalidMessage) as info:
        check_output({"structuredContent": {"n": 1}}, remote)
    assert "do not fetch" in str(info.value)


def test_an_invalid_schema_is_invalid() -> None:
    with pytest.raises(InvalidMessage):
        check_output({"structuredContent": {}}, {"type": 12})
