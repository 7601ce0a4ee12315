"""Restarting the server loses nothing: clients, signing keys, consents and unexpired tokens all
survive a stop and start of gunicorn, on SQLite and on PostgreSQL (the earlier Node version kept
everything in memory and lost it on every restart)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.models import Consent
from plugins.storage.sql import SQLStorage
from tests.support.backends import postgres_schema
from tests.support.deploy import PERSON, prepare
from tests.support.grants import store_code
from tests.support.servers import free_port, start_gunicorn

pytestmark = [pytest.mark.slow]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=[pytest.mark.service, pytest.mark.postgresql])])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/oauth.sqlite3"
    else:
        with postgres_schema() as url:
            yield url


def test_a_restart_loses_no_client_key_consent_or_token(tmp_path: Path, storage_url: str) -> None:
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    env = {"OAUTH_ISSUER": issuer, "OAUTH_STORAGE_URL": storage_url}
    prepared = prepare(env)
    direct = SQLStorage.from_url(storage_url, {})
    server = start_gunicorn(env, tmp_path, port=port, workers=2, init=False)
    try:
        registered = httpx.post(
            server.url + "/oauth/register",
            json={"redirect_uris": ["http://127.0.0.1:9/cb"], "token_endpoint_auth_method": "none"},
        ).json()
        issued = store_code(direct, prepared.client[0], resource=issuer + "/mcp")
        pair = httpx.post(server.url + "/oauth/token", data=issued.params(), auth=prepared.client).json()
        worker = httpx.post(
            server.url + "/oauth/token", data={"grant_type": "client_credentials"}, auth=prepared.worker
        ).json()
        revoked = httpx.post(
            server.url + "/oauth/token", data={"grant_type": "client_credentials"}, auth=prepared.worker
        ).json()
        assert httpx.post(
            server.url + "/oauth/revoke", data={"token": revoked["access_token"]}, auth=prepared.worker
        ).status_code == 200
        direct.save_consent(Consent(PERSON, prepared.client[0], frozenset({"mcp:tools"}), 1_700_000_000))
        jwks_before = httpx.get(server.url + "/.well-known/jwks.json").json()
    finally:
        server.stop()

    server = start_gunicorn(env, tmp_path, port=port, workers=2, init=False)
    try:
        # The dynamically registered client, read back with its registration access token.
        r = httpx.get(
            f"{server.url}/oauth/register/{registered['client_id']}",
            headers={"Authorization": f"Bearer {registered['registration_access_token']}"},
        )
        assert r.status_code == 200 and r.json()["redirect_uris"] == ["http://127.0.0.1:9/cb"]
        # The same signing keys, so tokens minted before the restart still verify.
        assert httpx.get(server.url + "/.well-known/jwks.json").json() == jwks_before
        for access in (pair["access_token"], worker["access_token"]):
            r = httpx.get(server.url + "/mcp/whoami", headers={"Authorization": f"Bearer {access}"})
            assert r.status_code == 200, r.text
        r = httpx.get(server.url + "/mcp/whoami", headers={"Authorization": f"Bearer {revoked['access_token']}"})
        assert r.status_code == 401  # and revocations too
        r = httpx.post(
            server.url + "/oauth/introspect", data={"token": pair["refresh_token"]}, auth=prepared.introspector
        )
        assert r.json()["active"] is True
        r = httpx.post(
            server.url + "/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": pair["refresh_token"]},
            auth=prepared.client,
        )
        assert r.status_code == 200, r.text
        consent = direct.get_consent(PERSON, prepared.client[0])
        assert consent is not None and consent.scopes == frozenset({"mcp:tools"})
        # The session secret is stored too: every restart and worker signs cookies alike.
        assert direct.get_setting("secret_key")
    finally:
        server.stop()
        direct.close()
    assert "Traceback" not in server.log()
