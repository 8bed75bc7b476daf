"""Who the upstream caller is: an HS256 JWT whose ``sub`` becomes the principal.

The aggregator forwards the caller's own bearer downstream, so it must refuse one that
would expire on the way there rather than park the user for a token that was still valid.
"""

from __future__ import annotations

import time

import jwt
from mcp.server.auth.provider import AccessToken

from .limits import IN_FLIGHT, MARGIN


class JWTVerifier:
    """Upstream auth: HS256, signed with the shared secret, ``exp`` and ``sub`` required.

    A token too close to its expiry to be forwarded (inside mcpconn's safety margin, which
    is never handed out downstream) is refused here too: the client renews and retries,
    instead of the aggregator parking the user for a token that was still valid.
    """

    def __init__(self, secret: str) -> None:
        self.secret = secret

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=["HS256"],
                options={"require": ["exp", "sub"], "verify_aud": False},
            )
            exp, sub = float(claims["exp"]), str(claims["sub"])
            lifetime = exp - float(claims.get("iat", exp - MARGIN * 4))
        except (jwt.PyJWTError, TypeError, ValueError):
            return None
        if exp - time.time() <= min(MARGIN, lifetime / 4) + IN_FLIGHT:
            return None
        return AccessToken(
            token=token, client_id="upstream", scopes=[], expires_at=int(exp), subject=sub
        )
