"""Token introspection (RFC 7662) and revocation (RFC 7009).

A caller sees a token only if it was issued to that caller or the caller holds the
``introspect`` privilege (a resource server created with the CLI); anything else is
``{"active": false}``, which is also the answer for unknown, expired and revoked tokens, so the
endpoint cannot be used to probe for tokens (RFC 7662 §4).
"""

from __future__ import annotations

from typing import Any

from flask import Response
from flask.typing import ResponseReturnValue

from app import audit
from app.core import secrets
from app.errors import InvalidRequestError, InvalidTokenError
from app.models import Client, RefreshToken, TokenClaims
from app.oauth import bp
from app.oauth.client_auth import authenticate_client
from app.oauth.params import form_params
from app.oauth.responses import NO_STORE, no_store_json
from app.state import OAuthState, oauth_state


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2


def _access_claims(state: OAuthState, token: str, *, verify_exp: bool = True) -> TokenClaims | None:
    try:
        if verify_exp:
            return state.access_tokens.decode_cached(token)
        return state.access_tokens.decode(token, None, verify_exp=False)
    except InvalidTokenError:
        return None


def _live_refresh(state: OAuthState, token: str) -> RefreshToken | None:
    rt = state.token_store.get_refresh_token(secrets.token_hash(token))
    if rt is None or rt.rotated_at is not None or rt.expires_at <= state.now():
        return None
    return rt


def _may_see(caller: Client, owner_client_id: str) -> bool:
    return caller.client_id == owner_client_id or "introspect" in caller.privileges


def _token_param(params: dict[str, str]) -> str:
    token = params.get("token")
    if token is None:
        raise InvalidRequestError("token is required")
    return token


@bp.post("/oauth/introspect")
def introspect() -> ResponseReturnValue:
    state = oauth_state()
    params = form_params(int(state.config["OAUTH_MAX_PARAM_LENGTH"]))
    caller = authenticate_client(state, params, allow_public=False)
    token = _token_param(params)
    inactive = {"active": False}
    if looks_like_jwt(token):
        claims = _access_claims(state, token)
        if claims is None or not _may_see(caller, claims.client_id):
            return no_store_json(inactive)
        if state.token_store.is_jti_revoked(claims.jti):
            return no_store_json(inactive)
        body: dict[str, Any] = {
            "active": True,
            "scope": " ".join(sorted(claims.scopes)),
            "client_id": claims.client_id,
            "sub": claims.sub,
            "aud": claims.aud,
            "iss": claims.iss,
            "exp": claims.exp,
            "iat": claims.iat,
            "jti": claims.jti,
            "token_type": "Bearer",
        }
        return no_store_json(body)
    rt = _live_refresh(state, token)
    if rt is None or not _may_see(caller, rt.client_id):
        return no_store_json(inactive)
    return no_store_json(
        {
            "active": True,
            "scope": rt.scope,
            "client_id": rt.client_id,
            "sub": rt.subject,
            "aud": rt.resource,
            "iss": state.issuer,
            "exp": rt.expires_at,
            "iat": rt.issued_at,
            "token_type": "refresh_token",
        }
    )


@bp.post("/oauth/revoke")
def revoke() -> ResponseReturnValue:
    state = oauth_state()
    params = form_params(int(state.config["OAUTH_MAX_PARAM_LENGTH"]))
    caller = authenticate_client(state, params)
    token = _token_param(params)
    now = state.now()
    if looks_like_jwt(token):
        claims = _access_claims(state, token, verify_exp=False)
        if claims is not None and claims.client_id == caller.client_id and claims.exp > now - 60:
            state.token_store.revoke_jti(claims.jti, claims.exp + 60)
            audit.event("token.revoked", client_id=caller.client_id, kind="access", jti=claims.jti)
    else:
        rt = state.token_store.get_refresh_token(secrets.token_hash(token))
        if rt is not None and rt.client_id == caller.client_id:
            # RFC 7009 §2.1: revoking a refresh token also ends the grant's access tokens.
            hit = state.token_store.revoke_family(rt.family_id, now)
            audit.event(
                "token.revoked", client_id=caller.client_id, kind="refresh", family_id=rt.family_id, tokens=hit
            )
    # RFC 7009 §2.2: 200 whether or not the token was known, so nothing can be probed.
    return Response(status=200, headers=NO_STORE)
