"""The ``authorization_code`` grant at POST /oauth/token: every binding of the code fails closed.

Codes are stored directly (as the authorization endpoint stores them after consent), so these
tests exercise only the token endpoint.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import g

from app import create_app
from app.core import secrets
from app.models import Client
from tests.conftest import base_config
from tests.support.grants import MCP_RESOURCE, REDIRECT, add_person, new_verifier, s256, store_code

OTHER_RESOURCE = "https://worker.example.com/mcp"


@pytest.fixture
def app_config(tmp_path: Any) -> dict[str, Any]:
    return base_config(tmp_path, OAUTH_RESOURCES=OTHER_RESOURCE)


@pytest.fixture(autouse=True)
def alice(state: Any) -> None:
    """The person the codes in these tests were issued for."""
    add_person(state.storage, "alice")


@pytest.fixture
def public_id(make_client: Any) -> str:
    """A public MCP client, registered the way the Inspector and the SDKs register."""
    cid, secret = make_client(
        ("authorization_code", "refresh_token"),
        auth_method="none",
        redirect_uris=(REDIRECT,),
        scope="mcp:tools mcp:resources",
    )
    assert secret is None
    return cid


@pytest.fixture
def confidential(make_client: Any) -> tuple[str, str]:
    cid, secret = make_client(
        ("authorization_code", "refresh_token"), auth_method="client_secret_basic", redirect_uris=(REDIRECT,)
    )
    assert secret is not None
    return cid, secret


def token(client: Any, data: dict[str, str], **kwargs: Any) -> Any:
    return client.post("/oauth/token", data=data, **kwargs)


def assert_error(r: Any, status: int, error: str) -> None:
    assert r.status_code == status, r.get_data(as_text=True)
    assert r.json["error"] == error
    assert r.headers["Cache-Control"] == "no-store"


def whoami(client: Any, access_token: str) -> Any:
    """GET /mcp/whoami with a bearer token.

    pytest-flask keeps one app context (and so one ``g``) pushed for the whole test, and the
    guard caches the verified token in ``g``; drop it so each call verifies its own token.
    """
    g.pop("oauth_token", None)
    return client.get("/mcp/whoami", headers={"Authorization": f"Bearer {access_token}"})


# -- the successful exchange --------------------------------------------------------------------


def test_public_client_exchanges_code_with_pkce_alone(client: Any, state: Any, public_id: str) -> None:
    issued = store_code(state.token_store, public_id, scope="mcp:tools mcp:resources", subject="alice")
    r = token(client, issued.params())
    assert r.status_code == 200, r.json
    body = r.json
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "mcp:tools mcp:resources"
    assert body["expires_in"] == 3600
    assert isinstance(body["refresh_token"], str) and len(body["refresh_token"]) >= 43
    assert r.headers["Cache-Control"] == "no-store"
    assert None not in body.values()

    claims = state.access_tokens.decode(body["access_token"], MCP_RESOURCE)
    assert claims.aud == MCP_RESOURCE
    assert claims.sub == "alice"
    assert claims.client_id == public_id
    assert claims.scopes == {"mcp:tools", "mcp:resources"}
    assert whoami(client, body["access_token"]).json == {
        "sub": "alice",
        "client_id": public_id,
        "scope": "mcp:resources mcp:tools",
    }

    # The refresh token is stored only as its hash, bound to client, person, scope, resource, family.
    rt = state.token_store.get_refresh_token(secrets.token_hash(body["refresh_token"]))
    assert rt is not None
    assert (rt.client_id, rt.subject, rt.scope, rt.resource, rt.family_id) == (
        public_id,
        "alice",
        "mcp:tools mcp:resources",
        MCP_RESOURCE,
        issued.family_id,
    )
    assert rt.expires_at - rt.issued_at == 604800


def test_confidential_client_exchanges_code_with_its_secret(
    client: Any, state: Any, confidential: tuple[str, str]
) -> None:
    cid, secret = confidential
    issued = store_code(state.token_store, cid)
    r = token(client, issued.params(client_id=None), auth=(cid, secret))
    assert r.status_code == 200, r.json
    assert state.access_tokens.decode(r.json["access_token"], MCP_RESOURCE).client_id == cid


def test_confidential_client_may_post_its_secret(client: Any, state: Any, confidential: tuple[str, str]) -> None:
    cid, secret = confidential
    issued = store_code(state.token_store, cid)
    assert token(client, issued.params(client_secret=secret)).status_code == 200


@pytest.mark.parametrize("how", ["no secret", "wrong secret"])
def test_confidential_client_must_send_its_secret(
    client: Any, state: Any, confidential: tuple[str, str], how: str
) -> None:
    cid, secret = confidential
    issued = store_code(state.token_store, cid)
    if how == "no secret":
        r = token(client, issued.params())
    else:
        r = token(client, issued.params(client_id=None), auth=(cid, secret + "x"))
    assert_error(r, 401, "invalid_client")
    # Client authentication failed before the grant ran: the code is still good.
    assert token(client, issued.params(client_id=None), auth=(cid, secret)).status_code == 200


def test_public_client_sending_a_secret_is_refused(client: Any, state: Any, public_id: str) -> None:
    issued = store_code(state.token_store, public_id)
    assert_error(token(client, issued.params(client_secret="guess")), 401, "invalid_client")


def test_no_refresh_token_for_a_client_not_registered_for_it(client: Any, state: Any, make_client: Any) -> None:
    cid, _ = make_client(("authorization_code",), auth_method="none", redirect_uris=(REDIRECT,))
    issued = store_code(state.token_store, cid)
    r = token(client, issued.params())
    assert r.status_code == 200
    assert "refresh_token" not in r.json


def test_no_refresh_token_when_the_server_disables_the_grant(tmp_path: Any) -> None:
    app = create_app(base_config(tmp_path, OAUTH_GRANT_TYPES="authorization_code"))
    try:
        st = app.extensions["mcp_oauth"]
        st.storage.save_client(
            Client(
                client_id="pub",
                metadata={
                    "grant_types": ["authorization_code", "refresh_token"],
                    "token_endpoint_auth_method": "none",
                    "redirect_uris": [REDIRECT],
                },
                issued_at=0,
            )
        )
        issued = store_code(st.token_store, "pub")
        r = app.test_client().post("/oauth/token", data=issued.params())
        assert r.status_code == 200, r.json
        assert "refresh_token" not in r.json
    finally:
        st.close()


# -- missing and malformed parameters -------------------------------------------------------------


def test_missing_code_is_invalid_request(client: Any, state: Any, public_id: str) -> None:
    issued = store_code(state.token_store, public_id)
    assert_error(token(client, issued.params(code=None)), 400, "invalid_request")


def test_missing_verifier_is_invalid_request_and_keeps_the_code(client: Any, state: Any, public_id: str) -> None:
    issued = store_code(state.token_store, public_id)
    r = token(client, issued.params(code_verifier=None))
    assert_error(r, 400, "invalid_request")
    assert "code_verifier" in r.json["error_description"]
    assert token(client, issued.params()).status_code == 200


@pytest.mark.parametrize(
    "code",
    ["x", "A" * 4096, "\u00e9t\u00e9", "a b", "..", "'; DROP TABLE auth_codes; --", "\U0001f4a5" * 10],
)
def test_unknown_or_garbage_code_is_invalid_grant(client: Any, public_id: str, code: str) -> None:
    r = token(client, {"grant_type": "authorization_code", "code": code, "code_verifier": new_verifier(),
                       "client_id": public_id})
    assert_error(r, 400, "invalid_grant")


@pytest.mark.parametrize(
    "body, content_type",
    [
        ("grant_type=authorization_code&code=a&code=b&code_verifier=" + "v" * 43, None),
        ("grant_type=authorization_code&code=" + "A" * 4097 + "&code_verifier=" + "v" * 43, None),
        ("grant_type=authorization_code&code=%00&code_verifier=" + "v" * 43, None),
        ("grant_type=authorization_code&code=%ff%fe&code_verifier=" + "v" * 43, None),
        ("grant_type=authorization_code&code=a&code_verifier=" + "v" * 4097, None),
    ],
    ids=["repeated", "oversized", "nul", "not-utf8", "oversized-verifier"],
)
def test_malformed_requests_get_invalid_request(client: Any, public_id: str, body: str, content_type: Any) -> None:
    r = client.post(
        "/oauth/token",
        data=body + "&client_id=" + public_id,
        content_type=content_type or "application/x-www-form-urlencoded",
    )
    assert_error(r, 400, "invalid_request")


def test_expired_code_is_invalid_grant(client: Any, state: Any, public_id: str) -> None:
    issued = store_code(state.token_store, public_id, expires_in=-1)
    r = token(client, issued.params())
    assert_error(r, 400, "invalid_grant")
    assert "expired" in r.json["error_description"]


# -- single use ---------------------------------------------------------------------------------


def test_replayed_code_is_refused_and_revokes_what_it_issued(client: Any, state: Any, public_id: str) -> None:
    issued = store_code(state.token_store, public_id)
    first = token(client, issued.params())
    assert first.status_code == 200
    access, refresh = first.json["access_token"], first.json["refresh_token"]
    assert whoami(client, access).status_code == 200

    replay = token(client, issued.params())
    assert_error(replay, 400, "invalid_grant")
    assert "already used" in replay.json["error_description"]

    # The access token issued from the code is revoked, and so is the refresh token.
    r = whoami(client, access)
    assert r.status_code == 401
    assert "invalid_token" in r.headers["WWW-Authenticate"]
    refreshed = token(client, {"grant_type": "refresh_token", "refresh_token": refresh, "client_id": public_id})
    assert_error(refreshed, 400, "invalid_grant")
    assert state.token_store.get_refresh_token(secrets.token_hash(refresh)) is None


def test_replay_after_refresh_revokes_the_refreshed_tokens_too(client: Any, state: Any, public_id: str) -> None:
    issued = store_code(state.token_store, public_id)
    first = token(client, issued.params()).json
    second = token(
        client, {"grant_type": "refresh_token", "refresh_token": first["refresh_token"], "client_id": public_id}
    ).json
    assert whoami(client, second["access_token"]).status_code == 200
    assert_error(token(client, issued.params()), 400, "invalid_grant")
    assert whoami(client, second["access_token"]).status_code == 401
    assert state.token_store.get_refresh_token(secrets.token_hash(second["refresh_token"])) is None


def test_code_issued_to_another_client_is_refused(
    client: Any, state: Any, public_id: str, make_client: Any
) -> None:
    other, _ = make_client(("authorization_code",), auth_method="none", redirect_uris=(REDIRECT,))
    issued = store_code(state.token_store, public_id)
    r = token(client, issued.params(client_id=other))
    assert_error(r, 400, "invalid_grant")
    assert "another client" in r.json["error_description"]
    # The code was spent by that attempt: a stolen code is worth one try, then nothing.
    assert_error(token(client, issued.params()), 400, "invalid_grant")


# -- redirect URI ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sent",
    [
        None,
        "http://127.0.0.1:9999/callback",  # loopback on another port: exact match at the token endpoint
        REDIRECT + "/",
        REDIRECT.upper(),
        "http://localhost:8765/callback",
        "https://evil.example/callback",
    ],
    ids=["missing", "other-port", "trailing-slash", "case", "other-loopback-host", "foreign"],
)
def test_redirect_uri_must_equal_the_authorization_request(
    client: Any, state: Any, public_id: str, sent: str | None
) -> None:
    issued = store_code(state.token_store, public_id, redirect_uri=REDIRECT)
    r = token(client, issued.params(redirect_uri=sent))
    assert_error(r, 400, "invalid_grant")
    assert "redirect_uri" in r.json["error_description"]


def test_redirect_uri_may_be_omitted_when_the_authorization_request_omitted_it(
    client: Any, state: Any, public_id: str
) -> None:
    issued = store_code(state.token_store, public_id, redirect_uri="")
    assert "redirect_uri" not in issued.params()
    assert token(client, issued.params()).status_code == 200


def test_redirect_uri_omitted_at_authorization_may_be_sent_as_the_registered_one(
    client: Any, state: Any, public_id: str
) -> None:
    issued = store_code(state.token_store, public_id, redirect_uri="")
    assert token(client, issued.params(redirect_uri=REDIRECT)).status_code == 200


def test_redirect_uri_omitted_at_authorization_refuses_any_other(client: Any, state: Any, public_id: str) -> None:
    issued = store_code(state.token_store, public_id, redirect_uri="")
    assert_error(token(client, issued.params(redirect_uri="http://127.0.0.1:1/other")), 400, "invalid_grant")


# -- PKCE -----------------------------------------------------------------------------------------


def test_wrong_verifier_is_invalid_grant_and_spends_the_code(client: Any, state: Any, public_id: str) -> None:
    issued = store_code(state.token_store, public_id)
    r = token(client, issued.params(code_verifier=new_verifier()))
    assert_error(r, 400, "invalid_grant")
    assert "PKCE" in r.json["error_description"]
    # No second guess with the same code.
    assert_error(token(client, issued.params()), 400, "invalid_grant")


@pytest.mark.parametrize(
    "verifier",
    ["short", "a" * 42, "a" * 129, "a" * 42 + "!", "a" * 42 + " ", "\u00e9" * 43],
    ids=["short", "42", "129", "bang", "space", "non-ascii"],
)
def test_malformed_verifier_is_invalid_grant(client: Any, state: Any, public_id: str, verifier: str) -> None:
    issued = store_code(state.token_store, public_id)
    assert_error(token(client, issued.params(code_verifier=verifier)), 400, "invalid_grant")


def test_plain_pkce_downgrade_is_refused(client: Any, state: Any, public_id: str) -> None:
    # An attacker who saw the challenge sends it as the verifier ("plain" method): S256 only.
    issued = store_code(state.token_store, public_id)
    challenge = s256(issued.verifier)
    assert_error(token(client, issued.params(code_verifier=challenge)), 400, "invalid_grant")


# -- resource (RFC 8707) and scope ---------------------------------------------------------------


@pytest.mark.parametrize("sent", [MCP_RESOURCE, MCP_RESOURCE + "/", "HTTP://127.0.0.1:8000/mcp"])
def test_resource_equal_to_the_codes_is_accepted(client: Any, state: Any, public_id: str, sent: str) -> None:
    issued = store_code(state.token_store, public_id)
    r = token(client, issued.params(resource=sent))
    assert r.status_code == 200, r.json
    assert state.access_tokens.decode(r.json["access_token"], MCP_RESOURCE).aud == MCP_RESOURCE


def test_token_audience_is_the_codes_resource(client: Any, state: Any, public_id: str) -> None:
    issued = store_code(state.token_store, public_id, resource=OTHER_RESOURCE)
    r = token(client, issued.params())
    assert r.status_code == 200
    assert state.access_tokens.decode(r.json["access_token"], OTHER_RESOURCE).aud == OTHER_RESOURCE
    # Not usable on this server's own MCP endpoint.
    assert whoami(client, r.json["access_token"]).status_code == 401


@pytest.mark.parametrize(
    "sent", [OTHER_RESOURCE, "https://unknown.example/mcp", "not a uri", "https://x.example/#frag"]
)
def test_other_resource_is_invalid_target(client: Any, state: Any, public_id: str, sent: str) -> None:
    issued = store_code(state.token_store, public_id)
    assert_error(token(client, issued.params(resource=sent)), 400, "invalid_target")


def test_scope_may_narrow(client: Any, state: Any, public_id: str) -> None:
    issued = store_code(state.token_store, public_id, scope="mcp:tools mcp:resources")
    r = token(client, issued.params(scope="mcp:tools"))
    assert r.status_code == 200
    assert r.json["scope"] == "mcp:tools"
    assert state.access_tokens.decode(r.json["access_token"], MCP_RESOURCE).scopes == {"mcp:tools"}
    # The refresh token carries the narrowed grant.
    rt = state.token_store.get_refresh_token(secrets.token_hash(r.json["refresh_token"]))
    assert rt.scope == "mcp:tools"


@pytest.mark.parametrize("scope", ["mcp:tools mcp:prompts", "mcp:prompts", "admin", "bad\\scope", 'q"uote'])
def test_scope_may_not_widen_or_be_malformed(client: Any, state: Any, public_id: str, scope: str) -> None:
    issued = store_code(state.token_store, public_id, scope="mcp:tools")
    assert_error(token(client, issued.params(scope=scope)), 400, "invalid_scope")


# -- public clients (item 6) ----------------------------------------------------------------------


def test_open_registration_refuses_a_public_client_credentials_client(client: Any) -> None:
    r = client.post(
        "/oauth/register",
        json={"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"},
    )
    assert r.status_code == 400
    assert r.json["error"] == "invalid_client_metadata"


def test_public_client_cannot_use_client_credentials(client: Any, public_id: str) -> None:
    r = token(client, {"grant_type": "client_credentials", "client_id": public_id})
    assert_error(r, 400, "unauthorized_client")


def test_public_client_cannot_use_client_credentials_even_if_stored_with_it(client: Any, state: Any) -> None:
    # Defence in depth: a public client that somehow holds the grant (an old row, a hand edit).
    state.storage.save_client(
        Client(
            client_id="odd-public",
            metadata={"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"},
            issued_at=0,
        )
    )
    r = token(client, {"grant_type": "client_credentials", "client_id": "odd-public"})
    assert_error(r, 400, "unauthorized_client")
    assert "public" in r.json["error_description"]


def test_openly_registered_public_client_completes_the_exchange(client: Any, state: Any) -> None:
    reg = client.post(
        "/oauth/register",
        json={
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "client_name": "Inspector",
        },
    )
    assert reg.status_code == 201, reg.json
    assert "client_secret" not in reg.json
    issued = store_code(state.token_store, reg.json["client_id"])
    r = token(client, issued.params())
    assert r.status_code == 200
    assert "refresh_token" in r.json


def test_metadata_advertises_the_grants_and_auth_methods(client: Any) -> None:
    meta = client.get("/.well-known/oauth-authorization-server").json
    assert meta["grant_types_supported"] == ["authorization_code", "client_credentials", "refresh_token"]
    assert set(meta["token_endpoint_auth_methods_supported"]) == {"none", "client_secret_basic", "client_secret_post"}
    assert meta["code_challenge_methods_supported"] == ["S256"]
