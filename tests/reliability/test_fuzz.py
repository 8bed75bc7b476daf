"""Properties the core parsers and the state machine keep under hostile input.

tests/core already fuzzes chunking and limits of the SSE decoder, arbitrary
text through the JWT reader, the challenge parser and Retry-After, arbitrary
bytes and JSON through the JSON-RPC reader, and random input sequences through
the machine. This file adds what those do not cover: inputs shaped to get past
the first checks (nesting bombs, JOSE-looking tokens with garbage payloads,
statuses with hostile headers), the limits on what a decoder remembers between
streams, the secrecy of error messages, and the machine's parking rules.
"""

from __future__ import annotations

import base64
import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcpconn import Backoff, InvalidMessage, MalformedTokenError, SSELimitExceeded
from mcpconn._core.http_rules import error_for_status
from mcpconn._core.jsonrpc import ErrorResponse, Request, Response, parse_message
from mcpconn._core.jwt import read_claims
from mcpconn._core.machine import Connect, Fact, Input, InvalidTransition, Machine, State
from mcpconn._core.sse import SSEDecoder
from mcpconn._exceptions import HTTPStatusError, Unauthorized

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# ---- JSON-RPC: nesting bombs and huge numbers ------------------------------------------


@pytest.mark.parametrize("depth", [10, 1_000, 100_000])
@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_nesting_bombs_are_invalid_messages_not_crashes(depth: int, opener: str) -> None:
    data = opener * depth
    with pytest.raises(InvalidMessage):
        parse_message(data)
    nested = '{"jsonrpc":"2.0","method":"m","params":' + '{"a":' * depth + "1" + "}" * depth + "}"
    try:
        message = parse_message(nested)
    except InvalidMessage:
        pass  # too deep for the JSON reader: refused, typed
    else:
        assert getattr(message, "method", None) == "m"


@FUZZ
@given(
    ident=st.one_of(
        st.integers(min_value=-(10**40), max_value=10**40),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=20),
        st.none(),
        st.booleans(),
        st.lists(st.integers(), max_size=2),
    )
)
def test_any_id_is_a_message_or_an_invalid_message(ident: object) -> None:
    for body in (
        {"jsonrpc": "2.0", "id": ident, "result": {}},
        {"jsonrpc": "2.0", "id": ident, "method": "x"},
        {"jsonrpc": "2.0", "id": ident, "error": {"code": 1, "message": "m"}},
    ):
        try:
            message = parse_message(json.dumps(body))
        except InvalidMessage:
            continue
        # what passes carries a usable id: an int or a string (None only on an error)
        if isinstance(message, ErrorResponse) and message.id is None:
            continue
        assert isinstance(message, Request | Response | ErrorResponse)
        assert type(message.id) in (int, str), message


# ---- JWT reader: JOSE-looking tokens with garbage inside --------------------------------

jose_headers = st.sampled_from(
    [b'{"alg":"HS256","typ":"JWT"}', b'{"alg":"none"}', b'{"alg":"RS256","kid":"k"}']
)


@FUZZ
@given(header=jose_headers, payload=st.binary(max_size=200), sig=st.binary(max_size=64))
def test_jose_looking_garbage_is_malformed_and_never_quoted(
    header: bytes, payload: bytes, sig: bytes
) -> None:
    raw = ".".join([b64(header), b64(payload), b64(sig)])
    try:
        claims = read_claims(raw)
    except MalformedTokenError as exc:
        text = f"{exc} {exc!r}"
        for segment in raw.split("."):
            if len(segment) >= 8:
                assert segment not in text  # the message describes the shape only
    else:
        for value in (claims.expires_at, claims.issued_at):
            assert value is None or 0 <= value <= 253402300799


@FUZZ
@given(
    exp=st.one_of(
        st.integers(min_value=-(10**30), max_value=10**30),
        st.floats(allow_nan=False),
        st.text(max_size=10),
        st.none(),
        st.booleans(),
    )
)
def test_any_exp_claim_is_a_sane_date_or_a_malformed_token(exp: object) -> None:
    raw = ".".join(
        [b64(b'{"alg":"HS256"}'), b64(json.dumps({"sub": "a", "exp": exp}).encode()), "c2ln"]
    )
    try:
        claims = read_claims(raw)
    except MalformedTokenError:
        return
    assert claims.expires_at is None or 0 <= claims.expires_at <= 253402300799


# ---- SSE decoder: what it remembers ---------------------------------------------------


