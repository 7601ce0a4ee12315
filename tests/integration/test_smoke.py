from __future__ import annotations


def test_metadata_issuer(client):
    r = client.get("/.well-known/oauth-authorization-server")
    assert r.status_code == 200
    assert r.json["issuer"] == "http://127.0.0.1:8000"


def test_token_and_guard(client, token_for):
    tok = token_for("mcp:tools")
    r = client.get("/mcp/whoami", headers={"Authorization": f"Bearer {tok}"})
    assert r.status_code == 200
    assert r.json["scope"] == "mcp:tools"
