"""RFC 8414 authorization server metadata and the JWKS (RFC 7517)."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify
from flask.typing import ResponseReturnValue

from app.oauth import bp
from app.state import OAuthState, oauth_state

AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]


def server_metadata(state: OAuthState) -> dict[str, Any]:
    """What this server implements, and nothing else."""
    iss = state.issuer
    grants = sorted(state.grants)
    meta: dict[str, Any] = {
        "issuer": iss,
        "token_endpoint": f"{iss}/oauth/token",
        "registration_endpoint": f"{iss}/oauth/register",
        "revocation_endpoint": f"{iss}/oauth/revoke",
        "introspection_endpoint": f"{iss}/oauth/introspect",
        "jwks_uri": f"{iss}/.well-known/jwks.json",
        "scopes_supported": sorted(state.scopes),
        "response_types_supported": ["code"] if "authorization_code" in state.grants else [],
        "grant_types_supported": grants,
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
    }
    if "authorization_code" in state.grants:
        meta["authorization_endpoint"] = f"{iss}/oauth/authorize"
        # RFC 9207: every authorization response carries iss.
        meta["authorization_response_iss_parameter_supported"] = True
        meta["client_id_metadata_document_supported"] = True
    return meta


def _cached_json(body: dict[str, Any], max_age: int) -> Response:
    response = jsonify(body)
    response.headers["Cache-Control"] = f"public, max-age={max_age}"
    return response


@bp.get("/.well-known/oauth-authorization-server")
def authorization_server_metadata() -> ResponseReturnValue:
    return _cached_json(server_metadata(oauth_state()), 300)


@bp.get("/.well-known/jwks.json")
def jwks() -> ResponseReturnValue:
    return _cached_json(oauth_state().keys.jwks(), 60)
