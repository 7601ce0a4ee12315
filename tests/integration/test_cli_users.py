"""``oauth user ...`` and ``oauth consent ...``: people and their remembered consents."""

from __future__ import annotations

from typing import Any

import pytest

from app.models import Consent, RefreshToken
from app.users import LocalAuthenticator


def run(app: Any, *args: str, input: str | None = None) -> Any:
    return app.test_cli_runner().invoke(args=["oauth", *args], input=input)


def test_create_list_and_sign_in(app: Any, state: Any) -> None:
    r = run(app, "user", "create", "alice", "--password", "a long password")
    assert r.exit_code == 0, r.output
    assert "created user alice" in r.output
    stored = state.storage.get_user("alice")
    assert stored.password_hash.startswith("$argon2id$")
    assert "a long password" not in stored.password_hash
    assert LocalAuthenticator(state.storage).authenticate("alice", "a long password") == "alice"
    listing = run(app, "user", "list")
    assert listing.exit_code == 0
    assert listing.output.startswith("alice\tcreated ")
    assert "active" in listing.output and "argon2" not in listing.output


def test_create_prompts_twice_for_the_password(app: Any, state: Any) -> None:
    r = run(app, "user", "create", "bob", input="prompted password\nprompted password\n")
    assert r.exit_code == 0, r.output
    assert "prompted password" not in r.output  # hidden input
    assert LocalAuthenticator(state.storage).authenticate("bob", "prompted password") == "bob"


def test_create_refuses_a_mismatched_confirmation(app: Any, state: Any) -> None:
    r = run(app, "user", "create", "bob", input="first password\nsecond password\n")
    assert r.exit_code != 0
    assert state.storage.get_user("bob") is None


@pytest.mark.parametrize(
    ("username", "password", "message"),
    [
        ("alice", "short", "at least 8"),
        ("has space", "a long password", "username must be"),
        ("", "a long password", "username must be"),
        ("-dash", "a long password", "username must be"),
        ("x" * 65, "a long password", "username must be"),
    ],
)
def test_create_refuses_bad_input(app: Any, state: Any, username: str, password: str, message: str) -> None:
    r = run(app, "user", "create", "--password", password, "--", username)
    assert r.exit_code == 1
    assert message in r.output
    assert state.storage.list_users() == []


def test_create_refuses_an_existing_user(app: Any) -> None:
    assert run(app, "user", "create", "alice", "--password", "a long password").exit_code == 0
    r = run(app, "user", "create", "alice", "--password", "another password")
    assert r.exit_code == 1 and "already exists" in r.output


def test_set_password(app: Any, state: Any) -> None:
    run(app, "user", "create", "alice", "--password", "a long password")
    old_hash = state.storage.get_user("alice").password_hash
    r = run(app, "user", "set-password", "alice", "--password", "a newer password")
    assert r.exit_code == 0, r.output
    auth = LocalAuthenticator(state.storage)
    assert auth.authenticate("alice", "a newer password") == "alice"
    assert auth.authenticate("alice", "a long password") is None
    assert state.storage.get_user("alice").password_hash != old_hash
    assert run(app, "user", "set-password", "nobody", "--password", "a newer password").exit_code == 1
    assert run(app, "user", "set-password", "alice", "--password", "short").exit_code == 1


def _grant(state: Any, subject: str, client_id: str) -> str:
    now = state.now()
    family = f"fam-{subject}-{client_id}"
    state.token_store.save_refresh_token(
        RefreshToken(
            token_hash=family.encode().ljust(32, b"0")[:32],
            family_id=family,
            client_id=client_id,
            subject=subject,
            scope="mcp:tools",
            resource="http://127.0.0.1:8000/mcp",
            issued_at=now,
            expires_at=now + 3600,
        )
    )
    return family


