"""HTTP facts -> typed errors: status codes, WWW-Authenticate, Retry-After, content types.

Sans-IO: the shell passes a status, headers and ``now``; these functions decide
what it means. Header parsers never raise on garbage: a hostile or broken
server must not crash us with a header, so what cannot be read is dropped.
Numbers are read with `bounds` (a ``Retry-After`` that cannot mean "wait this
long" is no hint), and header text that ends up in an error (challenge schemes
and parameters, a content type) passes `sanitize` with ``secrets``: the
credentials sent on the request the response answers.

This module owns the one WWW-Authenticate parser of mcpconn (the token layer's
`BearerAuth` uses it too).
"""

from __future__ import annotations

import calendar
import ipaddress
import re
from collections.abc import Collection, Iterable, Mapping
from email.utils import parsedate_tz
from urllib.parse import urlsplit, urlunsplit

from .._exceptions import (
    Challenge,
    Forbidden,
    HTTPStatusError,
    MethodNotAllowed,
    RateLimited,
    ServerError,
    SessionExpired,
    Unauthorized,
    UnexpectedContentType,
)
from .bounds import wait_hint
from .eras import Era, rules_of
from .sanitize import redact, sanitize

__all__ = [
    "MAX_HEADER_CHARS",
    "MAX_PARAMS",
    "canonical_uri",
    "check_content_type",
    "error_for_status",
    "header",
    "is_loopback_host",
    "media_type",
    "parse_challenges",
    "parse_retry_after",
    "parse_www_authenticate",
]

#: WWW-Authenticate text read at most (several values joined with ", ").
MAX_HEADER_CHARS = 8192
#: Parameters kept per challenge.
MAX_PARAMS = 32
#: Characters kept of one challenge parameter value (a scope, a metadata URL).
MAX_PARAM_CHARS = 2048

# RFC 9110 section 11: challenge = auth-scheme [ 1*SP ( token68 / #auth-param ) ].
# Commas separate both parameters and challenges, so we scan: at each position
# a `name = value` pair is a parameter of the current challenge, a lone token
# starts the next challenge, and anything else is skipped.
_TCHAR = r"!#$%&'*+\-.^_`|~0-9A-Za-z"
_TOKEN = re.compile(f"[{_TCHAR}]+")
_PARAM = re.compile(
    rf'([{_TCHAR}]+)[ \t]*=[ \t]*(?:"((?:[^"\\]|\\.)*)"?|([^\s,"]*))',
    re.DOTALL,
)
# A token68 right after the scheme, alone up to the next comma.
_TOKEN68 = re.compile(r"[ \t]+[A-Za-z0-9\-._~+/]+=*[ \t]*(?=,|$)")
_SEPARATORS = re.compile(r"[\s,]*")
# Outside a parameter, a quoted-string or a token glued to junk is not a scheme.
_GARBAGE = re.compile(rf'"(?:[^"\\]|\\.)*"?|[^{_TCHAR}\s,]+[{_TCHAR}]*|.', re.DOTALL)
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)

# RFC 9110 delta-seconds is 1*DIGIT; a leading "+" and a fraction are read leniently.
_DELTA = re.compile(r"\+?[0-9]{1,12}(?:\.[0-9]{1,9})?")


def _skip(pattern: re.Pattern[str], value: str, pos: int) -> int:
    found = pattern.match(value, pos)
    return pos if found is None else found.end()


def _challenges(value: str) -> list[tuple[str, dict[str, str]]]:
    found: list[tuple[str, dict[str, str]]] = []
    params: dict[str, str] | None = None
    pos, end = 0, len(value)
    while True:
        pos = _skip(_SEPARATORS, value, pos)
        if pos >= end:
            return found
        param = _PARAM.match(value, pos) if params is not None else None
        if param is not None and params is not None:
            name, quoted, bare = param.groups()
            text = _ESCAPE.sub(r"\1", quoted) if quoted is not None else bare
            if len(params) < MAX_PARAMS:
                params.setdefault(name.lower(), text)  # a repeated name: the first wins
            pos = param.end()
            continue
        scheme = _TOKEN.match(value, pos)
        if scheme is not None:
            params = {}
            found.append((scheme.group(), params))
            pos = scheme.end()
            token68 = _TOKEN68.match(value, pos)
            if token68 is not None:  # its credentials are nothing we use
                pos = token68.end()
            continue
        pos = max(pos + 1, _skip(_GARBAGE, value, pos))


