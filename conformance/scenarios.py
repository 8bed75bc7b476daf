"""What the client does in each scenario, once its connection is READY.

A scenario's server judges what it sees on the wire; these functions only choose what to
call, through mcpconn's public API. The skills extension (SEP-2640) is host logic, so it
lives here too: verify SKILL.md before reading anything else the skill lists.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Awaitable, Callable
from typing import Any

from answers import answer_inputs
from clientlog import log

import mcpconn

JSON = dict[str, Any]


def _arguments_for(tool: JSON) -> JSON:
    """Plausible arguments from a tool's inputSchema (every required field filled)."""
    schema = tool.get("inputSchema") or {}
    props: JSON = schema.get("properties") or {}
    args: JSON = {}
    for name in schema.get("required") or list(props):
        field = props.get(name) or {}
        kind = field.get("type")
        if kind in ("number", "integer"):
            args[name] = 2 if name != "b" else 3
        elif kind == "boolean":
            args[name] = True
        elif kind == "object":
            args[name] = {}
        elif kind == "array":
            args[name] = []
        elif kind == "null":
            args[name] = None
        else:
            args[name] = field.get("default", "value")
    return args


async def call_with_input(conn: Any, name: str, arguments: JSON) -> JSON:
    """tools/call that follows 2026 multi-round-trip results (SEP-2322) to completion.

    ``InputRequired`` carries the round's requests; every retry is a new request
    (new JSON-RPC id) with ``requestState`` echoed untouched, only when sent.
    """
    responses: JSON | None = None
    state: str | None = None
    for _ in range(8):
        try:
            result: JSON = await conn.call_tool(
                name, arguments, input_responses=responses, request_state=state
            )
        except mcpconn.InputRequired as exc:
            responses = await answer_inputs(conn, exc.input_requests)
            state = exc.request_state
            continue
        return result
    raise RuntimeError(f"{name}: too many input_required rounds")


async def call_every_tool(conn: Any, tools: list[JSON]) -> None:
    """Call each listed tool; one refused call does not stop the others."""
    failed: list[str] = []
    for tool in tools:
        try:
            result = await conn.call_tool(tool["name"], _arguments_for(tool))
        except mcpconn.MCPConnError as exc:
            log("call", tool["name"], "failed:", type(exc).__name__, exc)
            failed.append(tool["name"])
        else:
            log("called", tool["name"], "->", json.dumps(result)[:200])
    if failed:
        raise RuntimeError(f"tool calls failed: {failed}")


async def basic(conn: Any, ctx: JSON) -> None:
    """initialize, tools_call, json-schema-ref-no-deref and the default for new scenarios."""
    tools = await conn.list_tools()
    log("tools:", [t["name"] for t in tools])
    calls = ctx.get("toolCalls")
    if calls:
        for call in calls:
            await conn.call_tool(call["name"], call.get("arguments") or {})
        return
    if os.environ.get("MCP_CONFORMANCE_SCENARIO") == "json-schema-ref-no-deref":
        return  # the scenario's server only serves tools/list
    await call_every_tool(conn, tools)


async def list_only(conn: Any, ctx: JSON) -> None:
    tools = await conn.list_tools()
    log("tools:", [t["name"] for t in tools])


async def elicitation_defaults(conn: Any, ctx: JSON) -> None:
    await conn.list_tools()
    result = await conn.call_tool("test_client_elicitation_defaults", {})
    log("result:", json.dumps(result)[:300])


async def sse_retry(conn: Any, ctx: JSON) -> None:
    await conn.list_tools()
    # The server closes this POST stream after a priming event with retry: 500 and
    # delivers the result on the GET it expects us to resume with.
    result = await conn.call_tool("test_reconnection", {})
    log("result:", json.dumps(result)[:300])


async def schema_preservation(conn: Any, ctx: JSON) -> None:
    tools = await conn.list_tools()
    focal = next(t for t in tools if t["name"] == "json_schema_2020_12_tool")
    await conn.call_tool("json_schema_echo", {"schema": focal["inputSchema"]})


async def standard_headers(conn: Any, ctx: JSON) -> None:
    tools = await conn.list_tools()
    await call_every_tool(conn, tools)
    resources = (await conn.request("resources/list", {})).get("resources", [])
    for res in resources:
        await conn.request("resources/read", {"uri": res["uri"]})
    prompts = (await conn.request("prompts/list", {})).get("prompts", [])
    for prompt in prompts:
        await conn.request("prompts/get", {"name": prompt["name"], "arguments": {}})


async def mrtr(conn: Any, ctx: JSON) -> None:
    """SEP-2322: requestState echo, omission, isolation, default resultType."""
    await conn.list_tools()
    first: mcpconn.InputRequired | None = None
    try:
        await conn.call_tool("test_mrtr_echo_state", {})
    except mcpconn.InputRequired as exc:
        first = exc
    # An unrelated call between rounds must carry none of the first call's state.
    await conn.call_tool("test_mrtr_unrelated", {})
    if first is not None:
        responses = await answer_inputs(conn, first.input_requests)
        await conn.call_tool(
            "test_mrtr_echo_state",
            {},
            input_responses=responses,
            request_state=first.request_state,
        )
    await call_with_input(conn, "test_mrtr_no_state", {})
    await call_with_input(conn, "test_mrtr_no_result_type", {})


def _frontmatter(text: str) -> dict[str, str] | None:
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        return None
    fields: dict[str, str] = {}
    for line in lines[1:]:
        if line.strip() == "---":
            return fields
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip()] = value.strip()
    return None


async def skills(conn: Any, ctx: JSON) -> None:
    """SEP-2640 host behaviour: list lazily, verify SKILL.md before using anything else."""
    listed = await conn.request("skills/list", {})
    scenario = os.environ.get("MCP_CONFORMANCE_SCENARIO", "")
    if scenario == "sep-2640-client-no-prefetch":
        log("skills:", [s["uri"] for s in listed.get("skills", [])])
        return  # nothing is loaded, so nothing may be read
    for skill in listed.get("skills", []):
        entries = {r["uri"]: r for r in skill.get("resources", [])}
        read = await conn.request("resources/read", {"uri": skill["uri"]})
        text = read["contents"][0].get("text", "")
        data = text.encode()
        entry = entries.get(skill["uri"], {})
        ok = True
        if "size" in entry and len(data) != entry["size"]:
            ok = False
        if ok and "digest" in entry:
            ok = entry["digest"] == "sha256:" + hashlib.sha256(data).hexdigest()
        if ok and skill.get("frontmatter") is not None:
            ok = _frontmatter(text) == {k: str(v) for k, v in skill["frontmatter"].items()}
        if not ok:
            log("rejected skill", skill["uri"])
            continue
        for uri in entries:
            if uri != skill["uri"]:
                await conn.request("resources/read", {"uri": uri})


SCENARIOS: dict[str, Callable[[Any, JSON], Awaitable[None]]] = {
    "initialize": list_only,
    "tools_call": basic,
    "elicitation-sep1034-client-defaults": elicitation_defaults,
    "sse-retry": sse_retry,
    "request-metadata": list_only,
    "sep-2322-client-request-state": mrtr,
    "http-standard-headers": standard_headers,
    "http-custom-headers": basic,
    "http-invalid-tool-headers": basic,
    "json-schema-ref-no-deref": list_only,
    "json-schema-2020-12-preservation": schema_preservation,
    "sep-2640-client-no-prefetch": skills,
    "sep-2640-client-verify-digest": skills,
    "sep-2640-client-verify-size": skills,
    "sep-2640-client-verify-frontmatter": skills,
}