def test_set_password_can_revoke_grants(app: Any, state: Any) -> None:
    run(app, "user", "create", "alice", "--password", "a long password")
    _grant(state, "alice", "c1")
    r = run(app, "user", "set-password", "alice", "--password", "a newer password", "--revoke-grants")
    assert r.exit_code == 0 and "revoked 1 grants" in r.output
    assert state.token_store.list_families(subject="alice") == []


def test_delete_removes_the_user_consents_and_grants(app: Any, state: Any) -> None:
    run(app, "user", "create", "alice", "--password", "a long password")
    run(app, "user", "create", "bob", "--password", "a long password")
    state.storage.save_consent(Consent("alice", "c1", frozenset({"mcp:tools"}), state.now()))
    state.storage.save_consent(Consent("bob", "c1", frozenset({"mcp:tools"}), state.now()))
    _grant(state, "alice", "c1")
    _grant(state, "bob", "c1")
    r = run(app, "user", "delete", "alice")
    assert r.exit_code == 0, r.output
    assert "revoked 1 grants" in r.output
    assert state.storage.get_user("alice") is None
    assert state.storage.get_consent("alice", "c1") is None
    assert state.token_store.list_families(subject="alice") == []
    # bob is untouched
    assert state.storage.get_user("bob") is not None
    assert state.storage.get_consent("bob", "c1") is not None
    assert len(state.token_store.list_families(subject="bob")) == 1
    assert run(app, "user", "delete", "alice").exit_code == 1


@pytest.fixture
def consents(app: Any, state: Any, make_client: Any) -> tuple[str, str]:
    c1, _ = make_client(("authorization_code",), auth_method="none", redirect_uris=("http://127.0.0.1/cb",))
    c2, _ = make_client(("authorization_code",), auth_method="none", redirect_uris=("http://127.0.0.1/cb",))
    run(app, "user", "create", "alice", "--password", "a long password")
    run(app, "user", "create", "bob", "--password", "a long password")
    now = state.now()
    state.storage.save_consent(Consent("alice", c1, frozenset({"mcp:tools", "mcp:resources"}), now))
    state.storage.save_consent(Consent("alice", c2, frozenset({"mcp:tools"}), now))
    state.storage.save_consent(Consent("bob", c1, frozenset({"mcp:tools"}), now))
    return c1, c2


def test_consent_list_with_filters(app: Any, consents: tuple[str, str]) -> None:
    c1, c2 = consents
    lines = run(app, "consent", "list").output.strip().splitlines()
    assert len(lines) == 3
    assert any(line.startswith(f"alice\t{c1}\tmcp:resources mcp:tools\tgranted ") for line in lines)
    alice = run(app, "consent", "list", "--user", "alice").output.strip().splitlines()
    assert {line.split("\t")[1] for line in alice} == {c1, c2}
    to_c1 = run(app, "consent", "list", "--client", c1).output.strip().splitlines()
    assert {line.split("\t")[0] for line in to_c1} == {"alice", "bob"}
    one = run(app, "consent", "list", "--user", "bob", "--client", c2).output.strip()
    assert one == ""


def test_consent_revoke_one_client(app: Any, state: Any, consents: tuple[str, str]) -> None:
    c1, c2 = consents
    r = run(app, "consent", "revoke", "--user", "alice", "--client", c1)
    assert r.exit_code == 0 and "revoked 1 consents" in r.output
    assert state.storage.get_consent("alice", c1) is None
    assert state.storage.get_consent("alice", c2) is not None
    assert state.storage.get_consent("bob", c1) is not None


def test_consent_revoke_all_of_a_person(app: Any, state: Any, consents: tuple[str, str]) -> None:
    c1, c2 = consents
    r = run(app, "consent", "revoke", "--user", "alice")
    assert r.exit_code == 0 and "revoked 2 consents" in r.output
    assert state.storage.get_consent("alice", c2) is None
    assert state.storage.get_consent("bob", c1) is not None


def test_consent_revoke_needs_a_user(app: Any, consents: tuple[str, str]) -> None:
    r = run(app, "consent", "revoke", "--client", consents[0])
    assert r.exit_code == 2 and "--user" in r.output
