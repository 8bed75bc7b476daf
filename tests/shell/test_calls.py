"""Per-call options and the 2026 resultType rules, one layer alone (`mcpconn._mcp.calls`)."""

from __future__ import annotations

from typing import Any

import pytest

from mcpconn import InputRequired, InvalidMessage, JSONRPCError
from mcpconn._mcp.calls import (
    LOG_LEVEL_KEY,
    CallOptions,
    complete_rounds,
    merge_params,
    result_type,
)


def test_meta_precedence_level_then_params_then_caller_then_our_progress_token() -> None:
    params = {"name": "t", "_meta": {"a": 1, "progressToken": "params"}}
    options = CallOptions(meta={"a": 2, "traceparent": "00-x", LOG_LEVEL_KEY: "error"})
    merged = merge_params(params, options, log_level="debug", progress_token=7)
    assert merged == {
        "name": "t",
        "_meta": {"a": 2, "progressToken": 7, "traceparent": "00-x", LOG_LEVEL_KEY: "error"},
    }
    assert params["_meta"] == {"a": 1, "progressToken": "params"}  # the caller's dict is untouched
    assert merge_params(None, CallOptions(), log_level=None, progress_token=None) is None
    level_only = merge_params(None, CallOptions(), log_level="info", progress_token=None)
    assert level_only == {"_meta": {LOG_LEVEL_KEY: "info"}}


def test_input_responses_and_state_ride_the_params() -> None:
    options = CallOptions(input_responses={"k": {"action": "accept"}}, request_state="s1")
    merged = merge_params({"name": "t"}, options, log_level=None, progress_token=None)
    assert merged == {
        "name": "t",
        "inputResponses": {"k": {"action": "accept"}},
        "requestState": "s1",
    }


def test_result_types() -> None:
    assert result_type({}) == "complete"
    assert result_type({"resultType": "complete"}) == "complete"
    assert result_type({"resultType": "input_required"}) == "input_required"
    for bad in ("task", 3, None, "x" * 10_000):
        with pytest.raises(InvalidMessage) as info:
            result_type({"resultType": bad})
        assert "task" not in str(info.value) and "xxx" not in str(info.value)  # never quoted


ASK = {
    "resultType": "input_required",
    "inputRequests": {"q": {"method": "elicitation/create", "params": {"message": "?"}}},
    "requestState": "opaque",
}


async def test_drive_answers_each_round_with_a_new_send_and_echoes_the_state() -> None:
    sent: list[CallOptions] = []

    async def send(options: CallOptions) -> dict[str, Any]:
        sent.append(options)
        return ASK if len(sent) < 3 else {"content": [], "resultType": "complete"}

    async def answer(method: str, params: Any, key: str, context: Any) -> dict[str, Any]:
        return {"action": "accept", "content": {"key": key, "context": context}}

    result = await complete_rounds(
        send, CallOptions(context="up-1"), mode="drive", max_rounds=8, answer=answer
    )
    assert result == {"content": [], "resultType": "complete"}
    assert [o.request_state for o in sent] == [None, "opaque", "opaque"]
    assert sent[1].input_responses == {
        "q": {"action": "accept", "content": {"key": "q", "context": "up-1"}}
    }


async def test_drive_stops_after_max_rounds_and_raise_never_answers() -> None:
    calls = 0

    async def send(options: CallOptions) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        return ASK

    async def answer(method: str, params: Any, key: str, context: Any) -> dict[str, Any]:
        return {"action": "decline"}

    with pytest.raises(InputRequired) as info:
        await complete_rounds(send, CallOptions(), mode="drive", max_rounds=2, answer=answer)
    assert calls == 3  # the first send and two answer-and-retry rounds
    assert info.value.request_state == "opaque"
    assert info.value.input_requests == ASK["inputRequests"]
    calls = 0
    with pytest.raises(InputRequired):
        await complete_rounds(send, CallOptions(), mode="raise", max_rounds=8, answer=answer)
    assert calls == 1


