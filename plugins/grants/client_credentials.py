"""The ``client_credentials`` grant (OAuth 2.1 §4.2): machine workers, no person involved."""

from __future__ import annotations

from typing import Any, ClassVar

from app.errors import UnauthorizedClientError
from app.state import OAuthState, TokenRequest, narrow_scope
from app.tokens import TokenResponse


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
        scope = narrow_scope(
            request.requested_scopes(),
            self.state.client_scopes(client),
            "scope asks for more than this client may have",
        )
        audience = self.state.resolve_resource(requested_resources(request.params))
        token, claims = self.state.access_tokens.issue(
            subject=client.client_id, client_id=client.client_id, scope=scope, audience=audience
        )
        body = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": claims["exp"] - claims["iat"],
            "scope": scope,
        }
        return TokenResponse(body, claims)
