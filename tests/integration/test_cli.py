"""The operator CLI (``flask --app wsgi oauth ...``), run in-process with Flask's CliRunner."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import Result
from flask import Flask
from flask.testing import FlaskClient

from app.state import OAuthState
from tests.support.checks import basic, bearer

CC = {"grant_type": "client_credentials"}


def run(app: Flask, *args: str, ok: bool = True) -> Result:
    result = app.test_cli_runner().invoke(args=["oauth", *args])
    if ok:
        assert result.exit_code == 0, (result.output, result.exception)
    return result


def create(app: Flask, *args: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(run(app, "client", "create", *args).output)
    return out


def test_init_is_idempotent(app: Flask, state: OAuthState) -> None:
    first = run(app, "init").output
    assert "schema v" in first and state.keys.current().kid in first
    run(app, "init")
    assert len(state.storage.list_signing_keys()) == 1


def test_client_create_prints_the_secret_once_and_it_works(app: Flask, client: FlaskClient, state: OAuthState) -> None:
    out = create(app, "--name", "worker-a", "--scope", "mcp:tools")
    assert out["client_name"] == "worker-a"
    assert out["grant_types"] == ["client_credentials"]
    assert out["token_endpoint_auth_method"] == "client_secret_basic"
    secret = out["client_secret"]
    stored = state.storage.get_client(out["client_id"])
    assert stored is not None and stored.registered_by == "cli"
    assert secret.encode() not in repr(stored).encode()  # only the hash is kept
    r = client.post("/oauth/token", data=CC, headers=basic(out["client_id"], secret))
    assert r.status_code == 200 and r.json["scope"] == "mcp:tools"
    assert client.get("/mcp/whoami", headers=bearer(r.json["access_token"])).status_code == 200
    # Listing never shows the secret again.
    listing = run(app, "client", "list").output
    assert out["client_id"] in listing and "worker-a" in listing and secret not in listing


def test_client_create_public_and_introspect(app: Flask, state: OAuthState) -> None:
    public = create(
        app, "--name", "cli-app", "--grant", "authorization_code", "--redirect-uri", "http://127.0.0.1/cb", "--public"
    )
    assert public["token_endpoint_auth_method"] == "none" and "client_secret" not in public
    rs = create(app, "--name", "resource-server", "--introspect")
    assert state.storage.get_client(rs["client_id"]).privileges == frozenset({"introspect"})  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "x", "--scope", "root"], "scope"),
        (["--name", "x", "--grant", "authorization_code"], "redirect_uris"),
        (["--name", "x", "--grant", "authorization_code", "--redirect-uri", "http://evil.example/cb"], "https"),
        (["--name", "x", "--public"], "token_endpoint_auth_method"),  # client_credentials needs a secret
        (["--name", "x", "--grant", "password"], "password"),
    ],
)
def test_client_create_validates(app: Flask, state: OAuthState, args: list[str], message: str) -> None:
    result = run(app, "client", "create", *args, ok=False)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    assert state.storage.list_clients() == []


def test_client_delete(app: Flask, client: FlaskClient, state: OAuthState) -> None:
    out = create(app, "--name", "doomed")
    assert out["client_id"] in run(app, "client", "delete", out["client_id"]).output
    assert state.storage.get_client(out["client_id"]) is None
    r = client.post("/oauth/token", data=CC, headers=basic(out["client_id"], out["client_secret"]))
    assert r.status_code == 401
    missing = run(app, "client", "delete", out["client_id"], ok=False)
    assert missing.exit_code != 0 and "no client" in missing.output


def test_rotate_secret(app: Flask, client: FlaskClient) -> None:
    out = create(app, "--name", "rotating")
    rotated = json.loads(run(app, "client", "rotate-secret", out["client_id"]).output)
    assert rotated["client_id"] == out["client_id"]
    assert rotated["client_secret"] != out["client_secret"]
    assert rotated["client_secret_expires_at"] == 0
    old = client.post("/oauth/token", data=CC, headers=basic(out["client_id"], out["client_secret"]))
    assert old.status_code == 401 and old.json["error"] == "invalid_client"
    new = client.post("/oauth/token", data=CC, headers=basic(out["client_id"], rotated["client_secret"]))
    assert new.status_code == 200


def test_rotate_secret_with_expiry(app: Flask, state: OAuthState) -> None:
    out = create(app, "--name", "expiring")
    rotated = json.loads(run(app, "client", "rotate-secret", out["client_id"], "--expires-in", "60").output)
    assert 0 < rotated["client_secret_expires_at"] - state.now() <= 60


def test_rotate_secret_refusals(app: Flask) -> None:
    assert "no client" in run(app, "client", "rotate-secret", "nobody", ok=False).output
    public = create(
        app, "--name", "p", "--grant", "authorization_code", "--redirect-uri", "http://127.0.0.1/cb", "--public"
    )
    assert "public" in run(app, "client", "rotate-secret", public["client_id"], ok=False).output


def test_iat_create_lets_a_worker_register(app: Flask, client: FlaskClient) -> None:
    out = json.loads(run(app, "iat", "create", "--expires-in", "600", "--description", "ops").output)
    token = out["initial_access_token"]
    assert out["expires_at"] > 0
    r = client.post("/oauth/register", json={"grant_types": ["client_credentials"]}, headers=bearer(token))
    assert r.status_code == 201


def test_iat_that_never_expires(app: Flask) -> None:
    out = json.loads(run(app, "iat", "create", "--expires-in", "0").output)
    assert out["expires_at"] == 0


def test_keys_rotate_and_list(app: Flask, client: FlaskClient, state: OAuthState) -> None:
    old = state.keys.current().kid
    out = run(app, "keys", "rotate").output
    new = state.keys.current().kid
    assert new != old and new in out
    listing = run(app, "keys", "list").output
    lines = {line.split("\t")[0]: line for line in listing.strip().splitlines()}
    assert "active" in lines[new] and "retired" in lines[old]
    kids = {k["kid"] for k in client.get("/.well-known/jwks.json").json["keys"]}
    assert kids == {old, new}