@FUZZ
@given(stream=st.binary(max_size=2000), limit=st.integers(min_value=1, max_value=64))
def test_last_event_id_and_retry_stay_bounded(stream: bytes, limit: int) -> None:
    decoder = SSEDecoder(max_line_bytes=limit, max_event_bytes=4 * limit)
    try:
        decoder.feed(stream)
        decoder.close()
    except SSELimitExceeded:
        pass
    assert len(decoder.last_event_id.encode()) <= limit
    assert decoder.retry is None or decoder.retry >= 0
    assert decoder.buffered_bytes <= 4 * limit + 2 * limit + 1


@FUZZ
@given(
    ids=st.lists(
        st.text(
            alphabet=st.characters(blacklist_characters="\r\n\x00", blacklist_categories=["Cs"]),
            max_size=10,
        ),
        max_size=20,
    )
)
def test_event_ids_round_trip(ids: list[str]) -> None:
    decoder = SSEDecoder()
    stream = "".join(f"id: {i}\ndata: x\n\n" for i in ids).encode()
    events = decoder.feed(stream)
    assert len(events) == len(ids)
    if ids:
        assert decoder.last_event_id == ids[-1]


# ---- statuses with hostile headers ----------------------------------------------------


@FUZZ
@given(
    status=st.integers(min_value=100, max_value=999),
    www=st.text(max_size=300),
    retry=st.text(max_size=40),
    had_session=st.booleans(),
    era=st.sampled_from(["sse", "streamable-http", "stateless"]),
)
def test_any_status_maps_to_none_or_a_typed_error_that_prints(
    status: int, www: str, retry: str, had_session: bool, era: str
) -> None:
    headers = {"www-authenticate": www, "retry-after": retry}
    error = error_for_status(status, headers, had_session=had_session, era=era, now=1.7e9)
    if 200 <= status < 300:
        assert error is None
        return
    assert isinstance(error, HTTPStatusError)
    assert error.status_code == status
    str(error), repr(error)  # never raises
    if isinstance(error, Unauthorized) and error.challenge is not None:
        desc = error.challenge.error_description
        if desc and len(desc) > 3 and desc not in (error.challenge.error or ""):
            assert desc not in str(error)  # descriptions stay out of messages


# ---- the machine's parking rules ------------------------------------------------------

NOW = 1.7e9
ANY_BUT_WAKE = [i for i in Input if i not in (Input.TOKEN_PUBLISHED, Input.PROBE_DUE)]


def park(m: Machine) -> None:
    rng = random.Random(0)
    m.feed(Input.STARTED, now=NOW, rng=rng)
    while m.state is not State.NEEDS_REAUTH:
        m.feed(Input.UNAUTHORIZED, now=NOW, rng=rng)
        if m.state is State.BACKOFF:
            m.feed(Input.TIMER_FIRED, now=NOW, rng=rng)


@FUZZ
@given(inputs=st.lists(st.sampled_from(ANY_BUT_WAKE), max_size=40), seed=st.integers(0, 99))
def test_parked_means_silent_until_a_token_is_published(inputs: list[Input], seed: int) -> None:
    m = Machine(backoff=Backoff(auth_attempts=2))
    park(m)
    rng = random.Random(seed)
    for inp in inputs:
        try:
            actions = m.feed(Fact(inp), now=NOW, rng=rng)
        except InvalidTransition:  # the machine's own refusal: nothing changed
            assert m.state is State.NEEDS_REAUTH
            continue
        if m.state is State.CLOSED:
            return
        assert not any(isinstance(a, Connect) for a in actions), inp
        assert m.state is State.NEEDS_REAUTH
    actions = m.feed(Input.TOKEN_PUBLISHED, now=NOW, rng=rng)
    assert m.state is not State.NEEDS_REAUTH or actions  # a publish wakes it (maybe jittered)


def test_a_publish_during_the_last_attempt_is_not_lost() -> None:
    rng = random.Random(0)
    m = Machine(backoff=Backoff(auth_attempts=1))
    m.feed(Input.STARTED, now=NOW, rng=rng)
    m.feed(Input.UNAUTHORIZED, now=NOW, rng=rng)  # attempt 1 of 1
    m.feed(Input.TIMER_FIRED, now=NOW, rng=rng)  # reconnecting with the old token
    assert m.state is State.CONNECTING
    m.feed(Input.TOKEN_PUBLISHED, now=NOW, rng=rng)  # the user logs in again, meanwhile
    m.feed(Input.UNAUTHORIZED, now=NOW, rng=rng)  # the in-flight attempt's old token
    state: State = m.state
    assert state is not State.NEEDS_REAUTH
