"""The ``refresh_token`` grant (RFC 6749 §6, OAuth 2.1 §4.3) with rotation and reuse detection.

Every use rotates: the presented token is marked rotated and a new one stored, atomically, so of
several concurrent refreshes with one token exactly one wins (``rotate_refresh_token``).
Presenting a rotated token again means it was copied: the whole family (every refresh token and
access token issued from the same authorization) is revoked (RFC 9700 §4.14.2). That includes a
client's own concurrent refresh that lost the race: with the grace window off, the loser's
request revokes the family and the winner's fresh pair with it. That is deliberate, the
behaviour RFC 9700 describes; a deployment whose clients race or lose responses turns on
``OAUTH_REFRESH_GRACE_SECONDS``.

Grace window (off by default): when the presented token is the *immediate* predecessor of the
family's current token and was rotated less than ``OAUTH_REFRESH_GRACE_SECONDS`` ago, the same
new pair is returned again. The pair is kept only sealed under a key derived from the old token
(``app.core.refresh_crypto``). Anything older always revokes the family.
"""

from __future__ import annotations

from typing import Any, ClassVar

from app import audit
from app.core import refresh_crypto, secrets
from app.core import scopes as scope_util
from app.errors import InvalidGrantError, InvalidRequestError, InvalidTargetError
from app.models import RefreshToken
from app.state import OAuthState, TokenRequest, narrow_scope
from plugins.grants._issue import mint_pair, revoke_family

_REPLAYED = "refresh token was already used; its grant has been revoked"


class RefreshTokenGrant:
    """Exchanges a refresh token for a new access token and a new refresh token."""

    grant_type: ClassVar[str] = "refresh_token"

    def __init__(self, state: OAuthState) -> None:
        self.state = state
        self.grace = int(state.config["OAUTH_REFRESH_GRACE_SECONDS"])

    def issue(self, request: TokenRequest) -> dict[str, Any]:
        state, params, client = self.state, request.params, request.client
        value = params.get("refresh_token")
        if value is None:
            raise InvalidRequestError("refresh_token is required")
        requested_scope = request.requested_scopes()

        now = state.now()
        old_hash = secrets.token_hash(value)
        rt = state.token_store.get_refresh_token(old_hash)
        if rt is None:
            # Unknown, pruned, or deleted with its revoked family.
            raise InvalidGrantError("refresh token is unknown or revoked")
        if rt.client_id != client.client_id:
            raise InvalidGrantError("refresh token was issued to another client")
        if rt.rotated_at is not None:
            return self._reuse(rt, value, params, requested_scope, now, client.client_id)
        if rt.expires_at <= now:
            raise InvalidGrantError("refresh token has expired")
        scope = self._check_request(rt, params, requested_scope)
        authenticator = state.extras.get("authenticator")
        if authenticator is not None and authenticator.session_marker(rt.subject) is None:
            # The person was deleted or disabled: what they authorized ends with them, instead
            # of rotating on for the refresh token's lifetime.
            revoke_family(state, rt.family_id, now, reason="subject_disabled", client_id=client.client_id)
            raise InvalidGrantError("the person this grant was made by can no longer sign in")

        minted = mint_pair(
            state,
            client_id=rt.client_id,
            subject=rt.subject,
            scope=scope,
            resource=rt.resource,
            family_id=rt.family_id,
            # RFC 6749 §6: the new refresh token's scope MUST be identical to the old one's; a
            # narrower request narrows only this access token, not the grant.
            refresh_scope=rt.scope,
            now=now,
        )
        assert minted.refresh is not None
        blob = None
        if self.grace > 0:
            blob = refresh_crypto.seal(value, old_hash, minted.body | {"exp": minted.access_exp})
        if not state.token_store.rotate_refresh_token(old_hash, minted.refresh, now, blob):
            # Another request rotated this token first (or the family was revoked meanwhile):
            # this request is now a presentation of a rotated token. The access token minted
            # above was never handed out; its jti dies with the family if it is revoked.
            current = state.token_store.get_refresh_token(old_hash)
            if current is None or current.rotated_at is None:
                raise InvalidGrantError("refresh token is unknown or revoked")
            return self._reuse(current, value, params, requested_scope, now, client.client_id)
        audit.event("refresh.rotated", client_id=rt.client_id, sub=rt.subject, family_id=rt.family_id)
        return minted.body

    def _check_request(self, rt: RefreshToken, params: dict[str, str], requested: list[str]) -> str:
        """The access token's scope for this request; raises invalid_target / invalid_scope."""
        if "resource" in params and self.state.resolve_resource([params["resource"]]) != rt.resource:
            # RFC 8707 §2.2: a refresh token is bound to its resource.
            raise InvalidTargetError("resource differs from the one this refresh token is bound to")
        return narrow_scope(requested, scope_util.parse(rt.scope), "refresh may narrow the scope, never widen it")

    def _reuse(
        self,
        rt: RefreshToken,
        value: str,
        params: dict[str, str],
        requested: list[str],
        now: int,
        client_id: str,
    ) -> dict[str, Any]:
        """A rotated token was presented: the grace-window answer, or family revocation."""
        replay = self._grace_response(rt, value, now)
        if replay is None:
            revoke_family(self.state, rt.family_id, now, reason="refresh_replay", client_id=client_id)
            raise InvalidGrantError(_REPLAYED)
        self._check_request(rt, params, requested)
        return replay

    def _grace_response(self, rt: RefreshToken, value: str, now: int) -> dict[str, Any] | None:
        """The stored successor response if ``rt`` is the immediate predecessor of the family's
        current token and was rotated inside the grace window; else None."""
        if self.grace <= 0 or rt.successor_blob is None or rt.rotated_at is None:
            return None
        if now - rt.rotated_at >= self.grace:
            return None
        try:
            stored = refresh_crypto.open_sealed(value, rt.token_hash, rt.successor_blob)
        except refresh_crypto.SealError:
            return None
        successor_value = stored.get("refresh_token")
        if not isinstance(successor_value, str):
            return None
        successor = self.state.token_store.get_refresh_token(secrets.token_hash(successor_value))
        if successor is None or successor.rotated_at is not None:
            # The successor has itself been rotated (or revoked): ``rt`` is an older generation.
            return None
        exp = int(stored.pop("exp", now))
        stored["expires_in"] = max(exp - now, 0)
        return stored
