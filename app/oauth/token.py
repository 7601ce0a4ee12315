"""The token endpoint (RFC 6749 §3.2): parse, authenticate the client, hand off to a grant."""

from __future__ import annotations

from flask import g, request
from flask.typing import ResponseReturnValue

from app import audit
from app.errors import InvalidRequestError, UnauthorizedClientError, UnsupportedGrantTypeError
from app.oauth import bp
from app.oauth.client_auth import authenticate_client
from app.oauth.params import form_params
from app.oauth.responses import no_store_json
from app.state import TokenRequest, oauth_state


@bp.post("/oauth/token")
def issue_token() -> ResponseReturnValue:
    # One proxy lookup for the request: this view runs for every token.
    req = request._get_current_object()  # type: ignore[attr-defined]
    state = oauth_state()
    params = form_params(int(state.config["OAUTH_MAX_PARAM_LENGTH"]), req)
    grant_type = params.get("grant_type")
    if grant_type is None:
        raise InvalidRequestError("grant_type is required")
    grant = state.grants.get(grant_type)
    if grant is None:
        raise UnsupportedGrantTypeError(f"grant_type {grant_type[:60]} is not supported")
    client = authenticate_client(state, params, req=req)
    state.rate_limit("RATELIMIT_TOKEN", client.client_id)
    if grant_type not in client.grant_types:
        raise UnauthorizedClientError(f"this client is not registered for {grant_type}")
    now = state.now()
    if client.last_used_at < now - 3600:
        # For `oauth prune --unused-days`; at most one write an hour per client, and before the
        # grant so a storage failure here cannot follow a token that was already recorded.
        state.storage.touch_client(client.client_id, now)
    remote_addr = req.remote_addr or ""
    body = grant.issue(TokenRequest(params=params, client=client, remote_addr=remote_addr))
    audit.token_issued(grant_type, body, ip=remote_addr)
    g.issued_grant = grant_type  # for the tokens-issued metric
    return no_store_json(body)