async def test_a_failing_handler_becomes_an_mcpconn_error() -> None:
    async def send(options: CallOptions) -> dict[str, Any]:
        return ASK

    async def broken(method: str, params: Any, key: str, context: Any) -> dict[str, Any]:
        raise RuntimeError("bug")

    async def refuses(method: str, params: Any, key: str, context: Any) -> dict[str, Any]:
        raise JSONRPCError(-32600, "no")

    async def missing(method: str, params: Any, key: str, context: Any) -> None:
        return None

    with pytest.raises(InputRequired):
        await complete_rounds(send, CallOptions(), mode="drive", max_rounds=8, answer=broken)
    with pytest.raises(JSONRPCError):
        await complete_rounds(send, CallOptions(), mode="drive", max_rounds=8, answer=refuses)
    with pytest.raises(InputRequired):
        await complete_rounds(send, CallOptions(), mode="drive", max_rounds=8, answer=missing)


def test_the_active_otel_span_rides_meta_and_the_callers_traceparent_wins() -> None:
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("mcpconn-tests")
    assert merge_params(None, CallOptions(), log_level=None, progress_token=None) is None
    with tracer.start_as_current_span("upstream") as span:
        trace_id = f"{span.get_span_context().trace_id:032x}"
        merged = merge_params({"name": "t"}, CallOptions(), log_level=None, progress_token=None)
        assert merged is not None
        assert merged["_meta"]["traceparent"].split("-")[1] == trace_id
        own = CallOptions(meta={"traceparent": "00-caller-01"})
        kept = merge_params(None, own, log_level=None, progress_token=None)
        assert kept == {"_meta": {"traceparent": "00-caller-01"}}


def test_capabilities_are_declared_for_handled_methods_and_client_capabilities_only() -> None:
    from mcpconn._supervision.server_requests import declared_capabilities, merge_handlers

    async def handler(request: Any) -> dict[str, Any]:
        return {}

    async def other(request: Any) -> dict[str, Any]:
        return {}

    shared = {"sampling/createMessage": handler, "roots/list": handler}
    merged = merge_handlers(shared, {"roots/list": other, "elicitation/create": other})
    assert merged == {
        "sampling/createMessage": handler,
        "roots/list": other,  # the connection's handler wins
        "elicitation/create": other,
    }
    assert declared_capabilities({}, None) == {}
    assert declared_capabilities({"ping": handler, "x/y": handler}, None) == {}
    declared = declared_capabilities(
        {"sampling/createMessage": handler},
        {"sampling": {"tools": {}}, "experimental": {"x": {}}},
    )
    assert declared == {"sampling": {"tools": {}}, "experimental": {"x": {}}}
    assert declared_capabilities(merged, None) == {"elicitation": {}, "roots": {}, "sampling": {}}


async def test_drive_hands_an_absurd_round_to_the_caller() -> None:
    from mcpconn._mcp.calls import MAX_INPUT_REQUESTS

    many = {f"k{i}": {"method": "roots/list"} for i in range(MAX_INPUT_REQUESTS + 1)}
    answered: list[str] = []

    async def send(options: CallOptions) -> dict[str, Any]:
        return {"resultType": "input_required", "inputRequests": many}

    async def answer(method: str, params: Any, key: str, context: Any) -> dict[str, Any]:
        answered.append(key)
        return {"roots": []}

    with pytest.raises(InputRequired) as info:
        await complete_rounds(send, CallOptions(), mode="drive", max_rounds=8, answer=answer)
    assert answered == [] and len(info.value.input_requests) == MAX_INPUT_REQUESTS + 1


def test_a_remote_parent_attached_to_the_context_rides_meta_and_none_after_detach() -> None:
    from opentelemetry import context, trace

    parent = trace.SpanContext(
        trace_id=0x1234, span_id=0x99, is_remote=True, trace_flags=trace.TraceFlags(1)
    )
    token = context.attach(trace.set_span_in_context(trace.NonRecordingSpan(parent)))
    try:
        merged = merge_params(None, CallOptions(), log_level=None, progress_token=None)
    finally:
        context.detach(token)
    assert merged is not None
    assert merged["_meta"]["traceparent"] == f"00-{0x1234:032x}-{0x99:016x}-01"
    assert merge_params(None, CallOptions(), log_level=None, progress_token=None) is None
