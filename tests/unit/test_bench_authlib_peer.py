"""bench/authlib_peer.py: the Authlib reference issues RFC 9068 JWTs and its route refuses bad ones."""

from __future__ import annotations

import base64
import json
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import ECKey

from bench.authlib_peer import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, create_app

ISSUER = "http://peer.test"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def basic(secret: str = DEFAULT_CLIENT_SECRET) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{DEFAULT_CLIENT_ID}:{secret}".encode()).decode()} | FORM


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "peer.sqlite3"
    monkeypatch.setenv("AUTHLIB_PEER_DB", str(path))
    monkeypatch.setenv("AUTHLIB_PEER_ISSUER", ISSUER)
    return path


@pytest.fixture
def client(db: Path) -> FlaskClient:
    return create_app().test_client()


def test_client_credentials_token_is_an_rfc9068_jwt(client: FlaskClient) -> None:
    r = client.post("/oauth/token", data="grant_type=client_credentials&scope=mcp%3Atools", headers=basic())
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    token = r.get_json()["access_token"]
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header == {"typ": "at+jwt", "alg": "ES256"}
    r = client.get("/whoami", headers={"Authorization": "Bearer " + token})
    assert r.status_code == 200
    assert r.get_json() == {"sub": DEFAULT_CLIENT_ID, "client_id": DEFAULT_CLIENT_ID, "scope": "mcp:tools"}


def test_wrong_secret_is_refused(client: FlaskClient) -> None:
    r = client.post("/oauth/token", data="grant_type=client_credentials", headers=basic("wrong"))
    assert r.status_code == 401 and r.get_json()["error"] == "invalid_client"


def test_second_worker_shares_the_key(db: Path) -> None:
    first, second = create_app().test_client(), create_app().test_client()
    token = first.post("/oauth/token", data="grant_type=client_credentials&scope=mcp%3Atools", headers=basic())
    r = second.get("/whoami", headers={"Authorization": "Bearer " + token.get_json()["access_token"]})
    assert r.status_code == 200


NOW = int(time.time())
GOOD = {
    "iss": ISSUER,
    "aud": ISSUER + "/mcp",
    "sub": "c",
    "client_id": "c",
    "iat": NOW,
    "exp": NOW + 60,
    "jti": "j",
    "scope": "mcp:tools",
}


@pytest.mark.parametrize(
    ("claims", "header", "status"),
    [
        (GOOD, {"alg": "ES256", "typ": "at+jwt"}, 200),
        (GOOD, {"alg": "ES256"}, 401),
        (GOOD, {"alg": "ES256", "typ": "JWT"}, 401),
        (GOOD | {"iss": "http://other.test"}, {"alg": "ES256", "typ": "at+jwt"}, 401),
        (GOOD | {"aud": "http://other.test/mcp"}, {"alg": "ES256", "typ": "at+jwt"}, 401),
        ({k: v for k, v in GOOD.items() if k != "aud"}, {"alg": "ES256", "typ": "at+jwt"}, 401),
        (GOOD | {"iat": NOW - 7200, "exp": NOW - 3600}, {"alg": "ES256", "typ": "at+jwt"}, 401),
        ({k: v for k, v in GOOD.items() if k != "exp"}, {"alg": "ES256", "typ": "at+jwt"}, 401),
        (GOOD | {"scope": "mcp:resources"}, {"alg": "ES256", "typ": "at+jwt"}, 403),
    ],
    ids=["good", "no-typ", "typ-jwt", "iss", "aud", "no-aud", "expired", "no-exp", "scope"],
)
def test_whoami_checks_the_jwt(
    client: FlaskClient, db: Path, claims: dict[str, Any], header: dict[str, str], status: int
) -> None:
    # NOW was taken when the module was collected, possibly minutes ago in a full run: shift the
    # times so that GOOD is still valid (and the expired case still expired) now.
    shift = int(time.time()) - NOW
    claims = {k: v + shift if k in ("iat", "exp") else v for k, v in claims.items()}
    with closing(sqlite3.connect(db)) as conn:
        (jwk,) = conn.execute("SELECT jwk FROM signing_key").fetchone()
    token = jwt.encode(header, claims, ECKey.import_key(json.loads(jwk)))
    assert client.get("/whoami", headers={"Authorization": "Bearer " + token}).status_code == status


def test_foreign_key_is_refused(client: FlaskClient) -> None:
    now = int(time.time())
    claims = GOOD | {"iat": now, "exp": now + 60}  # valid but for the key
    token = jwt.encode({"alg": "ES256", "typ": "at+jwt"}, claims, ECKey.generate_key("P-256", private=True))
    assert client.get("/whoami", headers={"Authorization": "Bearer " + token}).status_code == 401