def _join(value: str | Iterable[str] | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value[:MAX_HEADER_CHARS]
    text = ""
    try:  # a hostile iterable must not break the promise never to raise
        for item in value:
            if isinstance(item, str):
                text = f"{text}, {item}" if text else item
                if len(text) >= MAX_HEADER_CHARS:
                    break
    except Exception:
        return ""
    return text[:MAX_HEADER_CHARS]


def parse_challenges(
    value: str | Iterable[str] | None, secrets: Collection[str] = ()
) -> list[Challenge]:
    """Every challenge in one or more WWW-Authenticate values, in order. Never raises.

    Work is bounded: the text is cut at `MAX_HEADER_CHARS` and each challenge
    keeps its first `MAX_PARAMS` parameters. Schemes and parameter names have
    ``secrets`` and JWT-shaped strings redacted; parameter values are sanitized
    (at most `MAX_PARAM_CHARS` each): a server that echoes our token in
    ``error=`` gets the `REDACTED` marker there instead.
    """
    challenges = []
    for scheme, raw in _challenges(_join(value)):
        bearer = scheme.lower() == "bearer"
        params = {
            redact(name, secrets): sanitize(text, secrets, limit=MAX_PARAM_CHARS)
            for name, text in raw.items()
        }
        challenges.append(
            Challenge(
                scheme="Bearer" if bearer else sanitize(scheme, secrets),
                error=params.get("error"),
                error_description=params.get("error_description"),
                scope=params.get("scope"),
                resource_metadata=params.get("resource_metadata"),
                params=params,
            )
        )
    return challenges


def parse_www_authenticate(
    value: str | Iterable[str] | None, secrets: Collection[str] = ()
) -> Challenge | None:
    """The first ``Bearer`` challenge; else the first challenge of any scheme; else ``None``.

    ``value`` is one header value or several (``headers.get_list(...)``); one value
    may hold several challenges. Schemes and parameter names are case-insensitive,
    quoted-strings may hold escapes and commas, a token68 (``Basic abc==``) is
    skipped. A non-Bearer challenge is still returned so the caller can see that
    the server wants a scheme we do not speak.
    """
    challenges = parse_challenges(value, secrets)
    for challenge in challenges:
        if challenge.scheme == "Bearer":
            return challenge
    return challenges[0] if challenges else None


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from ``now`` (epoch seconds): delta-seconds or an HTTP-date.

    ``None`` unless the value can mean "wait this long" (`bounds.wait_hint`): a
    date in the past or now, ``0``, a negative, garbage and absurd values are no
    hint, so the caller's backoff curve applies. Not capped: a valid hint is
    honoured as is; capping is the caller's policy.
    """
    if value is None:
        return None
    text = value.strip()
    if not text or len(text) > 64:  # the longest HTTP-date form is 29 characters
        return None
    if _DELTA.fullmatch(text):
        return wait_hint(float(text))
    try:
        parts = parsedate_tz(text)
        if parts is None:
            return None
        # HTTP dates are GMT; parsedate_tz gives the offset when one is written.
        when = calendar.timegm(parts[:6]) - (parts[9] or 0)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return wait_hint(float(when) - now)


def header(headers: Mapping[str, str], name: str) -> str | None:
    """``headers[name]``, case-insensitively even for a plain dict."""
    found = headers.get(name)
    if found is not None:
        return found
    lowered = name.lower()
    for key, item in headers.items():
        if key.lower() == lowered:
            return item
    return None


def error_for_status(
    status: int,
    headers: Mapping[str, str],
    *,
    had_session: bool,
    era: Era,
    now: float,
    secrets: Collection[str] = (),
) -> HTTPStatusError | None:
    """The typed error an HTTP status means, or ``None`` for 2xx.

    ``secrets``: the credentials sent on the request (see the module docstring).

    404/410 means "session gone" only when the request carried a session id and
    the era's rules have sessions (`EraRules.sessions`): in the stateless era
    (2026-07-28) a 404 is a missing method or endpoint, and re-initializing would loop.
    """
    if 200 <= status < 300:
        return None
    if status == 401:
        return Unauthorized(parse_www_authenticate(header(headers, "www-authenticate"), secrets))
    if status == 403:
        return Forbidden(parse_www_authenticate(header(headers, "www-authenticate"), secrets))
    if status in (404, 410):
        if had_session and rules_of(era).sessions:
            return SessionExpired(status, f"HTTP {status}: the MCP session is gone")
        return HTTPStatusError(status)
    if status == 405:
        return MethodNotAllowed()
    if status in (429, 503):
        return RateLimited(status, parse_retry_after(header(headers, "retry-after"), now=now))
    if 500 <= status < 600:
        return ServerError(status)
    return HTTPStatusError(status)


def media_type(content_type: str | None) -> str | None:
    """``"Text/Event-Stream; charset=utf-8"`` -> ``"text/event-stream"``; blank -> ``None``."""
    if content_type is None:
        return None
    kind = content_type.partition(";")[0].strip().lower()
    return kind or None


def check_content_type(
    content_type: str | None, allowed: tuple[str, ...], secrets: Collection[str] = ()
) -> str:
    """The media type if it is one of ``allowed``; otherwise `UnexpectedContentType`
    carrying the sanitized header (``secrets``: the credentials sent on the request)."""
    kind = media_type(content_type)
    if kind is not None and kind in (item.lower() for item in allowed):
        return kind
    raise UnexpectedContentType(None if content_type is None else sanitize(content_type, secrets))


def canonical_uri(url: str) -> str:
    """A server's canonical URI (RFC 8707, MCP): lower-case scheme and host, no
    fragment, no trailing slash. What `TokenRequest.resource` carries."""
    parts = urlsplit(url)
    return urlunsplit(
        (parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip("/"), parts.query, "")
    )


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1, ::ffff:127.x).

    Deliberately not ``*.localhost``: a misconfigured resolver could send such a
    name off the machine, and this decides whether a token may go over http.
    """
    name = host.strip().lower()
    if name.startswith("[") and "]" in name:
        name = name[1 : name.index("]")]
    elif name.count(":") == 1:  # host:port (an IPv6 address has several colons)
        name = name.partition(":")[0]
    name = name.removesuffix(".")
    if name == "localhost":
        return True
    name = name.partition("%")[0]  # an IPv6 zone id
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback
