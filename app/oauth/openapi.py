"""OpenAPI 3.1 description of every HTTP endpoint of this server, served at ``GET /openapi.json``.

The document is built from the running configuration (issuer, scopes, enabled grants, MCP
protocol versions, limits), once per app, so it describes this deployment and not a generic
one: ``servers[0].url`` is the issuer. It describes every route of ``app.url_map`` with every
method (``HEAD`` and ``OPTIONS`` included) and every status a route can answer with; nothing
else. ``GET /mcp`` is deliberately undeclared: like every method a path does not list, it gets
405 with ``Allow`` (the MCP transport's answer when no SSE stream is offered).

Kept true by tests: ``tests/contract/test_openapi.py`` (valid OpenAPI 3.1, the same routes and
methods as the app, examples valid against their schemas) and ``tests/e2e/test_schemathesis.py``
(schemathesis against a live gunicorn: no 5xx, every status, content type, header and body as
described here).
"""

from __future__ import annotations

import copy
from typing import Any

from flask import Response, current_app, jsonify
from flask.typing import ResponseReturnValue

from app.mcp import protocol as mcp
from app.oauth import bp
from app.oauth.metadata import AUTH_METHODS
from app.oauth.schemas import GRANT_TYPES
from app.state import OAuthState, oauth_state

OPENAPI_VERSION = "3.1.1"
EXTENSION = "mcp_oauth_openapi"

# RFC 6749 §5.2: error_description is %x20-21 / %x23-5B / %x5D-7E (app.errors.safe_description).
DESCRIPTION_PATTERN = r"^[\x20-\x21\x23-\x5b\x5d-\x7e]*$"
# Scope tokens separated by spaces (RFC 6749 §3.3); empty means omitted (RFC 6749 §3.1).
SCOPE_PATTERN = r"^[\x20\x21\x23-\x5b\x5d-\x7e]*$"
VERIFIER_PATTERN = r"^[A-Za-z0-9\-._~]{43,128}$"
CHALLENGE_PATTERN = r"^[A-Za-z0-9\-_]{43}$"
BASE64URL = r"^[A-Za-z0-9_-]+$"


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _schema(name: str) -> dict[str, str]:
    return _ref("schemas", name)


def _json(schema: dict[str, Any], example: Any = None) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": schema}
    if example is not None:
        media["example"] = example
    return {"application/json": media}


def _html(description: str) -> dict[str, Any]:
    return {"text/html": {"schema": {"type": "string", "description": description}}}


def _error(*codes: str, example: str | None = None) -> dict[str, Any]:
    """An RFC 6749 §5.2 error body whose ``error`` is one of ``codes``."""
    schema: dict[str, Any] = {
        "allOf": [_schema("OAuthError")],
        "properties": {"error": {"enum": list(codes)}},
    }
    sample = {"error": codes[0], "error_description": example} if example else None
    return _json(schema, sample)


# Header components whose name is not the header's own: several variants of one header.
_HEADER_OF = {
    "Cache-Control-No-Store": "Cache-Control",
    "Cache-Control-Public": "Cache-Control",
    "WWW-Authenticate-Basic": "WWW-Authenticate",
    "WWW-Authenticate-Bearer": "WWW-Authenticate",
}


def _empty_or(schema: dict[str, Any], description: str) -> dict[str, Any]:
    """A form or query parameter: RFC 6749 §3.1 treats one sent empty as omitted."""
    return {"anyOf": [{"const": ""}, schema], "description": description + " Empty counts as omitted."}


def _null_is_absent(properties: dict[str, Any]) -> dict[str, Any]:
    """Registration metadata members that may also be ``null`` (treated as absent)."""
    out = {}
    for name, schema in properties.items():
        inner = copy.deepcopy(schema)
        outer = {key: inner.pop(key) for key in ("description", "default") if key in inner}
        out[name] = {"anyOf": [inner, {"type": "null"}], **outer}
    return out


def _headers(*components: str) -> dict[str, Any]:
    """A response's ``headers`` map: header name -> the named header component."""
    return {_HEADER_OF.get(name, name): _ref("headers", name) for name in components}


# -- reusable responses --------------------------------------------------------------------------


def _responses() -> dict[str, Any]:
    no_store = _headers("Cache-Control-No-Store", "Pragma")
    return {
        "InvalidClient": {
            "description": "RFC 6749 §5.2 `invalid_client`: unknown client, wrong secret, expired secret, a "
            "confidential client without its secret, or no client authentication at all. Clients register "
            "again only on this answer. Failures are counted per address (429 once over the limit).",
            "headers": no_store | _headers("WWW-Authenticate-Basic"),
            "content": _error("invalid_client", example="unknown client or bad credentials"),
        },
        "RequestTooLarge": {
            "description": "The body is larger than `MAX_CONTENT_LENGTH` bytes.",
            "headers": no_store,
            "content": _error("invalid_request", example="request body is larger than 65536 bytes"),
        },
        "UnsupportedMediaType": {
            "description": "Wrong `Content-Type` (or a charset other than UTF-8).",
            "headers": no_store,
            "content": _error("invalid_request", example="send parameters as application/x-www-form-urlencoded"),
        },
        "RateLimited": {
            "description": "Too many requests (`RATELIMIT_*`): wait `Retry-After` seconds.",
            "headers": no_store | _headers("Retry-After"),
            "content": _error("rate_limited", example="too many requests, slow down"),
        },
        "Unavailable": {
            "description": "A storage backend is unreachable. Nothing was written; retry after `Retry-After` seconds.",
            "headers": no_store | _headers("Retry-After"),
            "content": _error("temporarily_unavailable", example="storage is unavailable, try again shortly"),
        },
        "NotFound": {
            "description": "No such route (for example a path parameter containing `/`).",
            "headers": _headers("Cache-Control-No-Store"),
            "content": _error("not_found", example="The requested URL was not found on the server."),
        },
        "BearerUnauthorized": {
            "description": "RFC 6750 §3.1 `invalid_token`: no token, a token that is malformed, expired, revoked, "
            "signed by an unknown key or minted for another audience. `WWW-Authenticate` names the scope to ask "
            "for and the RFC 9728 `resource_metadata` URL.",
            "headers": no_store | _headers("WWW-Authenticate-Bearer"),
            "content": _error("invalid_token", example="an access token is required"),
        },
        "RegistrationUnauthorized": {
            "description": "RFC 7592 §2: no registration access token, or one that does not belong to this "
            "client (unknown clients get the same answer, so nothing can be probed).",
            "headers": no_store | _headers("WWW-Authenticate-Bearer"),
            "content": _error("invalid_token", example="registration access token is invalid"),
        },
    }


# -- reusable headers ----------------------------------------------------------------------------


