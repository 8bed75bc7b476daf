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

import hashlib
import json
import os
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, cast
from urllib.parse import urljoin

import anyio
import httpx

import mcpconn
import mcpconn.oauth
from mcpconn import oauth

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
# Tokens. Interactive scenarios (authorization code + PKCE) use mcpconn.oauth's
# OAuthProvider; the suite's authorization endpoints auto-approve, so the user agent
# only follows the redirect. The non-interactive grant scenarios are answered below
# the way an aggregator would: discover (RFC 9728 / RFC 8414), then one grant.
# --------------------------------------------------------------------------------------

NON_INTERACTIVE = {
    "auth/client-credentials-basic",
    "auth/client-credentials-jwt",
    "auth/wif-jwt-bearer",
    "auth/enterprise-managed-authorization",
}
CIMD_URL = "https://conformance-test.local/client-metadata.json"


async def follow_redirect(prompt: mcpconn.oauth.AuthorizationPrompt) -> str:
    """The test user agent: the suite approves at once; return where it redirects."""
    async with httpx.AsyncClient(timeout=10) as http:
        resp = await http.get(prompt.url)
    location = resp.headers.get("location")
    if resp.status_code not in (301, 302, 303, 307, 308) or not location:
        raise RuntimeError(f"authorization endpoint answered {resp.status_code}, no redirect")
    log("user agent: approved, scope", prompt.scope)
    return urljoin(prompt.url, location)


class LoginProvider:
    """mcpconn.oauth for the interactive scenarios; a refusal ends the run at once."""

    def __init__(self, ctx: JSON) -> None:
        clients = []
        if ctx.get("client_id") and ctx.get("client_secret"):  # auth/pre-registration
            clients.append(
                mcpconn.oauth.ClientRegistration(
                    ctx["client_id"], ctx["client_secret"], issuer=ctx.get("issuer")
                )
            )
        self.oauth = mcpconn.oauth.OAuthProvider(
            user_agent=follow_redirect, clients=clients, client_metadata_url=CIMD_URL, dpop=True
        )
        self.step_up = True
        self.refused = anyio.Event()
        self.calls = 0

    def _bind_token_source(self, source: mcpconn.TokenSource) -> None:
        self.oauth._bind_token_source(source)

    async def __call__(self, req: mcpconn.TokenRequest) -> mcpconn.Token:
        self.calls += 1
        challenge = req.challenge
        log(f"provider call {self.calls}: force={req.force} error={challenge and challenge.error}")
        try:
            return await self.oauth(req)
        except (mcpconn.OAuthError, mcpconn.ReauthRequired) as exc:
            log("provider refused:", type(exc).__name__, exc)
            self.refused.set()
            raise


async def no_token(req: Any) -> str:
    raise RuntimeError("this scenario runs without a token")


class GrantProvider:
    """Token provider for one OAuth grant that needs no user, on mcpconn.oauth's helpers:
    discovery (RFC 9728 / RFC 8414), then client_credentials, jwt-bearer or RFC 8693."""

    def __init__(self, scenario: str, server_url: str, ctx: JSON) -> None:
        self.scenario, self.server_url, self.ctx = scenario, server_url, ctx
        self.calls = 0
        self.refused = anyio.Event()  # never set: these grants need no user

    async def __call__(self, req: mcpconn.TokenRequest) -> mcpconn.Token:
        self.calls += 1
        if self.calls > 3:
            raise RuntimeError("token provider called too often; giving up")
        async with httpx.AsyncClient(timeout=10) as http:
            found = await oauth.discover(http, self.server_url, req.challenge)
            response = await self._grant(http, found)
        log(f"obtained a token via {self.scenario} (call {self.calls})")
        return mcpconn.Token.from_jwt(
            response.access_token, expires_in=response.expires_in, now=time.time()
        )

    async def _grant(self, http: httpx.AsyncClient, found: oauth.Discovered) -> oauth.TokenResponse:
        ctx, server, resource = self.ctx, found.server, found.resource
        endpoint, methods = server.token_endpoint, server.token_endpoint_auth_methods_supported
        client = (
            oauth.ClientRegistration(ctx["client_id"], ctx.get("client_secret"))
            if ctx.get("client_id")
            else None
        )
        if self.scenario == "auth/client-credentials-basic":
            return await oauth.client_credentials(
                http, endpoint, client=client, resource=resource, auth_methods_supported=methods
            )
        if self.scenario == "auth/client-credentials-jwt":
            import jwt  # pyjwt; ES256 needs the cryptography package

            now = int(time.time())
            assertion = jwt.encode(
                {
                    "iss": ctx["client_id"],
                    "sub": ctx["client_id"],
                    "aud": server.issuer,
                    "iat": now,
                    "exp": now + 300,
                    "jti": secrets.token_hex(16),
                },
                ctx["private_key_pem"],
                algorithm=ctx.get("signing_algorithm") or "ES256",
            )
            return await oauth.client_credentials(
                http, endpoint, client=None, resource=resource, assertion=assertion
            )
        if self.scenario == "auth/wif-jwt-bearer":
            public = oauth.ClientRegistration(ctx["client_id"], auth_method="none")
            return await oauth.jwt_bearer(
                http, endpoint, assertion=ctx["valid_jwt"], client=public, resource=resource
            )
        # auth/enterprise-managed-authorization: RFC 8693 at the IdP (ID token -> ID-JAG),
        # then the ID-JAG as an RFC 7523 grant at the authorization server.
        idp_client = oauth.ClientRegistration(ctx["idp_client_id"], auth_method="none")
        jag = await oauth.token_exchange(
            http,
            ctx["idp_token_endpoint"],
            subject_token=ctx["idp_id_token"],
            subject_token_type="urn:ietf:params:oauth:token-type:id_token",
            requested_token_type="urn:ietf:params:oauth:token-type:id-jag",
            audience=server.issuer,
            resource=resource,
            client=idp_client,
        )
        return await oauth.jwt_bearer(
            http,
            endpoint,
            assertion=jag.access_token,
            client=client,
            auth_methods_supported=methods,
        )


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
    provider: GrantProvider | LoginProvider = (
        GrantProvider(scenario, url, ctx) if scenario in NON_INTERACTIVE else LoginProvider(ctx)
    )
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
