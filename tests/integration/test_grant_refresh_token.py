"""The ``refresh_token`` grant at POST /oauth/token: rotation, reuse detection, the grace window,
scope and resource binding, and how revocation and introspection treat refresh tokens."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from flask import g

from app.core import secrets
from tests.conftest import base_config
from tests.support.grants import MCP_RESOURCE, REDIRECT, add_person, store_code

OTHER_RESOURCE = "https://worker.example.com/mcp"
TTL = 604800


@pytest.fixture
def app_config(tmp_path: Any) -> dict[str, Any]:
    return base_config(tmp_path, OAUTH_RESOURCES=OTHER_RESOURCE)


@pytest.fixture(autouse=True)
def alice(state: Any) -> None:
    """The person the codes in these tests were issued for."""
    add_person(state.storage, "alice")


@pytest.fixture
def public_id(make_client: Any) -> str:
    cid, _ = make_client(
        ("authorization_code", "refresh_token"),
        auth_method="none",
        redirect_uris=(REDIRECT,),
        scope="mcp:tools mcp:resources",
    )
    return cid


@pytest.fixture
def introspector(make_client: Any) -> tuple[str, str]:
    """A resource server allowed to introspect any token."""
    cid, secret = make_client(("client_credentials",), privileges=frozenset({"introspect"}))
    assert secret is not None
    return cid, secret


@pytest.fixture
def first(client: Any, state: Any, public_id: str) -> dict[str, Any]:
    """The first pair of a family, from a code exchange; plus ``family_id``."""
    issued = store_code(state.token_store, public_id, scope="mcp:tools mcp:resources")
    r = client.post("/oauth/token", data=issued.params())
    assert r.status_code == 200, r.json
    return dict(r.json) | {"family_id": issued.family_id}


def refresh(client: Any, client_id: str, refresh_token: str, **extra: str) -> Any:
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id, **extra}
    return client.post("/oauth/token", data=data)


def assert_error(r: Any, status: int, error: str) -> None:
    assert r.status_code == status, r.get_data(as_text=True)
    assert r.json["error"] == error
    assert r.headers["Cache-Control"] == "no-store"


def works(client: Any, access_token: str) -> bool:
    """Whether the guard accepts the access token (see the note on ``g`` in the code tests)."""
    g.pop("oauth_token", None)
    r = client.get("/mcp/whoami", headers={"Authorization": f"Bearer {access_token}"})
    assert r.status_code in (200, 401), r.status_code
    return bool(r.status_code == 200)


def stored(state: Any, refresh_token: str) -> Any:
    return state.token_store.get_refresh_token(secrets.token_hash(refresh_token))


def introspect(client: Any, caller: tuple[str, str], token: str) -> dict[str, Any]:
    r = client.post("/oauth/introspect", data={"token": token}, auth=caller)
    assert r.status_code == 200
    return dict(r.json)


# -- rotation -------------------------------------------------------------------------------------


def test_refresh_rotates_both_tokens(client: Any, state: Any, public_id: str, first: dict[str, Any]) -> None:
    r = refresh(client, public_id, first["refresh_token"])
    assert r.status_code == 200, r.json
    assert r.headers["Cache-Control"] == "no-store"
    body = r.json
    assert set(body) == {"access_token", "token_type", "expires_in", "scope", "refresh_token"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert body["scope"] == "mcp:tools mcp:resources"
    assert body["refresh_token"] != first["refresh_token"]
    assert body["access_token"] != first["access_token"]

    claims = state.access_tokens.decode(body["access_token"], MCP_RESOURCE)
    assert (claims.sub, claims.client_id, claims.aud) == ("alice", public_id, MCP_RESOURCE)
    assert works(client, body["access_token"])

    old, new = stored(state, first["refresh_token"]), stored(state, body["refresh_token"])
    assert old.rotated_at is not None
    assert old.successor_blob is None  # grace window off: nothing kept
    assert new.rotated_at is None
    assert (new.family_id, new.client_id, new.subject, new.scope, new.resource) == (
        first["family_id"],
        public_id,
        "alice",
        "mcp:tools mcp:resources",
        MCP_RESOURCE,
    )
    # Each new refresh token gets a fresh lifetime.
    assert new.expires_at - new.issued_at == TTL
    assert abs(new.issued_at - time.time()) < 5


def test_refresh_tokens_rest_in_storage_only_as_hashes(
    client: Any, state: Any, public_id: str, first: dict[str, Any], tmp_path: Path
) -> None:
    second = refresh(client, public_id, first["refresh_token"]).json
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("oauth.sqlite3*"))
    assert raw, "the SQLite files are where the config says"
    for value in (first["refresh_token"], second["refresh_token"]):
        assert value.encode() not in raw
        assert secrets.token_hash(value) in raw


def test_refresh_twice_then_replay_of_the_first_revokes_the_family(
    client: Any, state: Any, public_id: str, first: dict[str, Any], introspector: tuple[str, str]
) -> None:
    second = refresh(client, public_id, first["refresh_token"]).json
    third = refresh(client, public_id, second["refresh_token"]).json
    assert all(works(client, p["access_token"]) for p in (first, second, third))
    assert introspect(client, introspector, third["refresh_token"])["active"] is True

    r = refresh(client, public_id, first["refresh_token"])
    assert_error(r, 400, "invalid_grant")
    assert "already used" in r.json["error_description"]

    # The whole family: every access token and the current refresh token.
    assert not any(works(client, p["access_token"]) for p in (first, second, third))
    assert_error(refresh(client, public_id, third["refresh_token"]), 400, "invalid_grant")
    assert introspect(client, introspector, third["refresh_token"]) == {"active": False}
    assert introspect(client, introspector, third["access_token"]) == {"active": False}
    assert state.token_store.list_families(client_id=public_id) == []


def test_replay_of_the_immediate_predecessor_revokes_when_the_grace_window_is_off(
    client: Any, public_id: str, first: dict[str, Any]
) -> None:
    second = refresh(client, public_id, first["refresh_token"]).json
    assert_error(refresh(client, public_id, first["refresh_token"]), 400, "invalid_grant")
    assert not works(client, second["access_token"])
    assert_error(refresh(client, public_id, second["refresh_token"]), 400, "invalid_grant")


def test_another_family_is_untouched_by_a_replay(
    client: Any, state: Any, public_id: str, first: dict[str, Any]
) -> None:
    other = client.post("/oauth/token", data=store_code(state.token_store, public_id).params()).json
    refresh(client, public_id, first["refresh_token"])
    refresh(client, public_id, first["refresh_token"])  # replay: revokes the first family only
    assert works(client, other["access_token"])
    assert refresh(client, public_id, other["refresh_token"]).status_code == 200


# -- binding and validity -------------------------------------------------------------------------


def test_refresh_token_of_another_client_is_refused(
    client: Any, public_id: str, first: dict[str, Any], make_client: Any
) -> None:
    thief, _ = make_client(("authorization_code", "refresh_token"), auth_method="none", redirect_uris=(REDIRECT,))
    r = refresh(client, thief, first["refresh_token"])
    assert_error(r, 400, "invalid_grant")
    assert "another client" in r.json["error_description"]
    # The owner's token is not spent by the attempt.
    assert refresh(client, public_id, first["refresh_token"]).status_code == 200


def test_expired_refresh_token_is_refused(
    client: Any, state: Any, public_id: str, first: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    expires_at = stored(state, first["refresh_token"]).expires_at
    monkeypatch.setattr(state, "now", lambda: expires_at)
    r = refresh(client, public_id, first["refresh_token"])
    assert_error(r, 400, "invalid_grant")
    assert "expired" in r.json["error_description"]


@pytest.mark.parametrize("change", ["disabled", "deleted"])
def test_refresh_ends_when_the_person_can_no_longer_sign_in(
    client: Any, state: Any, public_id: str, first: dict[str, Any], change: str
) -> None:
    if change == "disabled":
        add_person(state.storage, "alice", disabled=True)
    else:
        assert state.storage.delete_user("alice")
    r = refresh(client, public_id, first["refresh_token"])
    assert_error(r, 400, "invalid_grant")
    assert "can no longer sign in" in r.json["error_description"]
    # The grant is over, not just paused: the family's tokens are revoked.
    assert not works(client, first["access_token"])
    add_person(state.storage, "alice")
    assert_error(refresh(client, public_id, first["refresh_token"]), 400, "invalid_grant")


def test_missing_refresh_token_is_invalid_request(client: Any, public_id: str) -> None:
    r = client.post("/oauth/token", data={"grant_type": "refresh_token", "client_id": public_id})
    assert_error(r, 400, "invalid_request")


@pytest.mark.parametrize("value", ["x", "A" * 4096, "eyJ.a.b", "\u00e9\u00e9", "a b", "\U0001f4a5"])
def test_unknown_or_garbage_refresh_token_is_invalid_grant(client: Any, public_id: str, value: str) -> None:
    assert_error(refresh(client, public_id, value), 400, "invalid_grant")


def test_repeated_or_oversized_refresh_token_is_invalid_request(client: Any, public_id: str) -> None:
    for body in (
        f"grant_type=refresh_token&client_id={public_id}&refresh_token=a&refresh_token=b",
        f"grant_type=refresh_token&client_id={public_id}&refresh_token=" + "A" * 4097,
    ):
        r = client.post("/oauth/token", data=body, content_type="application/x-www-form-urlencoded")
        assert_error(r, 400, "invalid_request")


def test_client_not_registered_for_refresh_is_refused(client: Any, state: Any, make_client: Any) -> None:
    # A confidential client registered for codes only never gets a refresh token, and the
    # token endpoint refuses the grant for it even with a token of another client's family.
    cid, secret = make_client(("authorization_code",), redirect_uris=(REDIRECT,))
    r = client.post(
        "/oauth/token", data={"grant_type": "refresh_token", "refresh_token": "x" * 43}, auth=(cid, secret)
    )
    assert_error(r, 400, "unauthorized_client")


# -- scope and resource ---------------------------------------------------------------------------


def test_scope_may_narrow_for_the_access_token_only(
    client: Any, state: Any, public_id: str, first: dict[str, Any], introspector: tuple[str, str]
) -> None:
    r = refresh(client, public_id, first["refresh_token"], scope="mcp:resources")
    assert r.status_code == 200
    assert r.json["scope"] == "mcp:resources"
    assert state.access_tokens.decode(r.json["access_token"], MCP_RESOURCE).scopes == {"mcp:resources"}
    # RFC 6749 §6: the new refresh token keeps the original grant's scope.
    assert stored(state, r.json["refresh_token"]).scope == "mcp:tools mcp:resources"
    assert introspect(client, introspector, r.json["refresh_token"])["scope"] == "mcp:tools mcp:resources"
    again = refresh(client, public_id, r.json["refresh_token"])
    assert again.json["scope"] == "mcp:tools mcp:resources"


@pytest.mark.parametrize(
    "scope, error",
    [
        ("mcp:tools mcp:prompts", "invalid_scope"),
        ("mcp:prompts", "invalid_scope"),
        ("admin", "invalid_scope"),
        ("bad\\scope", "invalid_scope"),
    ],
)
def test_scope_may_not_widen(
    client: Any, state: Any, public_id: str, first: dict[str, Any], scope: str, error: str
) -> None:
    assert_error(refresh(client, public_id, first["refresh_token"], scope=scope), 400, error)
    # A refused request does not rotate the token nor revoke anything.
    assert stored(state, first["refresh_token"]).rotated_at is None
    assert works(client, first["access_token"])
    assert refresh(client, public_id, first["refresh_token"]).status_code == 200


@pytest.mark.parametrize("sent", [MCP_RESOURCE, MCP_RESOURCE + "/", "HTTP://127.0.0.1:8000/mcp"])
def test_the_bound_resource_may_be_named(client: Any, public_id: str, first: dict[str, Any], sent: str) -> None:
    assert refresh(client, public_id, first["refresh_token"], resource=sent).status_code == 200


@pytest.mark.parametrize("sent", [OTHER_RESOURCE, "https://unknown.example/mcp", "urn:nope", "relative/path"])
def test_another_resource_is_invalid_target(
    client: Any, state: Any, public_id: str, first: dict[str, Any], sent: str
) -> None:
    assert_error(refresh(client, public_id, first["refresh_token"], resource=sent), 400, "invalid_target")
    assert stored(state, first["refresh_token"]).rotated_at is None


# -- revocation (RFC 7009) and introspection (RFC 7662) -----------------------------------------


def test_revoking_the_refresh_token_revokes_the_family(
    client: Any, public_id: str, first: dict[str, Any]
) -> None:
    second = refresh(client, public_id, first["refresh_token"]).json
    r = client.post("/oauth/revoke", data={"token": second["refresh_token"], "client_id": public_id})
    assert r.status_code == 200
    assert not works(client, first["access_token"])
    assert not works(client, second["access_token"])
    assert_error(refresh(client, public_id, second["refresh_token"]), 400, "invalid_grant")


def test_revoking_a_rotated_refresh_token_revokes_the_family(
    client: Any, public_id: str, first: dict[str, Any]
) -> None:
    second = refresh(client, public_id, first["refresh_token"]).json
    client.post("/oauth/revoke", data={"token": first["refresh_token"], "client_id": public_id})
    assert not works(client, second["access_token"])
    assert_error(refresh(client, public_id, second["refresh_token"]), 400, "invalid_grant")


def test_another_client_cannot_revoke_the_family(
    client: Any, public_id: str, first: dict[str, Any], make_client: Any
) -> None:
    other, _ = make_client(("authorization_code",), auth_method="none", redirect_uris=(REDIRECT,))
    r = client.post("/oauth/revoke", data={"token": first["refresh_token"], "client_id": other})
    assert r.status_code == 200  # RFC 7009 §2.2: no hint either way
    assert works(client, first["access_token"])
    assert refresh(client, public_id, first["refresh_token"]).status_code == 200


def test_introspection_of_current_and_rotated_refresh_tokens(
    client: Any, public_id: str, first: dict[str, Any], introspector: tuple[str, str]
) -> None:
    current = introspect(client, introspector, first["refresh_token"])
    assert current["active"] is True
    assert current["token_type"] == "refresh_token"
    assert (current["client_id"], current["sub"], current["aud"]) == (public_id, "alice", MCP_RESOURCE)
    assert current["exp"] - current["iat"] == TTL

    second = refresh(client, public_id, first["refresh_token"]).json
    assert introspect(client, introspector, first["refresh_token"]) == {"active": False}
    assert introspect(client, introspector, second["refresh_token"])["active"] is True


# -- grace window --------------------------------------------------------------------------------


class TestGraceWindow:
    GRACE = 30

    @pytest.fixture
    def app_config(self, tmp_path: Any) -> dict[str, Any]:
        return base_config(tmp_path, OAUTH_REFRESH_GRACE_SECONDS=self.GRACE)

    @pytest.fixture
    def clock(self, state: Any, monkeypatch: pytest.MonkeyPatch) -> list[int]:
        """state.now() reads clock[0]; tests move it forward."""
        now = [int(time.time())]
        monkeypatch.setattr(state, "now", lambda: now[0])
        return now

    def test_immediate_predecessor_inside_the_window_gets_the_same_pair(
        self, client: Any, state: Any, public_id: str, first: dict[str, Any], clock: list[int]
    ) -> None:
        second = refresh(client, public_id, first["refresh_token"]).json
        clock[0] += 10
        again = refresh(client, public_id, first["refresh_token"])
        assert again.status_code == 200, again.json
        assert again.json["access_token"] == second["access_token"]
        assert again.json["refresh_token"] == second["refresh_token"]
        assert again.json["scope"] == second["scope"]
        assert again.json["expires_in"] == second["expires_in"] - 10
        assert set(again.json) == set(second)
        # Nothing was revoked: the pair works, and refreshing goes on from it.
        assert works(client, second["access_token"]) and works(client, first["access_token"])
        assert refresh(client, public_id, second["refresh_token"]).status_code == 200

    def test_the_kept_response_is_sealed(
        self, client: Any, state: Any, public_id: str, first: dict[str, Any], tmp_path: Path
    ) -> None:
        second = refresh(client, public_id, first["refresh_token"]).json
        blob = stored(state, first["refresh_token"]).successor_blob
        assert blob is not None
        raw = b"".join(p.read_bytes() for p in tmp_path.glob("oauth.sqlite3*"))
        for value in (second["refresh_token"], second["access_token"]):
            assert value.encode() not in blob
            assert value.encode() not in raw
        assert stored(state, second["refresh_token"]).successor_blob is None

    def test_the_window_ends(
        self, client: Any, public_id: str, first: dict[str, Any], clock: list[int]
    ) -> None:
        second = refresh(client, public_id, first["refresh_token"]).json
        clock[0] += self.GRACE
        assert_error(refresh(client, public_id, first["refresh_token"]), 400, "invalid_grant")
        assert not works(client, second["access_token"])
        assert_error(refresh(client, public_id, second["refresh_token"]), 400, "invalid_grant")

    def test_an_older_generation_always_revokes(
        self, client: Any, public_id: str, first: dict[str, Any], clock: list[int]
    ) -> None:
        second = refresh(client, public_id, first["refresh_token"]).json
        clock[0] += 1
        third = refresh(client, public_id, second["refresh_token"]).json
        clock[0] += 1
        # first's successor (second) has itself been rotated: first is two generations back.
        assert_error(refresh(client, public_id, first["refresh_token"]), 400, "invalid_grant")
        assert not works(client, third["access_token"])
        assert_error(refresh(client, public_id, third["refresh_token"]), 400, "invalid_grant")

    def test_the_current_predecessor_still_gets_the_pair_after_several_generations(
        self, client: Any, public_id: str, first: dict[str, Any], clock: list[int]
    ) -> None:
        second = refresh(client, public_id, first["refresh_token"]).json
        third = refresh(client, public_id, second["refresh_token"]).json
        again = refresh(client, public_id, second["refresh_token"])
        assert again.status_code == 200
        assert again.json["refresh_token"] == third["refresh_token"]

    def test_a_widened_scope_inside_the_window_is_refused_without_revoking(
        self, client: Any, public_id: str, first: dict[str, Any]
    ) -> None:
        second = refresh(client, public_id, first["refresh_token"]).json
        r = refresh(client, public_id, first["refresh_token"], scope="mcp:prompts")
        assert_error(r, 400, "invalid_scope")
        assert works(client, second["access_token"])

    def test_another_client_gets_nothing_inside_the_window(
        self, client: Any, public_id: str, first: dict[str, Any], make_client: Any
    ) -> None:
        refresh(client, public_id, first["refresh_token"])
        thief, _ = make_client(("authorization_code", "refresh_token"), auth_method="none", redirect_uris=(REDIRECT,))
        assert_error(refresh(client, thief, first["refresh_token"]), 400, "invalid_grant")

    def test_a_revoked_family_gives_nothing_inside_the_window(
        self, client: Any, public_id: str, first: dict[str, Any]
    ) -> None:
        second = refresh(client, public_id, first["refresh_token"]).json
        client.post("/oauth/revoke", data={"token": second["refresh_token"], "client_id": public_id})
        assert_error(refresh(client, public_id, first["refresh_token"]), 400, "invalid_grant")
