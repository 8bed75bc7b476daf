"""The one sanitizer for server text: what a server says never carries a secret out.

A hostile server can put anything in a challenge parameter, a JSON-RPC error, a
content type or an id: megabytes of it, control characters that forge log lines,
or the very credential we sent it, echoed back so that it lands in an exception,
a state reason or a log record. Every piece of server text passes `sanitize`
before it enters an `MCPConnError` (its message or attributes), a state reason,
a statistic or a log line:

1. work is bounded: only the first `_SCAN` characters are read (a non-string is
   rendered repr-like, depth- and size-bounded, never by ``repr`` itself, which
   recursion-errors on deep JSON);
2. control and format characters (Unicode Cc, Cf, Zl, Zp) are removed, so a
   secret split by a zero-width space is whole again for step 3;
3. every occurrence of a credential sent on that request (``secrets``) becomes
   `REDACTED`, and so does every credential that merely looks like one (`redact`):
   JWT-shaped strings, ``Bearer``/``Basic``/``DPoP`` credentials, the values of
   OAuth parameters (``access_token=``, ``"refresh_token": "..."``, ``code=``),
   of credential headers (``Cookie``, ``Set-Cookie``, ``Authorization``,
   ``Proxy-Authorization``, ``X-Api-Key``-style) and a URL's ``user:password@``;
4. the result is cut to ``limit`` characters (with ``...``). Redaction comes
   first, so a cut never leaves a secret's prefix behind.

`sanitize_json` does the same to a decoded JSON value (JSON-RPC error ``data``):
every string and key cleaned, depth and size bounded, structure kept.

Which secrets are "the credential sent on that request" is the shell's to know:
the transports collect the ``Authorization`` values of each response's requests.
The shapes catch what nobody told us about (another user's token in a dump, a
refresh token in an authorization server's echo). Each pattern is linear in its
input (possessive quantifiers, dotted runs split in Python): a hostile server
cannot make sanitizing cost more than a few scans of `_SCAN` characters.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Any

__all__ = ["MAX_CHARS", "REDACTED", "redact", "sanitize", "sanitize_json"]

#: What a secret or a JWT-shaped string is replaced by.
REDACTED = "[redacted]"
#: The default bound on one piece of sanitized text.
MAX_CHARS = 200
#: Characters of input looked at, whatever the limit.
_SCAN = 16384
#: Bounds of `sanitize_json`: nesting depth, and values (strings, items) in all.
_JSON_DEPTH = 8
_JSON_VALUES = 256
#: Shorter "secrets" are not searched for (an empty one would match everywhere).
_MIN_SECRET = 4
#: Longer mapping keys are not looked at as credential names.
_MAX_KEY = 80


# ---- credential shapes ----------------------------------------------------------------
# A JWT is three (JWE: five) base64url segments, the first a JOSE header: ``{"`` encodes
# as ``eyJ``, ``{`` followed by a space or a line break as ``ey``/``ew``; the last may be
# empty (an unsigned JWT is still one). Wider than tests/conftest.py's guard. Runs of
# dotted base64url are found by one linear scan and split in Python (`_redact_run`).
_B64URL = "A-Za-z0-9_-"
_DOTTED = re.compile(rf"(?<![{_B64URL}])[{_B64URL}]*+(?:\.[{_B64URL}]*+){{2,}}+")
_LOOSE_HEADER = 16  # an ``ey``/``ew`` segment without ``eyJ`` counts from this length
# The patterns below run on the ASCII-lowercased text (`_lower`): case-sensitive
# matching costs a fifth of ``re.IGNORECASE``.
# The b64token of RFC 6750 (and a token68) after a scheme, not followed by ``=``
# (that is a parameter: ``Bearer realm="x"``).
_B64TOKEN = r"[a-z0-9._~+/-]++=*+(?![a-z0-9._~+/=\"-])"
_MIN_SCHEME_CREDENTIAL = 8  # "Bearer token" and "Basic auth" are prose, not credentials
# OAuth and API parameters whose value is a credential, in any separator or quoting;
# ``_?`` also takes the camelCase of JSON bodies (``accessToken``).
_PARAMETERS = (
    r"(?:access|refresh|id|subject|actor|session|auth)_?token|client_?secret"
    r"|client_?assertion|device_?code|code_?verifier|api[-_]?key|private[-_]token"
)
# Generic words: a credential only as ``word=...`` or as a quoted key (``"token": ...``).
_WORDS = r"token|password|passwd|secret|assertion"
# Headers whose whole value is a credential; an ``X-`` header by how its name ends.
_X_ENDINGS = "|".join(f"(?<={end})" for end in ("key", "token", "secret", "auth", "session"))
_HEADERS = (
    rf"(?:set-)?cookie|(?:proxy-)?authorization|(?<![a-z0-9-])x-[a-z0-9-]{{1,60}}+(?:{_X_ENDINGS})"
)
_QUOTED = r"\"(?:[^\"\\]|\\.)*+\"?|'(?:[^'\\]|\\.)*+'?"
_CREDENTIAL = re.compile(  # the lookahead lets the engine skip to the first letters
    rf"""(?=[abcdiprstx])\b(?:
      (?P<header>{_HEADERS})["']?\s*+:\s*+(?P<hvalue>{_QUOTED}|[^\r\n]+)
    | (?:{_PARAMETERS}|(?:{_WORDS})(?=["']\s*+:|\s*+=)|code(?==))
      ["']?\s*+[:=]\s*+(?P<value>{_QUOTED}|(?:(?:bearer|basic|dpop)\s++)?[^\s&"',;<>#]++)
    | (?:bearer|basic|dpop)\s++(?P<credential>{_B64TOKEN})
    )""",
    re.VERBOSE,
)
_USERINFO = re.compile(r"(://)[^\s/?#@:]++:[^\s/?#@]++(@)")
# A JSON or dict key whose value is a credential (`sanitize_json`, rendered mappings).
_SECRET_KEY = re.compile(rf"(?:{_PARAMETERS}|{_WORDS}|{_HEADERS})")
_DROPPED = frozenset(("Cc", "Cf", "Zl", "Zp"))
# Fast path: printable ASCII needs no per-character look-up.
_PLAIN = re.compile(r"[\x20-\x7e]*")


def _strip_controls(text: str) -> str:
    if _PLAIN.fullmatch(text):
        return text
    return "".join(ch for ch in text if unicodedata.category(ch) not in _DROPPED)


def _is_secret_key(key: object, value: object) -> bool:
    """A mapping entry whose value is a credential (``{"access_token": ...}``)."""
    return (
        isinstance(key, str)
        and value is not None
        and not isinstance(value, bool)
        and len(key) <= _MAX_KEY
        and _SECRET_KEY.fullmatch(_lower(key)) is not None
    )


def _render(value: object, out: list[str], budget: int, secrets: list[str], depth: int = 0) -> int:
    """Append a repr-like rendering of ``value`` to ``out``; return the budget left.

    String leaves are redacted before ``repr`` quotes them: a secret holding a quote
    would otherwise come out escaped, past the final search, yet readable.
    """
    if budget <= 0:
        return 0
    if isinstance(value, str):
        piece = repr(redact(_strip_controls(value[:budget]), secrets))
    elif value is None or isinstance(value, bool | int | float):
        piece = repr(value) if not isinstance(value, int) or value.bit_length() < 256 else "<int>"
    elif isinstance(value, dict | list | tuple) and depth < _JSON_DEPTH:
        is_dict = isinstance(value, dict)
        out.append("{" if is_dict else "[")
        budget -= 1
        items: Iterable[Any] = value.items() if is_dict else value  # type: ignore[union-attr]
        for index, item in enumerate(items):
            if budget <= 0:
                break
            if index:
                out.append(", ")
                budget -= 2
            if is_dict:
                budget = _render(item[0], out, budget, secrets, depth + 1)
                out.append(": ")
                shown = REDACTED if _is_secret_key(item[0], item[1]) else item[1]
                budget = _render(shown, out, budget - 2, secrets, depth + 1)
            else:
                budget = _render(item, out, budget, secrets, depth + 1)
        out.append("}" if is_dict else "]")
        return budget - 1
    else:
        piece = f"<{type(value).__name__}>"
    out.append(piece)
    return budget - len(piece)


def _jwt_start(part: str) -> int:
    """Where a JOSE header starts in one dotted segment, or -1."""
    start = part.find("eyJ", 0, len(part) - 1)
    if start < 0 and len(part) >= _LOOSE_HEADER and part[:2] in ("ey", "ew"):
        return 0
    return start


def _redact_run(match: re.Match[str]) -> str:
    """A dotted run with a JWT in it: the JWT and the rest of the run go."""
    parts = match.group().split(".")
    for index in range(len(parts) - 2):
        start = _jwt_start(parts[index])
        if start >= 0 and parts[index + 1]:
            return ".".join([*parts[:index], parts[index][:start] + REDACTED])
    return match.group()


def _lower(text: str) -> str:
    """``text`` lowercased, index for index (ASCII only where full lowering adds characters)."""
    lowered = text.lower()
    return lowered if len(lowered) == len(text) else text.translate(_ASCII_LOWER)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _redact_shapes(text: str) -> str:
    """Every `_CREDENTIAL` value (never its name or separator) replaced by `REDACTED`."""
    lowered = _lower(text)
    pieces: list[str] = []
    done = 0
    for match in _CREDENTIAL.finditer(lowered):
        group = "hvalue" if match.group("header") else "value"
        if match.group("credential") is not None:
            value = match.group("credential")
            if len(value) < _MIN_SCHEME_CREDENTIAL or (value.isalpha() and len(value) < 20):
                continue  # a word after "Bearer" in prose
            group = "credential"
        begin, end = match.span(group)
        quote = text[begin] if text[begin] in "'\"" else ""
        pieces += (text[done:begin], quote, REDACTED, quote)
        done = end
    if not pieces:
        return text
    pieces.append(text[done:])
    return "".join(pieces)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with each secret and each credential-shaped string replaced by `REDACTED`.

    The shapes are listed in the module docstring; a shape's name and separator
    stay (``access_token=[redacted]``, ``Bearer [redacted]``), only the value goes.
    Nothing else changes (no bounding, no control-character removal): for text
    that must keep its shape, such as a challenge parameter's name (a token).
    `sanitize` is the full treatment.
    """
    for secret in secrets:
        if len(secret) >= _MIN_SECRET and secret in text:
            # A "secret" inside the marker would survive it: use one too short to hold it.
            text = text.replace(secret, REDACTED if secret not in REDACTED else "***")
    if ("ey" in text or "ew" in text) and text.count(".") >= 2:
        text = _DOTTED.sub(_redact_run, text)
    if "@" in text:
        text = _USERINFO.sub(rf"\1{REDACTED}\2", text)
    return _redact_shapes(text)


def sanitize(value: object, secrets: Iterable[str] = (), *, limit: int = MAX_CHARS) -> str:
    """Server text (or any decoded JSON value) made safe to show; see the module docstring.

    A string is taken as is; bytes are decoded as UTF-8 (errors replaced); other
    values are rendered repr-like. ``secrets`` are the credentials sent on the
    request this text answers. Never raises.
    """
    cleaned = [_strip_controls(secret) for secret in secrets]
    if isinstance(value, str):
        text = value[:_SCAN]
    elif isinstance(value, bytes | bytearray):
        text = bytes(value[:_SCAN]).decode("utf-8", "replace")
    else:
        out: list[str] = []
        _render(value, out, _SCAN, cleaned)
        text = "".join(out)[:_SCAN]
    return _finish(text, cleaned, limit)


def _finish(text: str, secrets: list[str], limit: int) -> str:
    text = redact(_strip_controls(text), secrets)
    return text if len(text) <= limit else text[: max(0, limit - 3)] + "..."


def sanitize_json(value: object, secrets: Iterable[str] = (), *, limit: int = MAX_CHARS) -> Any:
    """A copy of a decoded JSON value with every string and key sanitized.

    Nesting deeper than `_JSON_DEPTH` becomes ``"..."``; after `_JSON_VALUES`
    values in all, the rest of each list or object is dropped; integers beyond
    256 bits and anything that is not JSON become ``None``.
    """
    cleaned = [_strip_controls(secret) for secret in secrets]
    budget = [_JSON_VALUES]

    def walk(node: object, depth: int) -> Any:
        budget[0] -= 1
        if isinstance(node, str):
            return _finish(node[:_SCAN], cleaned, limit)
        if node is None or isinstance(node, bool):
            return node
        if isinstance(node, int) and node.bit_length() >= 256:
            return None
        if isinstance(node, int | float):  # an all-digit credential can hide in a number
            shown = repr(node)
            return REDACTED if any(s in shown for s in cleaned if len(s) >= _MIN_SECRET) else node
        if not isinstance(node, dict | list):
            return None
        if depth >= _JSON_DEPTH:
            return "..."
        if isinstance(node, list):
            items = []
            for item in node:
                if budget[0] <= 0:
                    break
                items.append(walk(item, depth + 1))
            return items
        mapping = {}
        for key, item in node.items():
            if budget[0] <= 0:
                break
            name = _finish(key[:_SCAN], cleaned, limit) if isinstance(key, str) else sanitize(key)
            mapping[name] = REDACTED if _is_secret_key(key, item) else walk(item, depth + 1)
        return mapping

    return walk(value, 0)
