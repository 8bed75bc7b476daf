"""A bearer challenge, and which of a server's words an error message may quote.

The error tree (`mcpconn._exceptions`) builds its messages from what a server said; a
server's free text may be our own token shaped like a code, so a message quotes only a
registered code. The parsed `Challenge` lives here beside those codes; the parser is
`mcpconn._core.http_rules.parse_challenges`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Challenge:
    """A parsed ``WWW-Authenticate: Bearer`` challenge (RFC 6750, RFC 9728).

    Unknown or malformed parts are dropped, never raised: a hostile server must
    not be able to crash us with a header. Values are the server's text after the
    sanitizer (`mcpconn._core.sanitize`): bounded, no control characters, the
    credential we sent and anything JWT-shaped redacted.
    """

    scheme: str = "Bearer"
    error: str | None = None
    error_description: str | None = None
    scope: str | None = None
    resource_metadata: str | None = None
    params: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        # Only a registered error code: descriptions and params are the server's words.
        return f"Challenge(scheme={self.scheme!r}, error={quotable_error(self)!r})"


# The registered error codes of a bearer challenge (RFC 6750, RFC 9470 step-up, RFC 9449
# DPoP): only these are quoted in a message. Anything else a server puts in ``error=``
# is its own text, which may be our token shaped like a code (a UUID starting with a
# letter passes any "short lowercase word" test); the challenge keeps it, sanitized.
BEARER_ERROR_CODES = frozenset(
    (
        "invalid_request",
        "invalid_token",
        "insufficient_scope",
        "insufficient_user_authentication",
        "invalid_dpop_proof",
        "use_dpop_nonce",
    )
)


# The registered OAuth error codes (RFC 6749 5.2 and 4.1.2.1, RFC 7591, RFC 8628,
# RFC 8707, OIDC): the only ones an `OAuthError` quotes, for the same reason.
OAUTH_ERROR_CODES = frozenset(
    (
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
        "access_denied",
        "unsupported_response_type",
        "server_error",
        "temporarily_unavailable",
        "invalid_redirect_uri",
        "invalid_client_metadata",
        "invalid_target",
        "interaction_required",
        "login_required",
        "consent_required",
        "authorization_pending",
        "slow_down",
        "expired_token",
    )
)


def quotable_error(challenge: Challenge | None) -> str | None:
    """The challenge's ``error=`` as a message may show it: registered codes only."""
    if challenge is None or not challenge.error:
        return None
    return challenge.error if challenge.error in BEARER_ERROR_CODES else "unregistered error code"


def quotable_oauth_error(error: str | None) -> str | None:
    """An OAuth ``error`` as a message may show it: registered codes only."""
    return error if error is None or error in OAUTH_ERROR_CODES else "invalid error code"