def _header_components() -> dict[str, Any]:
    def header(description: str, schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
        return {"description": description, "required": required, "schema": schema}

    return {
        "Cache-Control-No-Store": header("Never cached.", {"type": "string", "const": "no-store"}),
        "Cache-Control-Public": header(
            "Cacheable public document.", {"type": "string", "pattern": r"^public, max-age=[0-9]+$"}
        ),
        "Pragma": header("HTTP/1.0 caches: never cached.", {"type": "string", "const": "no-cache"}),
        "Retry-After": header("Seconds to wait before trying again.", {"type": "integer", "minimum": 1}),
        "WWW-Authenticate-Basic": header(
            "RFC 6749 §5.2: the client authenticates with HTTP Basic.",
            {"type": "string", "const": 'Basic realm="oauth"'},
        ),
        "WWW-Authenticate-Bearer": header(
            "RFC 6750 §3 challenge with `error`, `error_description`, `scope` and the RFC 9728 "
            "`resource_metadata` URL where they apply.",
            {"type": "string", "pattern": r'^Bearer realm="mcp"(, [a-z_]+="[^"]*")*$'},
        ),
        "Location": header("Where the browser goes next.", {"type": "string", "minLength": 1}),
        "Allow": header("The methods this path supports.", {"type": "string", "pattern": r"^[A-Z]+(, [A-Z]+)*$"}),
        "Content-Security-Policy": header(
            "No scripts, no framing, forms only to this server and the client's redirect origin.",
            {"type": "string", "pattern": "frame-ancestors 'none'"},
        ),
        "X-Frame-Options": header("Never framed.", {"type": "string", "const": "DENY"}),
        "Referrer-Policy": header("No referrer leaves the page.", {"type": "string", "const": "no-referrer"}),
        "X-Content-Type-Options": header("No MIME sniffing.", {"type": "string", "const": "nosniff"}),
        "Mcp-Session-Id": header(
            "The session started by `initialize` (handshake-era protocol versions): send it on every later "
            "request of the session.",
            {"type": "string", "minLength": 1, "maxLength": 512},
            required=False,
        ),
        "Access-Control-Allow-Origin": header(
            "CORS: any origin (no cookies are ever accepted cross-origin); the request's `Origin` on a preflight.",
            {"type": "string", "minLength": 1},
            required=False,
        ),
        "Access-Control-Allow-Methods": header(
            "CORS preflight: the methods a cross-origin request may use.", {"type": "string"}, required=False
        ),
        "Access-Control-Allow-Headers": header(
            "CORS preflight: the request headers allowed (Authorization, Content-Type, MCP headers).",
            {"type": "string"},
            required=False,
        ),
        "Access-Control-Max-Age": header(
            "CORS preflight: seconds a browser may cache it.", {"type": "integer", "minimum": 0}, required=False
        ),
    }


# -- schemas -------------------------------------------------------------------------------------


def _schemas(state: OAuthState) -> dict[str, Any]:
    scopes = sorted(state.scopes)
    grants = sorted(state.grants)
    text = {"type": "string", "maxLength": 1000}
    https_url = {"type": "string", "format": "uri", "maxLength": 2000}
    client_auth_fields = {
        "client_id": {
            "type": "string",
            "description": "`client_secret_post` and public (`none`) clients; with HTTP Basic it may be left out "
            "or must equal the Basic user name.",
        },
        "client_secret": {
            "type": "string",
            "description": "`client_secret_post` only: never together with HTTP Basic.",
        },
    }
    optional_resource = _empty_or(
        {"type": "string", "format": "uri"},
        f"RFC 8707 resource indicator (one per request); defaults to the MCP endpoint `{state.default_resource}`.",
    )
    scope_param = {
        "type": "string",
        "pattern": SCOPE_PATTERN,
        "description": "Space-separated scopes; omitted means every scope the client may have (or, for a "
        "code or refresh token, everything granted).",
    }
    token_request_common = {"scope": scope_param, "resource": optional_resource} | client_auth_fields
    token_requests: dict[str, Any] = {
        "client_credentials": {
            "type": "object",
            "title": "client_credentials (OAuth 2.1 §4.2)",
            "required": ["grant_type"],
            "properties": {"grant_type": {"const": "client_credentials"}} | token_request_common,
        },
        "authorization_code": {
            "type": "object",
            "title": "authorization_code with PKCE (OAuth 2.1 §4.1.3, RFC 7636)",
            "required": ["grant_type", "code", "code_verifier"],
            "properties": {
                "grant_type": {"const": "authorization_code"},
                "code": {"type": "string", "minLength": 1, "description": "The single-use code."},
                "code_verifier": {"type": "string", "pattern": VERIFIER_PATTERN},
                "redirect_uri": {
                    "type": "string",
                    "description": "Required, and identical, when the authorization request had it.",
                },
            }
            | token_request_common,
        },
        "refresh_token": {
            "type": "object",
            "title": "refresh_token with rotation (OAuth 2.1 §4.3)",
            "required": ["grant_type", "refresh_token"],
            "properties": {
                "grant_type": {"const": "refresh_token"},
                "refresh_token": {
                    "type": "string",
                    "minLength": 1,
                    "description": "Rotated on every use; presenting a rotated one revokes its whole grant.",
                },
            }
            | token_request_common,
        },
    }
    builtin = {g: token_requests[g] for g in grants if g in token_requests}
    extension = [g for g in grants if g not in token_requests]
    variants = [{"$ref": f"#/components/schemas/TokenRequest_{g}"} for g in builtin]
    for g in extension:
        # A grant from a third-party plugin: its parameters are its own.
        variants.append({"type": "object", "required": ["grant_type"], "properties": {"grant_type": {"const": g}}})

    client_metadata_properties: dict[str, Any] = {
        "redirect_uris": {
            "type": "array",
            "maxItems": 20,
            "uniqueItems": True,
            "items": {"type": "string"},
            "description": "Exact-match redirect URIs: https, loopback http (any port, RFC 8252 §7.3) or a "
            "private-use scheme; no fragments. Required for authorization_code.",
        },
        "token_endpoint_auth_method": {"type": "string", "enum": AUTH_METHODS, "default": "client_secret_basic"},
        "grant_types": {
            "type": "array",
            "minItems": 1,
            "maxItems": 3,
            "uniqueItems": True,
            "items": {"type": "string"},
            "default": ["authorization_code"],
            "description": f"Of {', '.join(GRANT_TYPES)} (and any grant a plugin enables). Without an initial "
            "access token only grants a person consents to (authorization_code, refresh_token).",
        },
        "response_types": {"type": "array", "maxItems": 1, "items": {"const": "code"}, "default": ["code"]},
        "client_name": {"type": "string", "maxLength": 200},
        "client_uri": https_url,
        "logo_uri": https_url,
        "tos_uri": https_url,
        "policy_uri": https_url,
        "contacts": {"type": "array", "maxItems": 10, "items": text},
        "scope": {"type": "string", "maxLength": 1000, "description": f"Space-separated, of: {' '.join(scopes)}."},
        "software_id": text,
        "software_version": text,
    }
    client_information_properties = copy.deepcopy(client_metadata_properties) | {
        "client_id": {"type": "string", "minLength": 1},
        "client_id_issued_at": {"type": "integer"},
        "registration_client_uri": {"type": "string", "format": "uri"},
        "client_secret": {"type": "string", "description": "Confidential clients, at registration only."},
        "client_secret_expires_at": {"type": "integer", "description": "0: never. Confidential clients only."},
        "registration_access_token": {"type": "string", "description": "At registration only (RFC 7592)."},
    }
    for name in ("redirect_uris", "grant_types", "response_types"):
        client_information_properties[name].pop("default", None)
    client_information_properties["response_types"]["maxItems"] = 1
    jsonrpc_id = {"oneOf": [{"type": "string"}, {"type": "integer"}], "description": "Never null."}

    return {
        "OAuthError": {
            "type": "object",
            "description": "RFC 6749 §5.2 error body (also used by RFC 6750, 7591, 7592, 7662, 7009 and for "
            "HTTP errors such as 404 and 405).",
            "required": ["error"],
            "additionalProperties": False,
            "properties": {
                "error": {"type": "string", "pattern": "^[a-z_]+$"},
                "error_description": {"type": "string", "maxLength": 300, "pattern": DESCRIPTION_PATTERN},
            },
        },
        "AuthorizationServerMetadata": {
            "type": "object",
            "description": "RFC 8414 §2, exactly what this server implements.",
            "additionalProperties": False,
            "required": [
                "issuer",
                "token_endpoint",
                "registration_endpoint",
                "revocation_endpoint",
                "introspection_endpoint",
                "jwks_uri",
                "scopes_supported",
                "response_types_supported",
                "grant_types_supported",
                "token_endpoint_auth_methods_supported",
                "revocation_endpoint_auth_methods_supported",
                "introspection_endpoint_auth_methods_supported",
                "code_challenge_methods_supported",
            ],
            "properties": {
                "issuer": {"const": state.issuer},
                "authorization_endpoint": {"const": f"{state.issuer}/oauth/authorize"},
                "token_endpoint": {"const": f"{state.issuer}/oauth/token"},
                "registration_endpoint": {"const": f"{state.issuer}/oauth/register"},
                "revocation_endpoint": {"const": f"{state.issuer}/oauth/revoke"},
                "introspection_endpoint": {"const": f"{state.issuer}/oauth/introspect"},
                "jwks_uri": {"const": f"{state.issuer}/.well-known/jwks.json"},
                "scopes_supported": {"type": "array", "items": {"enum": scopes}},
                "response_types_supported": {"type": "array", "items": {"const": "code"}},
                "grant_types_supported": {"type": "array", "items": {"enum": grants}},
                "token_endpoint_auth_methods_supported": {"type": "array", "items": {"enum": AUTH_METHODS}},
                "revocation_endpoint_auth_methods_supported": {"type": "array", "items": {"enum": AUTH_METHODS}},
                "introspection_endpoint_auth_methods_supported": {
                    "type": "array",
                    "items": {"enum": ["client_secret_basic", "client_secret_post"]},
                },
                "code_challenge_methods_supported": {"type": "array", "items": {"const": "S256"}},
                "authorization_response_iss_parameter_supported": {"const": True},
                "client_id_metadata_document_supported": {"const": True},
            },
        },
        "ProtectedResourceMetadata": {
            "examples": [
                {
                    "resource": state.default_resource,
                    "authorization_servers": [state.issuer],
                    "scopes_supported": scopes,
                    "bearer_methods_supported": ["header"],
                    "resource_name": f"MCP server at {state.issuer}",
                }
            ],
            "type": "object",
            "description": "RFC 9728 §2 metadata of the MCP endpoint.",
            "additionalProperties": False,
            "required": ["resource", "authorization_servers", "scopes_supported", "bearer_methods_supported"],
            "properties": {
                "resource": {"const": state.default_resource},
                "authorization_servers": {"const": [state.issuer]},
                "scopes_supported": {"type": "array", "items": {"enum": scopes}},
                "bearer_methods_supported": {"const": ["header"]},
                "resource_name": {"type": "string"},
                "resource_documentation": {"type": "string", "format": "uri"},
            },
        },
        "JWK": {
            "type": "object",
            "description": "A public signing key (RFC 7517); `kid` is its RFC 7638 thumbprint.",
            "required": ["kty", "kid", "use", "alg"],
            "additionalProperties": False,
            "properties": {
                "kty": {"enum": ["EC", "RSA", "OKP"]},
                "kid": {"type": "string", "pattern": BASE64URL},
                "use": {"const": "sig"},
                "alg": {"enum": ["ES256", "RS256", "EdDSA"]},
                "crv": {"type": "string"},
                "x": {"type": "string", "pattern": BASE64URL},
                "y": {"type": "string", "pattern": BASE64URL},
                "n": {"type": "string", "pattern": BASE64URL},
                "e": {"type": "string", "pattern": BASE64URL},
            },
        },
        "JWKS": {
            "type": "object",
            "description": "The current key and previous ones whose tokens may still be valid (empty with HS256).",
            "required": ["keys"],
            "additionalProperties": False,
            "properties": {"keys": {"type": "array", "items": _schema("JWK")}},
        },
        **{f"TokenRequest_{g}": schema for g, schema in builtin.items()},
        "TokenRequest": {
            "description": "One of the enabled grants, chosen by `grant_type`. Parameters sent empty count as "
            "absent; a repeated parameter is refused (RFC 6749 §3.1); unknown parameters are ignored.",
            "oneOf": variants,
        },
        "TokenResponse": {
            "examples": [
                {
                    "access_token": "eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCJ9.eyJzdWIiOiJ3b3JrZXIifQ.c2lnbmF0dXJl",
                    "token_type": "Bearer",
                    "expires_in": 3600,
                    "scope": "mcp:tools",
                    "refresh_token": "q3zPZ8b3hK0pW1mS9dJx2yTqV4nL7cR6fA5eG8uI0oM",
                }
            ],
            "type": "object",
            "description": "RFC 6749 §5.1. The access token is an RFC 9068 JWT for the requested resource.",
            "required": ["access_token", "token_type", "expires_in", "scope"],
            "additionalProperties": False,
            "properties": {
                "access_token": {"type": "string", "pattern": r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$"},
                "token_type": {"const": "Bearer"},
                "expires_in": {"type": "integer", "minimum": 0},
                "scope": {"type": "string"},
                "refresh_token": {
                    "type": "string",
                    "description": "authorization_code and refresh_token grants, for clients registered for "
                    "refresh_token.",
                },
            },
        },
        "TokenOperationRequest": {
            "type": "object",
            "description": "RFC 7662 §2.1 / RFC 7009 §2.1.",
            "required": ["token"],
            "properties": {
                "token": {"type": "string", "minLength": 1},
                "token_type_hint": {"type": "string", "description": "Accepted and not needed."},
            }
            | client_auth_fields,
        },
        "IntrospectionResponse": {
            "examples": [
                {"active": False},
                {
                    "active": True,
                    "scope": "mcp:tools",
                    "client_id": "n0Qm2s8Yb3kP1xVt",
                    "sub": "n0Qm2s8Yb3kP1xVt",
                    "aud": state.default_resource,
                    "iss": state.issuer,
                    "exp": 1767229200,
                    "iat": 1767225600,
                    "jti": "b9Xk2LwQp0Rz7VnT",
                    "token_type": "Bearer",
                },
            ],
            "description": "RFC 7662 §2.2. Inactive for unknown, expired, revoked tokens and for tokens of "
            "other clients (unless the caller has the `introspect` privilege).",
            "oneOf": [
                {
                    "type": "object",
                    "title": "inactive",
                    "required": ["active"],
                    "additionalProperties": False,
                    "properties": {"active": {"const": False}},
                },
                {
                    "type": "object",
                    "title": "active",
                    "required": ["active", "scope", "client_id", "sub", "aud", "iss", "exp", "iat", "token_type"],
                    "additionalProperties": False,
                    "properties": {
                        "active": {"const": True},
                        "scope": {"type": "string"},
                        "client_id": {"type": "string"},
                        "sub": {"type": "string"},
                        "aud": {"type": "string"},
                        "iss": {"const": state.issuer},
                        "exp": {"type": "integer"},
                        "iat": {"type": "integer"},
                        "jti": {"type": "string", "description": "Access tokens only."},
                        "token_type": {"enum": ["Bearer", "refresh_token"]},
                    },
                },
            ],
        },
        "ClientMetadata": {
            "type": "object",
            "description": "RFC 7591 §2 client metadata. Unknown members are ignored (RFC 7591 §2); `null` "
            "counts as absent.",
            "properties": _null_is_absent(client_metadata_properties),
        },
        "ClientUpdate": {
            "type": "object",
            "description": "RFC 7592 §2.2: the full metadata, replacing what was registered.",
            "required": ["client_id"],
            "properties": _null_is_absent(client_metadata_properties)
            | {
                "client_id": {"type": "string", "description": "Must equal the client being updated."},
                "client_secret": {"type": "string", "description": "If sent, must equal the current secret."},
            },
        },
        "ClientInformation": {
            "examples": [
                {
                    "client_id": "n0Qm2s8Yb3kP1xVt",
                    "client_id_issued_at": 1767225600,
                    "registration_client_uri": f"{state.issuer}/oauth/register/n0Qm2s8Yb3kP1xVt",
                    "registration_access_token": "Zr4m8Vq1Lp6Tn2Xc9Hb5Jw3Ks7Df0Gy1Ua8Ee4Ri6Oo",
                    "client_name": "Example MCP client",
                    "redirect_uris": ["http://127.0.0.1:33418/callback"],
                    "grant_types": ["authorization_code", "refresh_token"],
                    "response_types": ["code"],
                    "token_endpoint_auth_method": "none",
                    "scope": " ".join(state.default_scopes),
                }
            ],
            "type": "object",
            "description": "RFC 7591 §3.2.1 / RFC 7592 §3: the registered metadata (never `null`) with the "
            "issued identifiers.",
            "required": [
                "client_id",
                "client_id_issued_at",
                "registration_client_uri",
                "redirect_uris",
                "token_endpoint_auth_method",
                "grant_types",
                "response_types",
                "scope",
            ],
            "additionalProperties": False,
            "properties": client_information_properties,
        },
        "Health": {
            "type": "object",
            "required": ["status", "storage"],
            "additionalProperties": False,
            "properties": {
                "status": {"enum": ["ok", "unavailable"]},
                "storage": {"enum": ["ok", "unavailable"]},
                "token_storage": {
                    "enum": ["ok", "unavailable"],
                    "description": "Only with a separate `OAUTH_TOKEN_STORAGE_URL`.",
                },
            },
        },
        "WhoAmI": {
            "examples": [{"sub": "alice", "client_id": "n0Qm2s8Yb3kP1xVt", "scope": "mcp:tools"}],
            "type": "object",
            "required": ["sub", "client_id", "scope"],
            "additionalProperties": False,
            "properties": {"sub": {"type": "string"}, "client_id": {"type": "string"}, "scope": {"type": "string"}},
        },
        "JSONRPCMessage": {
            "type": "object",
            "description": "A JSON-RPC 2.0 request (with `id`), notification (without) or a response to a "
            "server request (acknowledged and dropped). Methods: `initialize`, `ping`, `tools/list`, "
            "`tools/call` and, with protocol version 2026-07-28, `server/discover`.",
            "required": ["jsonrpc"],
            "properties": {
                "jsonrpc": {"const": "2.0"},
                "id": jsonrpc_id,
                "method": {"type": "string", "minLength": 1},
                "params": {"type": "object"},
                "result": {"type": "object"},
                "error": {"type": "object"},
            },
        },
        "JSONRPCReply": {
            "type": "object",
            "description": "A JSON-RPC 2.0 result or error. `id` echoes the request's exactly; it is `null` only "
            "when the request's id could not be read.",
            "required": ["jsonrpc", "id"],
            "oneOf": [{"required": ["result"]}, {"required": ["error"]}],
            "additionalProperties": False,
            "properties": {
                "jsonrpc": {"const": "2.0"},
                "id": {"oneOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]},
                "result": {"type": "object"},
                "error": _schema("JSONRPCErrorObject"),
            },
        },
        "JSONRPCErrorObject": {
            "type": "object",
            "required": ["code", "message"],
            "additionalProperties": False,
            "properties": {"code": {"type": "integer"}, "message": {"type": "string"}, "data": {}},
        },
        "JSONRPCErrorReply": {
            "type": "object",
            "description": "A JSON-RPC 2.0 error answering a transport-level problem.",
            "required": ["jsonrpc", "id", "error"],
            "additionalProperties": False,
            "properties": {
                "jsonrpc": {"const": "2.0"},
                "id": {"oneOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]},
                "error": _schema("JSONRPCErrorObject"),
            },
        },
    }


# -- operations ----------------------------------------------------------------------------------


def _op(op_id: str, summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"operationId": op_id, "summary": summary, **extra, "responses": responses}


def _head_of(get: dict[str, Any]) -> dict[str, Any]:
    """The HEAD twin of a GET operation: the same statuses and headers, no body (RFC 9110 §9.3.2)."""
    head = copy.deepcopy(get)
    head["operationId"] = "head" + get["operationId"][3:]
    head["summary"] = "HEAD: " + get["summary"]
    head.pop("description", None)
    for response in head["responses"].values():
        if "$ref" not in response:
            response.pop("content", None)
    refs = {code: r for code, r in head["responses"].items() if "$ref" in r}
    for code, r in refs.items():
        # A shared response has a body; HEAD's copy keeps only its headers.
        head["responses"][code] = {"$ref": r["$ref"].replace("/responses/", "/responses/Head")}
    return head


def _options(op_id: str, cors: bool, mcp_route: bool = False) -> dict[str, Any]:
    preflight = (
        " A CORS preflight (with `Origin` and `Access-Control-Request-Method`) gets the "
        "`Access-Control-Allow-*` headers: any origin, no credentials."
        if cors
        else " No CORS: browsers navigate to this page, scripts on other origins may not read it."
    )
    headers = _headers("Allow")
    if cors:
        headers |= _headers(
            "Access-Control-Allow-Origin",
            "Access-Control-Allow-Methods",
            "Access-Control-Allow-Headers",
            "Access-Control-Max-Age",
        )
    responses: dict[str, Any] = {
        "200": {"description": "The methods of this path, no body." + preflight, "headers": headers}
    }
    if mcp_route:
        responses["403"] = {
            "description": "A foreign `Host` or `Origin` (DNS-rebinding protection), preflights included.",
            "headers": _headers("Cache-Control-No-Store"),
            "content": _json(_schema("JSONRPCErrorReply")),
        }
    return _op(op_id, "Allowed methods; CORS preflight", responses, security=[{}])


def _public_json(op_id: str, summary: str, schema: str, *, storage: bool = False, **extra: Any) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {"description": summary, "headers": _headers("Cache-Control-Public"), "content": _json(_schema(schema))}
    }
    if storage:
        responses["503"] = _ref("responses", "Unavailable")
    return _op(op_id, summary, responses, security=[{}], **extra)


def _authorize_ops(state: OAuthState, prefix: str) -> dict[str, Any]:
    params_text = (
        "Authorization request parameters (OAuth 2.1 §4.1.1, RFC 7636, RFC 8707). Until `client_id` and "
        "`redirect_uri` are verified every problem is an HTML error page, never a redirect; after that, "
        "problems go to the redirect URI as `error`, `error_description`, `state` and `iss` (RFC 9207)."
    )
    page_headers = _headers(
        "Cache-Control-No-Store",
        "Pragma",
        "Content-Security-Policy",
        "X-Frame-Options",
        "Referrer-Policy",
        "X-Content-Type-Options",
    )
    authz_properties: dict[str, Any] = {
        "response_type": {"const": "code"},
        "client_id": {
            "type": "string",
            "minLength": 1,
            "description": "A registered client, or an https URL naming a Client ID Metadata Document.",
        },
        "redirect_uri": {
            "type": "string",
            "description": "One of the client's registered URIs (loopback: any port); may be left out when exactly "
            "one is registered.",
        },
        "scope": {"type": "string", "pattern": SCOPE_PATTERN},
        "state": {"type": "string", "description": "Returned unchanged."},
        "code_challenge": {"type": "string", "pattern": CHALLENGE_PATTERN},
        "code_challenge_method": {"const": "S256"},
        "resource": _empty_or({"type": "string", "format": "uri"}, "RFC 8707 resource indicator."),
        "prompt": {"type": "string", "description": "`none`, `login`, `consent` (OpenID Connect Core §3.1.2.1)."},
    }
    required = ["response_type", "client_id", "code_challenge", "code_challenge_method"]

    def responses(redirect_status: str) -> dict[str, Any]:
        page = "text/html"
        return {
            "200": {
                "description": "The login page, or the consent page of the signed-in person.",
                "headers": page_headers,
                "content": _html("A plain HTML form; works without JavaScript."),
            },
            redirect_status: {
                "description": "The authorization response at the client's verified redirect URI: `code` (or "
                "`error` and `error_description`), `state` when sent, and `iss`.",
                "headers": page_headers | _headers("Location"),
            },
            "400": {
                "description": "HTML error page: the client or redirect URI cannot be trusted, the request is "
                "malformed, or a form expired (CSRF).",
                "headers": page_headers,
                "content": {page: {"schema": {"type": "string"}}},
            },
            "413": {
                "description": "HTML error page: the form is larger than `MAX_CONTENT_LENGTH`.",
                "headers": page_headers,
                "content": {page: {"schema": {"type": "string"}}},
            },
            "429": {
                "description": "HTML page: too many failed sign-ins (with `Retry-After`) or metadata-document "
                "look-ups from this address.",
                "headers": page_headers | {"Retry-After": {**_header_components()["Retry-After"], "required": False}},
                "content": {page: {"schema": {"type": "string"}}},
            },
            "503": {
                "description": "HTML error page: storage is unreachable.",
                "headers": page_headers,
                "content": {page: {"schema": {"type": "string"}}},
            },
        }

    query = [
        {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": schema,
        }
        for name, schema in authz_properties.items()
    ]
    form_properties = copy.deepcopy(authz_properties) | {
        # The page fields matter only on a post of this server's own forms (with `action`).
        "action": _empty_or({"enum": ["login", "consent", "switch"]}, "Set by this server's own forms."),
        "csrf_token": {"type": "string"},
        "username": {"type": "string"},
        "password": {"type": "string", "format": "password"},
        "decision": {"type": "string", "description": "`approve` or `deny` (consent form)."},
        "remember": {"type": "string", "description": "`yes`: remember this consent."},
        "subject": {"type": "string"},
    }
    get = _op(
        f"get{prefix}Authorize",
        "Authorization request (login and consent pages)",
        responses("302"),
        description=params_text,
        parameters=query,
        security=[{}],
    )
    post = _op(
        f"post{prefix}Authorize",
        "Authorization request as a form; the login and consent forms post here",
        responses("303"),
        description=params_text + " Form posts carry a CSRF token bound to the session cookie; 303 after a "
        "POST so the browser does not resend the form.",
        requestBody={
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {"type": "object", "required": required, "properties": form_properties}
                }
            },
        },
        security=[{}],
    )
    return {"get": get, "head": _head_of(get), "post": post, "options": _options(f"options{prefix}Authorize", False)}


def _token_ops(prefix: str) -> dict[str, Any]:
    post = _op(
        f"post{prefix}Token",
        "Token endpoint (OAuth 2.1 §3.2): the enabled grants",
        {
            "200": {
                "description": "Tokens issued.",
                "headers": _headers("Cache-Control-No-Store", "Pragma"),
                "content": _json(_schema("TokenResponse")),
            },
            "400": {
                "description": "RFC 6749 §5.2 error: malformed or repeated parameters, a missing or unknown "
                "grant_type, an unknown/expired/used code or refresh token, a PKCE mismatch, a scope or resource "
                "outside what was granted, a grant the client is not registered for.",
                "headers": _headers("Cache-Control-No-Store"),
                "content": _error(
                    "invalid_request",
                    "invalid_grant",
                    "unauthorized_client",
                    "unsupported_grant_type",
                    "invalid_scope",
                    "invalid_target",
                    example="authorization code is unknown",
                ),
            },
            "401": _ref("responses", "InvalidClient"),
            "413": _ref("responses", "RequestTooLarge"),
            "415": _ref("responses", "UnsupportedMediaType"),
            "429": _ref("responses", "RateLimited"),
            "503": _ref("responses", "Unavailable"),
        },
        description="Client authentication: HTTP Basic (`client_secret_basic`), `client_id` + `client_secret` "
        "in the body (`client_secret_post`), or `client_id` alone for public clients; exactly one method.",
        requestBody={
            "required": True,
            "content": {"application/x-www-form-urlencoded": {"schema": _schema("TokenRequest")}},
        },
        security=[{"clientBasic": []}, {}],
    )
    return {"post": post, "options": _options(f"options{prefix}Token", True)}


def _register_ops(prefix: str) -> dict[str, Any]:
    post = _op(
        f"post{prefix}Register",
        "Dynamic client registration (RFC 7591)",
        {
            "201": {
                "description": "Registered: the metadata as stored, `client_id`, `client_secret` (confidential "
                "clients) and the RFC 7592 `registration_access_token`.",
                "headers": _headers("Cache-Control-No-Store", "Pragma"),
                "content": _json(_schema("ClientInformation")),
            },
            "400": {
                "description": "Malformed JSON or metadata the server does not accept.",
                "headers": _headers("Cache-Control-No-Store"),
                "content": _error(
                    "invalid_request",
                    "invalid_client_metadata",
                    "invalid_redirect_uri",
                    example="redirect_uris: authorization_code clients need at least one redirect URI",
                ),
            },
            "401": {
                "description": "A bad or expired initial access token; or a client that could act without a "
                "person consenting (client_credentials) registered without one; or closed registration "
                "(`OAUTH_REGISTRATION_OPEN=false`) without one.",
                "headers": _headers("Cache-Control-No-Store", "Pragma", "WWW-Authenticate-Bearer"),
                "content": _error("invalid_token", example="initial access token is invalid or expired"),
            },
            "413": _ref("responses", "RequestTooLarge"),
            "415": _ref("responses", "UnsupportedMediaType"),
            "429": _ref("responses", "RateLimited"),
            "503": _ref("responses", "Unavailable"),
        },
        description="Without credentials anyone may register a client that needs a person's consent "
        "(authorization_code); a client_credentials client needs an initial access token (`oauth iat create`) "
        "as `Authorization: Bearer`.",
        requestBody={"required": True, "content": _json(_schema("ClientMetadata"), _client_metadata_example())},
        security=[{}, {"initialAccessToken": []}],
    )
    return {"post": post, "options": _options(f"options{prefix}Register", True)}


def _client_metadata_example() -> dict[str, Any]:
    return {
        "client_name": "Example MCP client",
        "redirect_uris": ["http://127.0.0.1:33418/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "none",
    }


def _client_config_ops() -> dict[str, Any]:
    client_id = {
        "name": "client_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "minLength": 1},
    }
    security = [{"registrationAccessToken": []}]
    information = {
        "description": "The client's current registration.",
        "headers": _headers("Cache-Control-No-Store", "Pragma"),
        "content": _json(_schema("ClientInformation")),
    }
    get = _op(
        "getClientConfiguration",
        "Read a registration (RFC 7592 §2.1)",
        {
            "200": information,
            "401": _ref("responses", "RegistrationUnauthorized"),
            "404": _ref("responses", "NotFound"),
            "503": _ref("responses", "Unavailable"),
        },
        security=security,
    )
    put = _op(
        "putClientConfiguration",
        "Replace a registration's metadata (RFC 7592 §2.2)",
        {
            "200": information,
            "400": {
                "description": "Malformed JSON, invalid metadata, a `client_id` or `client_secret` that does not "
                "match, a switch between public and confidential, or a dynamically registered client adding "
                "client_credentials.",
                "headers": _headers("Cache-Control-No-Store"),
                "content": _error("invalid_request", "invalid_client_metadata", "invalid_redirect_uri"),
            },
            "401": _ref("responses", "RegistrationUnauthorized"),
            "404": _ref("responses", "NotFound"),
            "413": _ref("responses", "RequestTooLarge"),
            "415": _ref("responses", "UnsupportedMediaType"),
            "503": _ref("responses", "Unavailable"),
        },
        requestBody={"required": True, "content": _json(_schema("ClientUpdate"))},
        security=security,
    )
    delete = _op(
        "deleteClientConfiguration",
        "Delete a registration with its consents and grants (RFC 7592 §2.3)",
        {
            "204": {"description": "Deleted.", "headers": _headers("Cache-Control-No-Store")},
            "401": _ref("responses", "RegistrationUnauthorized"),
            "404": _ref("responses", "NotFound"),
            "503": _ref("responses", "Unavailable"),
        },
        security=security,
    )
    return {
        "parameters": [client_id],
        "get": get,
        "head": _head_of(get),
        "put": put,
        "delete": delete,
        "options": _options("optionsClientConfiguration", True),
    }


def _token_operation(op_id: str, summary: str, ok: dict[str, Any], *, description: str) -> dict[str, Any]:
    return {
        "post": _op(
            op_id,
            summary,
            {
                "200": ok,
                "400": {
                    "description": "Malformed or repeated parameters, no `token`, or two client authentication "
                    "methods at once.",
                    "headers": _headers("Cache-Control-No-Store"),
                    "content": _error("invalid_request", example="token is required"),
                },
                "401": _ref("responses", "InvalidClient"),
                "413": _ref("responses", "RequestTooLarge"),
                "415": _ref("responses", "UnsupportedMediaType"),
                "429": _ref("responses", "RateLimited"),
                "503": _ref("responses", "Unavailable"),
            },
            description=description,
            requestBody={
                "required": True,
                "content": {"application/x-www-form-urlencoded": {"schema": _schema("TokenOperationRequest")}},
            },
            security=[{"clientBasic": []}, {}],
        ),
        "options": _options("options" + op_id[4:], True),
    }


def _mcp_ops(state: OAuthState) -> dict[str, Any]:
    security = [{"accessToken": ["mcp:tools"]}]
    forbidden = {
        "description": "A foreign `Host` or `Origin` (DNS-rebinding protection, JSON-RPC error), or a tool whose "
        "scope the token lacks (RFC 6750 `insufficient_scope` step-up challenge).",
        "headers": _headers("Cache-Control-No-Store"),
        "content": _json({"oneOf": [_schema("JSONRPCErrorReply"), _insufficient_scope()]}),
    }
    bad_request_bearer = {
        "allOf": [_schema("OAuthError")],
        "properties": {"error": {"const": "invalid_request"}},
        "description": "An `access_token` query parameter: tokens are accepted only in the Authorization header.",
    }
    rpc_error = {
        "headers": _headers("Cache-Control-No-Store"),
        "content": _json(_schema("JSONRPCErrorReply")),
    }
    versions = list(mcp.SUPPORTED_VERSIONS)
    header_params = [
        {
            "name": "MCP-Protocol-Version",
            "in": "header",
            "required": False,
            "schema": {"enum": versions},
            "description": "Handshake-era versions: the version `initialize` negotiated. 2026-07-28: required, "
            "with `Mcp-Method` (and `Mcp-Name` for tools/call); no session.",
        },
        {
            "name": "Mcp-Session-Id",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "minLength": 1},
            "description": "The session from `initialize` (handshake-era versions).",
        },
        {"name": "Mcp-Method", "in": "header", "required": False, "schema": {"type": "string"}},
        {"name": "Mcp-Name", "in": "header", "required": False, "schema": {"type": "string"}},
    ]
    post = _op(
        "postMcp",
        "MCP Streamable HTTP endpoint: JSON-RPC over POST, JSON answers",
        {
            "200": {
                "description": "A JSON-RPC reply (an array of replies for a 2025-03-26 batch). `initialize` "
                "returns the session id.",
                "headers": _headers("Cache-Control-No-Store", "Mcp-Session-Id"),
                "content": _json(
                    {"oneOf": [_schema("JSONRPCReply"), {"type": "array", "items": _schema("JSONRPCReply")}]},
                    {"jsonrpc": "2.0", "id": 1, "result": {"tools": []}},
                ),
            },
            "202": {
                "description": "Only notifications or responses were sent: accepted, no body.",
                "headers": _headers("Cache-Control-No-Store"),
            },
            "400": {
                "description": "Not JSON, not a JSON-RPC message, no or a mismatched session or protocol version, "
                "an unsupported protocol version, an empty batch (JSON-RPC error); or a token in the query string "
                "(RFC 6750 error).",
                "headers": _headers("Cache-Control-No-Store"),
                "content": _json({"oneOf": [_schema("JSONRPCErrorReply"), bad_request_bearer]}),
            },
            "401": _ref("responses", "BearerUnauthorized"),
            "403": forbidden,
            "404": {"description": "Unknown or ended session; with 2026-07-28 an unknown method.", **rpc_error},
            "406": {"description": "`Accept` excludes application/json.", **rpc_error},
            "413": _ref("responses", "RequestTooLarge"),
            "415": {"description": "The body is not application/json.", **rpc_error},
            "503": _ref("responses", "Unavailable"),
        },
        description="Protocol versions: " + ", ".join(versions) + ". `GET /mcp` answers 405 (no SSE stream is "
        "offered). The token must be minted for this resource (`aud` = "
        f"`{state.default_resource}`); `tools/call` needs the tool's scope.",
        parameters=header_params,
        requestBody={
            "required": True,
            "content": _json(
                {
                    "oneOf": [
                        _schema("JSONRPCMessage"),
                        {
                            "type": "array",
                            "minItems": 1,
                            "items": _schema("JSONRPCMessage"),
                            "description": "A batch (2025-03-26 sessions only). A member that is not a valid "
                            "message gets its own error in the reply array (JSON-RPC 2.0 §6).",
                        },
                    ]
                },
                {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}},
            ),
        },
        security=security,
    )
    delete = _op(
        "deleteMcp",
        "End an MCP session",
        {
            "204": {"description": "Ended.", "headers": _headers("Cache-Control-No-Store")},
            "400": {
                "description": "No `Mcp-Session-Id` (JSON-RPC error), or a token in the query string.",
                "headers": _headers("Cache-Control-No-Store"),
                "content": _json({"oneOf": [_schema("JSONRPCErrorReply"), bad_request_bearer]}),
            },
            "401": _ref("responses", "BearerUnauthorized"),
            "403": forbidden,
            "404": {"description": "Unknown or already ended session.", **rpc_error},
            "503": _ref("responses", "Unavailable"),
        },
        parameters=[header_params[1]],
        security=security,
    )
    whoami = _op(
        "getMcpWhoami",
        "Who the access token speaks for",
        {
            "200": {
                "description": "The token's subject, client and scopes.",
                "content": _json(_schema("WhoAmI")),
            },
            "400": {
                "description": "A token in the query string.",
                "headers": _headers("Cache-Control-No-Store"),
                "content": _json(bad_request_bearer),
            },
            "401": _ref("responses", "BearerUnauthorized"),
            "403": forbidden,
            "503": _ref("responses", "Unavailable"),
        },
        security=security,
    )
    return {
        "/mcp": {
            "description": "MCP endpoint. `GET` is not offered (405, no SSE stream).",
            "post": post,
            "delete": delete,
            "options": _options("optionsMcp", True, mcp_route=True),
        },
        "/mcp/whoami": {
            "get": whoami,
            "head": _head_of(whoami),
            "options": _options("optionsMcpWhoami", True, mcp_route=True),
        },
    }


