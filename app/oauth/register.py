"""Dynamic client registration (RFC 7591) and its management protocol (RFC 7592).

Policy: without credentials, anyone may register a client that needs a person's consent
(authorization code). A ``client_credentials`` client can act with no person in the loop, so it
needs an initial access token (RFC 7591 §3) or the CLI.
"""

from __future__ import annotations

from typing import Any

from flask import Response, request
from flask.typing import ResponseReturnValue

from app import admin, audit
from app.core import secrets
from app.errors import InvalidClientMetadataError, InvalidTokenError
from app.models import CONFIDENTIAL_METHODS, Client
from app.oauth import bp
from app.oauth.params import json_object
from app.oauth.responses import no_store_json
from app.oauth.schemas import GRANT_TYPES, PERSON_GRANTS, client_metadata_schema
from app.state import OAuthState, oauth_state


def _bearer() -> str | None:
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise InvalidTokenError("use Authorization: Bearer <token>", include_error=True)
    return value.strip()


def _initial_access_token_ok(state: OAuthState) -> bool:
    """True with a valid initial access token, False with none; 401 with a bad one."""
    token = _bearer()
    if token is None:
        return False
    iat = state.storage.get_initial_access_token(secrets.token_hash(token))
    if iat is None or (iat.expires_at and iat.expires_at < state.now()):
        raise InvalidTokenError("initial access token is invalid or expired")
    return True


def validate_metadata(state: OAuthState, body: dict[str, Any]) -> dict[str, Any]:
    """Validated, normalised metadata; raises invalid_client_metadata / invalid_redirect_uri."""
    data: dict[str, Any] = client_metadata_schema.load(body)
    unknown = [s for s in data.get("scope", "").split() if s not in state.scopes]
    if unknown:
        raise InvalidClientMetadataError(f"scope: unknown scopes {' '.join(unknown)[:100]}")
    # The built-in grants, and any grant a plugin enables (a third-party grant needs clients).
    unsupported = [g for g in data["grant_types"] if g not in GRANT_TYPES and g not in state.grants]
    if unsupported:
        raise InvalidClientMetadataError(f"grant_types: {unsupported[0][:80]} is not supported by this server")
    return data


def needs_trust(metadata: dict[str, Any]) -> bool:
    """True when the client could act with no person consenting (client_credentials, extension
    grants): such clients need an initial access token or the CLI."""
    return not set(metadata["grant_types"]) <= PERSON_GRANTS


def new_client(
    state: OAuthState,
    metadata: dict[str, Any],
    *,
    registered_by: str,
    privileges: frozenset[str] = frozenset(),
) -> tuple[Client, str | None, str]:
    """Create and store a client. Returns (client, secret or None, registration token)."""
    now = state.now()
    secret = secrets.new_token() if metadata["token_endpoint_auth_method"] in CONFIDENTIAL_METHODS else None
    reg_token = secrets.new_token()
    ttl = int(state.config["OAUTH_CLIENT_SECRET_TTL"])
    client = Client(
        client_id=secrets.new_identifier(),
        metadata=metadata,
        issued_at=now,
        secret_hash=secrets.token_hash(secret) if secret else None,
        secret_expires_at=now + ttl if (secret and ttl) else 0,
        registration_token_hash=secrets.token_hash(reg_token),
        registered_by=registered_by,
        privileges=privileges,
        last_used_at=now,
    )
    state.storage.save_client(client)
    audit.event(
        "client.registered",
        client_id=client.client_id,
        registered_by=registered_by,
        grant_types=client.grant_types,
        auth_method=client.auth_method,
    )
    return client, secret, reg_token


def client_response(
    state: OAuthState, client: Client, secret: str | None = None, reg_token: str | None = None
) -> dict[str, Any]:
    """RFC 7591 §3.2.1: the registered metadata plus the issued credentials; never null."""
    body: dict[str, Any] = dict(client.metadata)
    body.update(
        client_id=client.client_id,
        client_id_issued_at=client.issued_at,
        registration_client_uri=f"{state.issuer}/oauth/register/{client.client_id}",
    )
    body["scope"] = " ".join(state.client_scopes(client))
    if not client.is_public:
        body["client_secret_expires_at"] = client.secret_expires_at
    if secret is not None:
        body["client_secret"] = secret
    if reg_token is not None:
        body["registration_access_token"] = reg_token
    return body


@bp.post("/oauth/register")
def register_client() -> ResponseReturnValue:
    state = oauth_state()
    state.rate_limit("RATELIMIT_REGISTRATION", request.remote_addr or "unknown")
    trusted = _initial_access_token_ok(state)
    body = json_object()
    metadata = validate_metadata(state, body)
    if not trusted:
        if needs_trust(metadata):
            raise InvalidTokenError(
                "registering a client_credentials (or other non-interactive) client needs an initial "
                "access token (Authorization: Bearer) or the CLI",
                include_error=False,
            )
        if not state.config["OAUTH_REGISTRATION_OPEN"]:
            raise InvalidTokenError("registration needs an initial access token", include_error=False)
    client, secret, reg_token = new_client(state, metadata, registered_by="iat" if trusted else "dynamic")
    return no_store_json(client_response(state, client, secret, reg_token), 201)


def _managed_client(state: OAuthState, client_id: str) -> Client:
    """RFC 7592 §2: the client whose registration access token was presented, or 401."""
    token = _bearer()
    if token is None:
        raise InvalidTokenError("registration access token required", include_error=False)
    client = state.storage.get_client(client_id)
    if client is None or not secrets.matches(token, client.registration_token_hash):
        # Same answer for unknown clients and wrong tokens: nothing to probe (RFC 7592 §2).
        raise InvalidTokenError("registration access token is invalid")
    return client


@bp.get("/oauth/register/<client_id>")
def read_client(client_id: str) -> ResponseReturnValue:
    state = oauth_state()
    client = _managed_client(state, client_id)
    return no_store_json(client_response(state, client))


@bp.put("/oauth/register/<client_id>")
def update_client(client_id: str) -> ResponseReturnValue:
    state = oauth_state()
    client = _managed_client(state, client_id)
    body = json_object()
    if body.get("client_id") != client.client_id:
        raise InvalidClientMetadataError("client_id: must equal the client being updated (RFC 7592 §2.2)")
    if body.get("client_secret") is not None and not secrets.matches(str(body["client_secret"]), client.secret_hash):
        raise InvalidClientMetadataError("client_secret: does not match the current secret")
    metadata = validate_metadata(state, body)
    if (metadata["token_endpoint_auth_method"] == "none") != client.is_public:
        raise InvalidClientMetadataError(
            "token_endpoint_auth_method: cannot switch between public and confidential; register anew"
        )
    added = set(metadata["grant_types"]) - set(client.grant_types)
    if client.registered_by == "dynamic" and needs_trust({"grant_types": sorted(added)}):
        raise InvalidClientMetadataError(
            f"grant_types: {sorted(added - PERSON_GRANTS)[0][:80]} needs an initial access token"
        )
    client.metadata = metadata
    state.storage.save_client(client)
    audit.event("client.updated", client_id=client.client_id, grant_types=client.grant_types)
    return no_store_json(client_response(state, client))


@bp.delete("/oauth/register/<client_id>")
def delete_client(client_id: str) -> ResponseReturnValue:
    state = oauth_state()
    client = _managed_client(state, client_id)
    admin.delete_client(state, client.client_id, by="registration")
    return Response(status=204, headers={"Cache-Control": "no-store"})
