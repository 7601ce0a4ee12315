"""The ``client_credentials`` grant (OAuth 2.1 §4.2): machine workers, no person involved."""

from __future__ import annotations

from typing import Any, ClassVar

from app.core import scopes as scope_util
from app.errors import InvalidScopeError, UnauthorizedClientError
from app.state import OAuthState, TokenRequest


def requested_resources(params: dict[str, str]) -> list[str]:
    # Form parsing refuses repeats, so at most one resource arrives here.
    return [params["resource"]] if "resource" in params else []


class ClientCredentialsGrant:
    """Issues a JWT access token to an authenticated confidential client; no storage write."""

    grant_type: ClassVar[str] = "client_credentials"

    def __init__(self, state: OAuthState) -> None:
        self.state = state

    def issue(self, request: TokenRequest) -> dict[str, Any]:
        client = request.client
        if client.is_public:
            raise UnauthorizedClientError("public clients cannot use client_credentials")
        try:
            requested = scope_util.parse(request.params.get("scope"))
        except ValueError as e:
            raise InvalidScopeError(str(e)) from None
        granted = scope_util.narrow(requested, self.state.client_scopes(client))
        if granted is None:
            raise InvalidScopeError("scope asks for more than this client may have")
        audience = self.state.resolve_resource(requested_resources(request.params))
        scope = scope_util.join(granted)
        token, claims = self.state.access_tokens.issue(
            subject=client.client_id, client_id=client.client_id, scope=scope, audience=audience
        )
        return {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": claims["exp"] - claims["iat"],
            "scope": scope,
        }
