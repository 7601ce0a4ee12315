"""What the ``authorization_code`` and ``refresh_token`` grants share: minting a token pair for a
grant family, and revoking a family.

A *family* is everything issued from one authorization code: the first access and refresh
token, and every pair obtained by refreshing. Revoking it deletes its refresh tokens and revokes
the ``jti`` of each of its access tokens (RFC 9700 §4.14.2, RFC 6749 §10.5).

Ordering matters for revocation to reach every token that a racing request hands out:

- an access token's ``jti`` is recorded in its family (``add_family_jti``) before the caller
  commits anything that makes the pair valid (the code exchange's refresh-token insert, the
  refresh grant's rotation). A family revoked after that commit therefore finds the ``jti``;
  a family revoked before it makes the commit fail (rotation) or is seen by the marker check.
- a revocation first sets a *family marker* (a revoked pseudo-``jti`` derived from the family
  id), then deletes the family. The code exchange checks the marker after storing its tokens, so
  a replayed code racing the first exchange cannot leave the first exchange's tokens alive.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

from app import audit
from app.core import secrets
from app.models import Client, RefreshToken
from app.state import OAuthState
from app.tokens import TokenResponse

# Revoked jtis are kept this long past the token's exp: the guard accepts tokens up to
# app.tokens.LEEWAY seconds after exp, so the revocation must outlive that.
REVOCATION_MARGIN = 60
# How long a family marker lasts: it only has to outlive a racing token request.
MARKER_SECONDS = 600


@dataclass(slots=True)
class Minted:
    """A freshly minted pair. ``body`` is the RFC 6749 §5.1 response; nothing is stored yet
    except the access token's family ``jti``."""

    body: dict[str, Any]
    refresh: RefreshToken | None
    access_exp: int


def family_marker(family_id: str) -> str:
    """The pseudo-``jti`` whose revocation says "this family is revoked" (<= 64 characters)."""
    digest = hashlib.sha256(family_id.encode("utf-8", "surrogatepass")).digest()
    return "family:" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def issues_refresh_tokens(state: OAuthState, client: Client) -> bool:
    """A refresh token is issued only to clients registered for the grant, and only when the
    server has the ``refresh_token`` grant enabled (a token nobody can redeem is a liability)."""
    return "refresh_token" in client.grant_types and "refresh_token" in state.grants


def mint_pair(
    state: OAuthState,
    *,
    client_id: str,
    subject: str,
    scope: str,
    resource: str,
    family_id: str,
    refresh_scope: str | None,
    now: int,
) -> Minted:
    """Mint an access token (recording its ``jti`` in the family) and, when ``refresh_scope`` is
    not None, a new refresh token bound to that scope. The caller stores the refresh token."""
    access, claims = state.access_tokens.issue(
        subject=subject, client_id=client_id, scope=scope, audience=resource, now=now
    )
    exp = int(claims["exp"])
    # Recorded before anything makes the pair valid: see the module docstring.
    state.token_store.add_family_jti(family_id, str(claims["jti"]), exp + REVOCATION_MARGIN)
    body = TokenResponse(
        {"access_token": access, "token_type": "Bearer", "expires_in": exp - int(claims["iat"]), "scope": scope},
        claims,
    )
    record: RefreshToken | None = None
    if refresh_scope is not None:
        value = secrets.new_token()
        record = RefreshToken(
            token_hash=secrets.token_hash(value),
            family_id=family_id,
            client_id=client_id,
            subject=subject,
            scope=refresh_scope,
            resource=resource,
            issued_at=now,
            expires_at=now + int(state.config["OAUTH_REFRESH_TOKEN_TTL"]),
        )
        body["refresh_token"] = value
    return Minted(body=body, refresh=record, access_exp=exp)


def revoke_family(state: OAuthState, family_id: str, now: int, *, reason: str, client_id: str) -> None:
    """Revoke a whole family: marker first, then its refresh tokens and access tokens."""
    state.token_store.revoke_jti(family_marker(family_id), now + MARKER_SECONDS)
    hit = state.token_store.revoke_family(family_id, now)
    # Ids only: never a token or a hash of one in the log.
    audit.event("family.revoked", reason=reason, client_id=client_id, family_id=family_id, tokens=hit)


def family_revoked(state: OAuthState, family_id: str) -> bool:
    """True if the family was revoked by a replay detected in the last ``MARKER_SECONDS``."""
    return bool(state.token_store.is_jti_revoked(family_marker(family_id)))
