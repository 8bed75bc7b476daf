"""mcpconn as the client under test of the official MCP conformance suite.

The suite starts a scenario server and runs ``python client.py <server-url>``
with ``MCP_CONFORMANCE_SCENARIO`` (scenario name), ``MCP_CONFORMANCE_PROTOCOL_VERSION``
(the era to speak) and, for some scenarios, ``MCP_CONFORMANCE_CONTEXT`` (JSON) set.
Everything on the wire goes through mcpconn's public API; this file only plays the
embedding application: it picks what to call, answers server-to-client requests
(elicitation, sampling, roots) and, for the skills extension, acts as the host.

Exit status 0 means the client finished its part; the suite judges the wire.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, cast
from urllib.parse import quote, urlsplit

import anyio
import httpx

import mcpconn

JSON = dict[str, Any]
TransportKind = Literal["auto", "streamable-http", "sse"]
Handler = Callable[[mcpconn.ServerRequest], Awaitable[JSON]]

SCENARIO_TIMEOUT = float(os.environ.get("CONFORMANCE_CLIENT_TIMEOUT", "25"))
READY_TIMEOUT = 10.0
SUPPORTED_VERSIONS = ("2026-07-28", "2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")


_T0 = time.monotonic()


def log(*parts: object) -> None:
    print(f"[client +{time.monotonic() - _T0:.2f}s]", *parts, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------
# Server-to-client request handlers: what an embedding application would answer.
# --------------------------------------------------------------------------------------


def _value_for(schema: JSON) -> Any:
    """A form answer for one field: its default when the schema gives one (SEP-1034)."""
    if "default" in schema:
        return schema["default"]
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "boolean":
        return True
    if kind in ("number", "integer"):
        return 0
    return ""


async def on_elicit(request: mcpconn.ServerRequest) -> JSON:
    params = request.params
    schema = (params or {}).get("requestedSchema") or {}
    props: JSON = schema.get("properties") or {}
    content = {name: _value_for(field) for name, field in props.items()}
    log("elicitation/create ->", json.dumps(content))
    return {"action": "accept", "content": content}


async def on_sampling(request: mcpconn.ServerRequest) -> JSON:
    params = request.params
    log("sampling/createMessage", json.dumps(params)[:200])
    return {
        "role": "assistant",
        "content": {"type": "text", "text": "conformance sample"},
        "model": "mcpconn-conformance-stub",
        "stopReason": "endTurn",
    }


async def on_roots(request: mcpconn.ServerRequest) -> JSON:
    return {"roots": [{"uri": "file:///tmp/mcpconn-conformance", "name": "conformance"}]}


HANDLERS: dict[str, Handler] = {
    "elicitation/create": on_elicit,
    "sampling/createMessage": on_sampling,
    "roots/list": on_roots,
}


# --------------------------------------------------------------------------------------
# Helpers over a connection
# --------------------------------------------------------------------------------------


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


async def answer_inputs(conn: Any, requests: JSON) -> JSON:
    """Answer a 2026 ``inputRequests`` map through the handlers, as the library would."""
    responses: JSON = {}
    for key, req in requests.items():
        handler = HANDLERS.get(req.get("method", ""))
        if handler is None:
            raise RuntimeError(f"no handler for input request {req.get('method')!r}")
        request = mcpconn.ServerRequest(
            method=req["method"],
            params=req.get("params") or {},
            request_id=key,
            connection=conn,
            server=conn.server.name,
            principal=conn.principal,
            context=None,
            cancelled=anyio.Event(),
        )
        responses[key] = await handler(request)
    return responses


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


# --------------------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------
# Tokens. mcpconn takes bearer tokens from the embedder's provider and has no OAuth
# client of its own; the suite's non-interactive grant scenarios are answered here
# the way an aggregator would: discover (RFC 9728 / RFC 8414), then one grant.
# --------------------------------------------------------------------------------------


async def no_token(req: Any) -> str:
    raise RuntimeError("this scenario runs without a token")


async def _get_json(http: httpx.AsyncClient, urls: list[str]) -> JSON:
    for candidate in urls:
        resp = await http.get(candidate)
        if resp.status_code == 200:
            data: JSON = resp.json()
            return data
    raise RuntimeError(f"no metadata at any of {urls}")


def _well_known(base: str, name: str) -> list[str]:
    """Path-aware well-known URLs first (RFC 8414 section 3.1 / RFC 9728 section 3.1)."""
    parts = urlsplit(base)
    path = parts.path.rstrip("/")
    root = f"{parts.scheme}://{parts.netloc}/.well-known/{name}"
    return [root + path, root] if path else [root]


class GrantProvider:
    """Token provider for one OAuth grant that needs no user: cached until refreshed."""

    def __init__(self, scenario: str, server_url: str, ctx: JSON) -> None:
        self.scenario, self.server_url, self.ctx = scenario, server_url, ctx
        self.calls = 0
        #: Set when the scenario needs a user at a browser: no point waiting for READY.
        self.refused = anyio.Event()

    async def __call__(self, req: Any) -> str:
        self.calls += 1
        if self.calls > 3:
            raise RuntimeError("token provider called too often; giving up")
        async with httpx.AsyncClient(timeout=10) as http:
            prm = await _get_json(http, _well_known(self.server_url, "oauth-protected-resource"))
            issuer = prm["authorization_servers"][0]
            meta = await _get_json(
                http,
                _well_known(issuer, "oauth-authorization-server")
                + _well_known(issuer, "openid-configuration"),
            )
            token = await self._grant(http, prm, meta)
        log(f"obtained a token via {self.scenario} (call {self.calls})")
        return token

    async def _grant(self, http: httpx.AsyncClient, prm: JSON, meta: JSON) -> str:
        ctx, endpoint = self.ctx, meta["token_endpoint"]
        form: JSON = {"resource": prm.get("resource", self.server_url)}
        headers: dict[str, str] = {}
        if self.scenario == "auth/client-credentials-basic":
            form["grant_type"] = "client_credentials"
            headers["Authorization"] = _basic(ctx["client_id"], ctx["client_secret"])
        elif self.scenario == "auth/client-credentials-jwt":
            import jwt  # pyjwt; ES256 needs the cryptography package

            now = int(time.time())
            form |= {
                "grant_type": "client_credentials",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": jwt.encode(
                    {
                        "iss": ctx["client_id"],
                        "sub": ctx["client_id"],
                        "aud": meta.get("issuer", endpoint),
                        "iat": now,
                        "exp": now + 300,
                        "jti": secrets.token_hex(16),
                    },
                    ctx["private_key_pem"],
                    algorithm=ctx.get("signing_algorithm") or "ES256",
                ),
            }
        elif self.scenario == "auth/wif-jwt-bearer":
            form |= {
                "grant_type": JWT_BEARER,
                "assertion": ctx["valid_jwt"],
                "client_id": ctx["client_id"],
            }
        elif self.scenario == "auth/enterprise-managed-authorization":
            # RFC 8693 at the IdP: ID token -> ID-JAG, then RFC 7523 at the AS.
            exchange = await http.post(
                ctx["idp_token_endpoint"],
                data={
                    "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                    "requested_token_type": "urn:ietf:params:oauth:token-type:id-jag",
                    "audience": meta["issuer"],
                    "resource": form["resource"],
                    "subject_token": ctx["idp_id_token"],
                    "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
                    "client_id": ctx["idp_client_id"],
                },
            )
            exchange.raise_for_status()
            form = {"grant_type": JWT_BEARER, "assertion": exchange.json()["access_token"]}
            headers["Authorization"] = _basic(ctx["client_id"], ctx["client_secret"])
        else:
            self.refused.set()
            raise RuntimeError(f"{self.scenario} needs an interactive authorization_code login")
        resp = await http.post(endpoint, data=form, headers=headers)
        if resp.status_code != 200:
            raise RuntimeError(f"token endpoint said {resp.status_code}: {resp.text[:200]}")
        access: str = resp.json()["access_token"]
        return access


JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def _basic(client_id: str, secret: str) -> str:
    raw = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def server_config(url: str, version: str | None, *, auth: bool) -> mcpconn.ServerConfig:
    """Defaults, except what the suite dictates; CONFORMANCE_TRANSPORT / CONFORMANCE_LISTEN=0
    exist only to diagnose a failure (run.sh never sets them)."""
    transport = cast(TransportKind, os.environ.get("CONFORMANCE_TRANSPORT", "auto"))
    listen = os.environ.get("CONFORMANCE_LISTEN", "1") != "0"
    if version is not None and version not in SUPPORTED_VERSIONS:
        log(f"suite asked for protocol {version}, which mcpconn does not speak; using default")
        version = None
    return mcpconn.ServerConfig(
        "conformance",
        url,
        transport=transport,
        forward_token=auth,
        protocol_version=version,
        listen=listen,
    )


async def until_ready(conn: Any, refused: anyio.Event) -> None:
    """READY, or fail fast when the provider refused or the deadline passed."""
    with anyio.move_on_after(READY_TIMEOUT):
        async with anyio.create_task_group() as tg:

            async def ready() -> None:
                await conn.wait_for(mcpconn.State.READY)
                tg.cancel_scope.cancel()

            async def refusal() -> None:
                await refused.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(ready)
            tg.start_soon(refusal)
    if conn.state is not mcpconn.State.READY:
        last = getattr(conn, "last_error", None)
        raise RuntimeError(f"not READY: {conn!r}, last error {last!r}")


async def main(url: str) -> int:
    scenario = os.environ.get("MCP_CONFORMANCE_SCENARIO", "tools_call")
    version = os.environ.get("MCP_CONFORMANCE_PROTOCOL_VERSION") or None
    ctx: JSON = json.loads(os.environ.get("MCP_CONFORMANCE_CONTEXT") or "{}")
    run = SCENARIOS.get(scenario, basic)
    auth = scenario.startswith("auth/")
    provider = GrantProvider(scenario, url, ctx)
    cfg = server_config(url, version, auth=auth)
    log(f"scenario={scenario} version={cfg.protocol_version} transport={cfg.transport} url={url}")
    with anyio.fail_after(SCENARIO_TIMEOUT):
        async with (
            mcpconn.TokenSource(provider if auth else no_token) as tokens,
            mcpconn.Supervisor(tokens, request_handlers=HANDLERS) as sup,
        ):
            conn = await sup.connect(cfg, "conformance")
            await until_ready(conn, provider.refused)
            async with anyio.create_task_group() as tg:

                async def drain() -> None:
                    async for note in conn.notifications():
                        log("notification:", json.dumps(note)[:200])

                tg.start_soon(drain)
                await run(conn, ctx)
                tg.cancel_scope.cancel()
    log("done")
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: client.py <server-url>  (MCP_CONFORMANCE_SCENARIO names the scenario)")
    sys.exit(anyio.run(main, sys.argv[1]))