def _insufficient_scope() -> dict[str, Any]:
    return {
        "allOf": [_schema("OAuthError")],
        "properties": {"error": {"const": "insufficient_scope"}},
        "description": 'RFC 6750 §3.1 with `WWW-Authenticate: Bearer error="insufficient_scope", scope=...`.',
    }


def _paths(state: OAuthState) -> dict[str, Any]:
    metadata = _public_json(
        "getAuthorizationServerMetadata", "Authorization server metadata (RFC 8414)", "AuthorizationServerMetadata"
    )
    prm_mcp = _public_json(
        "getProtectedResourceMetadataMcp",
        "Protected resource metadata of /mcp (RFC 9728 §3.1, path form)",
        "ProtectedResourceMetadata",
    )
    prm_root = _public_json(
        "getProtectedResourceMetadata",
        "Protected resource metadata (root form, for clients that find no resource_metadata in a 401)",
        "ProtectedResourceMetadata",
    )
    jwks = _public_json("getJwks", "Public signing keys (RFC 7517)", "JWKS", storage=True)
    health = _op(
        "getHealthz",
        "Liveness: every storage backend answers",
        {
            "200": {
                "description": "Serving.",
                "headers": _headers("Cache-Control-No-Store"),
                "content": _json(_schema("Health"), {"status": "ok", "storage": "ok"}),
            },
            "503": {
                "description": "A storage backend does not answer: take this instance out of rotation.",
                "headers": _headers("Cache-Control-No-Store", "Retry-After"),
                "content": _json(_schema("Health"), {"status": "unavailable", "storage": "unavailable"}),
            },
        },
        security=[{}],
    )
    metrics = _op(
        "getMetrics",
        "Prometheus metrics (summed over every gunicorn worker)",
        {
            "200": {
                "description": "Prometheus text exposition format: counts only, no ids or tokens.",
                "headers": _headers("Cache-Control-No-Store"),
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        },
        security=[{}],
    )
    openapi = _op(
        "getOpenApi",
        "This document",
        {
            "200": {
                "description": "OpenAPI 3.1 description of this server.",
                "headers": _headers("Cache-Control-Public"),
                "content": _json({"type": "object", "required": ["openapi", "paths"]}),
            }
        },
        security=[{}],
    )
    static = _op(
        "getStatic",
        "Flask's static-file route",
        {"404": _ref("responses", "NotFound")},
        description="This server ships no static files (the pages inline their stylesheet), so every path is 404.",
        security=[{}],
    )

    def get_path(get: dict[str, Any], options_id: str, cors: bool) -> dict[str, Any]:
        return {"get": get, "head": _head_of(get), "options": _options(options_id, cors)}

    introspect_ok = {
        "description": "RFC 7662 §2.2 introspection response.",
        "headers": _headers("Cache-Control-No-Store", "Pragma"),
        "content": _json(_schema("IntrospectionResponse"), {"active": False}),
    }
    revoke_ok = {
        "description": "RFC 7009 §2.2: revoked, or the token was unknown or not this client's (the same answer, "
        "so nothing can be probed). No body.",
        "headers": _headers("Cache-Control-No-Store", "Pragma"),
    }
    paths: dict[str, Any] = {
        "/.well-known/oauth-authorization-server": get_path(metadata, "optionsAuthorizationServerMetadata", True),
        "/.well-known/oauth-protected-resource": get_path(prm_root, "optionsProtectedResourceMetadata", True),
        "/.well-known/oauth-protected-resource/mcp": get_path(prm_mcp, "optionsProtectedResourceMetadataMcp", True),
        "/.well-known/jwks.json": get_path(jwks, "optionsJwks", True),
        "/oauth/authorize": _authorize_ops(state, ""),
        "/oauth/token": _token_ops(""),
        "/oauth/register": _register_ops(""),
        "/oauth/register/{client_id}": _client_config_ops(),
        "/oauth/introspect": _token_operation(
            "postIntrospect",
            "Token introspection (RFC 7662)",
            introspect_ok,
            description="Confidential clients only (public clients get 401). A caller sees its own tokens; a "
            "resource server created with `oauth client create --introspect` sees every token.",
        ),
        "/oauth/revoke": _token_operation(
            "postRevoke",
            "Token revocation (RFC 7009)",
            revoke_ok,
            description="Revoking a refresh token ends its whole grant, access tokens included.",
        ),
        "/authorize": _alias(_authorize_ops(state, "Alias"), "/oauth/authorize"),
        "/token": _alias(_token_ops("Alias"), "/oauth/token"),
        "/register": _alias(_register_ops("Alias"), "/oauth/register"),
        **_mcp_ops(state),
        "/healthz": get_path(health, "optionsHealthz", False),
        "/metrics": get_path(metrics, "optionsMetrics", False),
        "/openapi.json": get_path(openapi, "optionsOpenApi", True),
        "/static/{filename}": {
            "parameters": [{"name": "filename", "in": "path", "required": True, "schema": {"type": "string"}}],
            **get_path(static, "optionsStatic", False),
        },
    }
    for template, item in paths.items():
        if "{" in template:
            # A value the route's converter does not match (a "/", or a newline for Flask's
            # path converter) misses the route: 404 whatever the method.
            item["options"]["responses"]["404"] = _ref("responses", "NotFound")
    if "authorization_code" not in state.grants:
        # The endpoint still answers, with error pages: no client can be registered for it.
        for path in ("/oauth/authorize", "/authorize"):
            paths[path]["description"] = "The authorization_code grant is disabled on this server."
    return paths


def _alias(ops: dict[str, Any], target: str) -> dict[str, Any]:
    return {"description": f"Alias of `{target}` for 2025-03-26 MCP clients that find no metadata.", **ops}


def _head_responses(responses: dict[str, Any]) -> dict[str, Any]:
    """Body-less copies of the shared responses, for HEAD operations."""
    out = {}
    for name, response in responses.items():
        head = copy.deepcopy(response)
        head.pop("content", None)
        out[f"Head{name}"] = head
    return out


def build_document(state: OAuthState) -> dict[str, Any]:
    """The OpenAPI 3.1 document for this server's configuration."""
    responses = _responses()
    return {
        "openapi": OPENAPI_VERSION,
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "info": {
            "title": "MCP OAuth 2.1 authorization server",
            "version": _version(),
            "summary": "OAuth 2.1 authorization server and MCP endpoint for MCP clients and workers.",
            "description": "Every JSON response leaves absent members out (never `null`). OAuth errors follow "
            'RFC 6749 §5.2 with `Cache-Control: no-store`; `error_description` is ASCII without `"` or `\\`. '
            f"Request bodies are at most {state.config['MAX_CONTENT_LENGTH']} bytes (413 beyond). Form and "
            f"query parameters are strict: UTF-8, each at most {state.config['OAUTH_MAX_PARAM_LENGTH']} "
            "characters, none repeated; empty ones count as absent. Every path also answers `HEAD` (for "
            "`GET`) and `OPTIONS`; methods a path does not list get 405 with `Allow`. CORS allows any origin "
            "without credentials on the metadata, JWKS, this document, token, registration, introspection, "
            "revocation and MCP routes.",
        },
        "servers": [{"url": state.issuer, "description": "The issuer (OAUTH_ISSUER)."}],
        "paths": _paths(state),
        "components": {
            "schemas": _schemas(state),
            "responses": responses | _head_responses(responses),
            "headers": _header_components(),
            "securitySchemes": {
                "clientBasic": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "`client_secret_basic`: client_id and secret, form-urlencoded, then Basic.",
                },
                "accessToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "An RFC 9068 access token minted for the MCP resource, in the Authorization "
                    "header only.",
                },
                "registrationAccessToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "RFC 7592 registration access token from the registration response.",
                },
                "initialAccessToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "RFC 7591 §3 initial access token (`oauth iat create`).",
                },
            },
        },
    }


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mcp-oauth-server")
    except PackageNotFoundError:
        return "0"


def openapi_document() -> dict[str, Any]:
    """This app's document, built on first use (the configuration cannot change afterwards)."""
    cached: dict[str, Any] | None = current_app.extensions.get(EXTENSION)
    if cached is None:
        cached = build_document(oauth_state())
        current_app.extensions[EXTENSION] = cached
    return cached


@bp.get("/openapi.json")
def openapi_json() -> ResponseReturnValue:
    response: Response = jsonify(openapi_document())
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
