"""A person authorizes an MCP client, end to end over HTTP against gunicorn started by the test:
register a public client with a loopback redirect, sign in and approve through the real pages
(cookies kept, forms followed as a browser would), exchange the code with the PKCE verifier,
call a protected route, refresh twice, then replay the first refresh token and watch the whole
family die."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode, urljoin, urlsplit

import httpx
import jwt
import pytest

from tests.support.people import form, pkce_pair, redirect_params
from tests.support.servers import flask_cli, free_port, start_gunicorn

pytestmark = pytest.mark.slow

PASSWORD = "end to end password"


def test_person_authorizes_refreshes_and_a_replay_revokes_the_family(tmp_path: Path) -> None:
    port = free_port()
    env = {"OAUTH_STORAGE_URL": f"sqlite:///{tmp_path}/oauth.sqlite3"}
    flask_cli(["init"], env, port)
    flask_cli(["user", "create", "alice", "--password", PASSWORD], env, port)
    server = start_gunicorn(env, tmp_path, workers=2, port=port, init=False)
    base = server.url
    try:
        with httpx.Client(base_url=base, follow_redirects=False, timeout=30) as http:
            # 1. The client registers itself (RFC 7591), as the MCP SDKs do.
            reg = http.post(
                "/oauth/register",
                json={
                    "client_name": "E2E Client",
                    "redirect_uris": ["http://127.0.0.1/callback"],
                    "token_endpoint_auth_method": "none",
                    "grant_types": ["authorization_code", "refresh_token"],
                    "scope": "mcp:tools mcp:resources",
                },
            )
            assert reg.status_code == 201, reg.text
            client_id = reg.json()["client_id"]
            meta = http.get("/.well-known/oauth-authorization-server").json()
            assert meta["authorization_endpoint"] == base + "/oauth/authorize"
            assert meta["authorization_response_iss_parameter_supported"] is True

            # 2. The person's browser: authorization request, login form, consent form.
            redirect_uri = f"http://127.0.0.1:{free_port()}/callback"  # loopback, any port
            verifier, challenge = pkce_pair()
            query = {
                "response_type": "code",
                "client_id": client_id,
                "redirect_uri": redirect_uri,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
                "state": "e2e-state",
                "scope": "mcp:tools mcp:resources",
                "resource": base + "/mcp",
            }
            page = http.get(meta["authorization_endpoint"] + "?" + urlencode(query))
            assert page.status_code == 200 and "Sign in" in page.text
            assert "session=" in page.headers["set-cookie"] and "HttpOnly" in page.headers["set-cookie"]
            login = form(page.text, "login")
            page = http.post(
                urljoin(str(page.url), login.action), data=login.submit(username="alice", password=PASSWORD)
            )
            assert page.status_code == 200 and "Allow E2E Client" in page.text, page.text[:500]
            consent = form(page.text, "consent")
            done = http.post(urljoin(str(page.url), consent.action), data=consent.submit("approve"))
            assert done.status_code == 303
            location = done.headers["location"]
            assert location.startswith(redirect_uri + "?")
            callback = redirect_params(location)
            assert callback["state"] == "e2e-state"
            assert callback["iss"] == base == meta["issuer"]

            # 3. The client exchanges the code with the verifier.
            token = http.post(
                "/oauth/token",
                data={
                    "grant_type": "authorization_code",
                    "code": callback["code"],
                    "code_verifier": verifier,
                    "client_id": client_id,
                    "redirect_uri": redirect_uri,
                },
            )
            assert token.status_code == 200, token.text
            first = token.json()
            assert first["token_type"] == "Bearer" and first["scope"] == "mcp:tools mcp:resources"
            claims = jwt.decode(first["access_token"], options={"verify_signature": False})
            assert claims["sub"] == "alice" and claims["client_id"] == client_id
            assert claims["aud"] == base + "/mcp" and claims["iss"] == base

            # 4. A protected route accepts the access token.
            who = http.get("/mcp/whoami", headers={"Authorization": f"Bearer {first['access_token']}"})
            assert who.status_code == 200, who.text
            assert who.json()["sub"] == "alice" and who.json()["client_id"] == client_id

            # 5. Refresh twice: each use rotates the refresh token.
            def refresh(refresh_token: str) -> httpx.Response:
                return http.post(
                    "/oauth/token",
                    data={"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id},
                )

            second = refresh(first["refresh_token"])
            assert second.status_code == 200, second.text
            third = refresh(second.json()["refresh_token"])
            assert third.status_code == 200, third.text
            latest = third.json()
            assert len({first["refresh_token"], second.json()["refresh_token"], latest["refresh_token"]}) == 3
            assert (
                http.get("/mcp/whoami", headers={"Authorization": f"Bearer {latest['access_token']}"}).status_code
                == 200
            )

            # 6. Replaying the first (rotated) refresh token revokes the whole family.
            replay = refresh(first["refresh_token"])
            assert replay.status_code == 400
            assert replay.json()["error"] == "invalid_grant"
            after = refresh(latest["refresh_token"])
            assert after.status_code == 400 and after.json()["error"] == "invalid_grant"
            for access in (latest["access_token"], first["access_token"]):
                denied = http.get("/mcp/whoami", headers={"Authorization": f"Bearer {access}"})
                assert denied.status_code == 401
                assert denied.headers["www-authenticate"].startswith("Bearer ")

            # 7. The code was single use: presenting it again is refused.
            again = http.post(
                "/oauth/token",
                data={
                    "grant_type": "authorization_code",
                    "code": callback["code"],
                    "code_verifier": verifier,
                    "client_id": client_id,
                    "redirect_uri": redirect_uri,
                },
            )
            assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
            assert urlsplit(location).hostname == "127.0.0.1"
    finally:
        server.stop()
    assert "Traceback" not in server.log()
