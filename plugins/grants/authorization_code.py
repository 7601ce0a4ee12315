"""The ``authorization_code`` grant (OAuth 2.1 §4.1.3, RFC 7636, RFC 8707).

The client has been authenticated by the token endpoint: a confidential client with its secret,
a public client (``token_endpoint_auth_method: none``) by ``client_id`` alone, which is why PKCE
is required of every client and is the proof a public client gives. The code is consumed
atomically before anything else is checked, so a code is worth one attempt whatever the outcome.
"""

from __future__ import annotations

from typing import Any, ClassVar

from app.core import pkce, secrets
from app.core import scopes as scope_util
from app.errors import InvalidGrantError, InvalidRequestError, InvalidTargetError
from app.models import AuthorizationCode, Client
from app.state import OAuthState, TokenRequest, narrow_scope
from plugins.grants._issue import family_revoked, issues_refresh_tokens, mint_pair, revoke_family


class AuthorizationCodeGrant:
    """Exchanges a single-use code plus its PKCE verifier for an access (and refresh) token."""

    grant_type: ClassVar[str] = "authorization_code"

    def __init__(self, state: OAuthState) -> None:
        self.state = state

    def issue(self, request: TokenRequest) -> dict[str, Any]:
        state, params, client = self.state, request.params, request.client
        code_value = params.get("code")
        if code_value is None:
            raise InvalidRequestError("code is required")
        verifier = params.get("code_verifier")
        if verifier is None:
            # Checked before the code is consumed: a request missing a required parameter is
            # malformed (invalid_request), and should not cost the client its code.
            raise InvalidRequestError("code_verifier is required (PKCE)")
        requested_scope = request.requested_scopes()

        now = state.now()
        code, first_use = state.token_store.consume_code(secrets.token_hash(code_value), now)
        if code is None:
            raise InvalidGrantError("authorization code is unknown")
        if not first_use:
            # RFC 6749 §4.1.2 / OAuth 2.1 §4.1.3: a code presented twice means it leaked; revoke
            # everything the first exchange issued. Only for a replay that is itself valid (the
            # code's client, redirect URI and verifier; OAuth 2.1 §7.5.3): someone holding just the
            # code must not be able to revoke the rightful client's tokens.
            try:
                self._check_binding(code, client, params, verifier, now, check_expiry=False)
            except InvalidGrantError:
                raise InvalidGrantError("authorization code was already used") from None
            revoke_family(state, code.family_id, now, reason="code_replay", client_id=client.client_id)
            raise InvalidGrantError("authorization code was already used; the tokens issued from it are revoked")
        self._check_binding(code, client, params, verifier, now)
        scope = self._scope(code, requested_scope)
        resource = self._resource(code, params)

        refresh_scope = scope if issues_refresh_tokens(state, client) else None
        minted = mint_pair(
            state,
            client_id=client.client_id,
            subject=code.subject,
            scope=scope,
            resource=resource,
            family_id=code.family_id,
            # The refresh token carries the scope granted here: a client that asked for less
            # than the person approved gets a grant of that size (least privilege).
            refresh_scope=refresh_scope,
            now=now,
        )
        if minted.refresh is not None:
            state.token_store.save_refresh_token(minted.refresh)
        # A replay of this code that raced us may have revoked the family before our tokens were
        # stored; the marker it set first tells us, and we revoke what we just stored. This
        # request still won the atomic consume, so it answers like the winner of a refresh race
        # does: exactly one exchange of a code produces a pair, already revoked by the replay.
        if family_revoked(state, code.family_id):
            revoke_family(state, code.family_id, now, reason="code_replay_race", client_id=client.client_id)
        return minted.body

    def _check_binding(
        self,
        code: AuthorizationCode,
        client: Client,
        params: dict[str, str],
        verifier: str,
        now: int,
        *,
        check_expiry: bool = True,
    ) -> None:
        if check_expiry and code.expires_at <= now:
            raise InvalidGrantError("authorization code has expired")
        if code.client_id != client.client_id:
            # RFC 6749 §4.1.3: the code must have been issued to the authenticated client.
            raise InvalidGrantError("authorization code was issued to another client")
        sent_redirect = params.get("redirect_uri")
        if code.redirect_uri:
            # RFC 6749 §4.1.3: required and identical when the authorization request had it.
            if sent_redirect != code.redirect_uri:
                raise InvalidGrantError("redirect_uri does not match the authorization request")
        elif sent_redirect is not None and client.redirect_uris != [sent_redirect]:
            # Omitted at authorization: only the client's single registered URI can have been
            # used, so that is the only value that may be sent now.
            raise InvalidGrantError("redirect_uri does not match the authorization request")
        # RFC 7636 §4.6: a malformed verifier fails verification like a wrong one.
        if not pkce.verify(verifier, code.code_challenge):
            raise InvalidGrantError("code_verifier does not match the code_challenge (PKCE)")

    def _scope(self, code: AuthorizationCode, requested: list[str]) -> str:
        return narrow_scope(requested, scope_util.parse(code.scope), "scope may only narrow what the person approved")

    def _resource(self, code: AuthorizationCode, params: dict[str, str]) -> str:
        if "resource" in params:
            # RFC 8707 §2.2: the token request may name the resource again; it must be the one
            # the code was issued for (raises invalid_target for a resource not served here).
            if self.state.resolve_resource([params["resource"]]) != code.resource:
                raise InvalidTargetError("resource differs from the one in the authorization request")
        return code.resource
