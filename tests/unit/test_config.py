"""Configuration layers (defaults, OAUTH_*, FLASK_OAUTH_*, test_config) and start-up checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from app import create_app
from app.config import Defaults, load_unprefixed_env
from app.errors import ConfigurationError

ISSUER = "http://127.0.0.1:8000"


def config(**overrides: Any) -> dict[str, Any]:
    # memory storage: these tests are about configuration, not persistence.
    return {"TESTING": True, "OAUTH_ISSUER": ISSUER, "OAUTH_STORAGE_URL": "memory://"} | overrides


def build(**overrides: Any) -> Flask:
    app = create_app(config(**overrides))
    app.extensions["mcp_oauth"].close()
    return app


def test_defaults_apply() -> None:
    app = build()
    assert app.config["OAUTH_ACCESS_TOKEN_TTL"] == Defaults.OAUTH_ACCESS_TOKEN_TTL == 3600
    assert app.config["OAUTH_SIGNING_ALG"] == "ES256"


def test_unprefixed_environment_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OAUTH_ACCESS_TOKEN_TTL", "120")
    monkeypatch.setenv("OAUTH_REGISTRATION_OPEN", "false")
    monkeypatch.setenv("OAUTH_DEFAULT_SCOPES", "mcp:resources")
    monkeypatch.setenv("RATELIMIT_TOKEN", "5/second")
    app = build()
    # Values are JSON when they parse (numbers, booleans), text otherwise.
    assert app.config["OAUTH_ACCESS_TOKEN_TTL"] == 120
    assert app.config["OAUTH_REGISTRATION_OPEN"] is False
    assert app.config["OAUTH_DEFAULT_SCOPES"] == "mcp:resources"
    assert app.config["RATELIMIT_TOKEN"] == "5/second"
    assert app.extensions["mcp_oauth"].access_tokens.ttl == 120


def test_flask_prefixed_environment_beats_the_unprefixed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OAUTH_ACCESS_TOKEN_TTL", "120")
    monkeypatch.setenv("FLASK_OAUTH_ACCESS_TOKEN_TTL", "240")
    assert build().config["OAUTH_ACCESS_TOKEN_TTL"] == 240


def test_test_config_beats_both_environment_layers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OAUTH_ACCESS_TOKEN_TTL", "120")
    monkeypatch.setenv("FLASK_OAUTH_ACCESS_TOKEN_TTL", "240")
    app = build(OAUTH_ACCESS_TOKEN_TTL=600)
    assert app.config["OAUTH_ACCESS_TOKEN_TTL"] == 600
    assert app.extensions["mcp_oauth"].access_tokens.ttl == 600


def test_issuer_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OAUTH_ISSUER", "https://auth.example.com")
    app = create_app({"TESTING": True, "OAUTH_STORAGE_URL": "memory://"})
    assert app.extensions["mcp_oauth"].issuer == "https://auth.example.com"
    assert app.extensions["mcp_oauth"].default_resource == "https://auth.example.com/mcp"


def test_load_unprefixed_env_copies_only_known_keys() -> None:
    cfg: dict[str, Any] = {}
    load_unprefixed_env(
        cfg,
        {
            "OAUTH_ISSUER": "https://a.example",
            "OAUTH_NOT_A_SETTING": "1",
            "HOME": "/root",
            "MAX_CONTENT_LENGTH": "1024",
            "OAUTH_SCOPES": '{"a": "A"}',
        },
    )
    assert cfg == {"OAUTH_ISSUER": "https://a.example", "MAX_CONTENT_LENGTH": 1024, "OAUTH_SCOPES": {"a": "A"}}


@pytest.mark.parametrize(
    ("issuer", "message"),
    [
        ("http://127.0.0.1:8000/", "trailing slash"),
        ("https://auth.example.com/", "trailing slash"),
        ("auth.example.com", "absolute URL"),
        ("/relative", "absolute URL"),
        ("", "absolute URL"),
        ("http://auth.example.com", "https"),  # non-https, non-loopback
        ("http://10.0.0.5:8000", "https"),
        ("https://auth.example.com?tenant=1", "query or fragment"),
        ("https://auth.example.com#x", "query or fragment"),
    ],
)
def test_bad_issuer_fails_at_start(issuer: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        create_app(config(OAUTH_ISSUER=issuer))


@pytest.mark.parametrize(
    "issuer",
    ["http://127.0.0.1:8000", "http://localhost:5000", "http://[::1]:8000", "https://auth.example.com/tenant"],
)
def test_good_issuers(issuer: str) -> None:
    assert build(OAUTH_ISSUER=issuer).extensions["mcp_oauth"].issuer == issuer


@pytest.mark.parametrize(
    ("overrides", "message", "installed"),
    [
        ({"OAUTH_GRANT_TYPES": "client_credentials password"}, "'password'", "client_credentials"),
        ({"OAUTH_GRANT_TYPES": "implicit"}, "'implicit'", "client_credentials"),
        ({"OAUTH_STORAGE_URL": "mongodb://127.0.0.1/x"}, "'mongodb'", "sqlite"),
        ({"OAUTH_TOKEN_STORAGE_URL": "etcd://127.0.0.1"}, "'etcd'", "memory"),
        ({"RATELIMIT_STORAGE_URL": "memcached://127.0.0.1:11211"}, "'memcached'", "memory"),
    ],
)
def test_unknown_plugins_fail_at_start_naming_the_installed_ones(
    overrides: dict[str, str], message: str, installed: str
) -> None:
    with pytest.raises(ConfigurationError, match=message) as info:
        create_app(config(**overrides))
    assert "installed" in str(info.value) and installed in str(info.value)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"OAUTH_SIGNING_ALG": "HS512"}, "OAUTH_SIGNING_ALG"),
        ({"OAUTH_SIGNING_ALG": "HS256"}, "OAUTH_TOKEN_SECRET"),
        ({"OAUTH_TOKEN_SECRET": "too-short"}, "32 bytes"),
        ({"OAUTH_DEFAULT_SCOPES": "mcp:tools admin"}, "unknown scopes"),
        ({"OAUTH_DEFAULT_SCOPES": 'bad"scope'}, "OAUTH_DEFAULT_SCOPES"),
        ({"OAUTH_SCOPES": {}}, "OAUTH_SCOPES"),
        ({"OAUTH_SCOPES": "mcp:tools"}, "OAUTH_SCOPES"),
        ({"OAUTH_RESOURCES": "https://worker.example/mcp#x"}, "OAUTH_RESOURCES"),
        ({"OAUTH_RESOURCES": "worker.example"}, "OAUTH_RESOURCES"),
        ({"OAUTH_STORAGE_URL": "redis://127.0.0.1:1/0"}, "short-lived"),  # a TokenStore-only plugin
        # A mistyped limit would fail open on every request, silently switching the limit off.
        ({"RATELIMIT_TOKEN": "lots"}, "RATELIMIT_TOKEN"),
        ({"RATELIMIT_REGISTRATION": "10 per fortnight"}, "RATELIMIT_REGISTRATION"),
        ({"RATELIMIT_AUTH_FAILURE": ""}, "RATELIMIT_AUTH_FAILURE"),
        ({"RATELIMIT_LOGIN": "10/minute;"}, "RATELIMIT_LOGIN"),
    ],
)
def test_bad_settings_fail_at_start(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        create_app(config(**overrides))


def test_unreachable_sqlite_path_fails_at_start(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigurationError, match="sqlite"):
        create_app(config(OAUTH_STORAGE_URL=f"sqlite:///{blocker}/sub/oauth.sqlite3"))


@pytest.mark.parametrize(
    ("key", "raw"),
    [
        ("OAUTH_REGISTRATION_OPEN", "no"),  # truthy text would have left registration open
        ("OAUTH_REGISTRATION_OPEN", "False"),
        ("RATELIMIT_ENABLED", "off"),
        ("OAUTH_ACCESS_TOKEN_TTL", "1h"),
        ("OAUTH_ACCESS_TOKEN_TTL", "-5"),
        ("OAUTH_ACCESS_TOKEN_TTL", "60.5"),
        ("OAUTH_CLIENT_SECRET_TTL", "never"),
        ("MAX_CONTENT_LENGTH", "64k"),
        ("OAUTH_MAX_PARAM_LENGTH", "true"),
    ],
)
def test_mistyped_environment_values_fail_at_start(monkeypatch: pytest.MonkeyPatch, key: str, raw: str) -> None:
    monkeypatch.setenv(key, raw)
    with pytest.raises(ConfigurationError, match=key):
        create_app(config())


@pytest.mark.parametrize(
    ("key", "raw", "value"), [("OAUTH_REGISTRATION_OPEN", "false", False), ("OAUTH_CODE_TTL", "30", 30)]
)
def test_json_environment_values_are_typed(monkeypatch: pytest.MonkeyPatch, key: str, raw: str, value: object) -> None:
    monkeypatch.setenv(key, raw)
    assert build().config[key] == value


def test_mistyped_test_config_fails_too() -> None:
    with pytest.raises(ConfigurationError, match="OAUTH_ACCESS_TOKEN_TTL"):
        create_app(config(OAUTH_ACCESS_TOKEN_TTL="3600"))


def test_limits_in_other_spellings_are_accepted() -> None:
    app = build(RATELIMIT_TOKEN="100 per minute", RATELIMIT_LOGIN="5/second")
    assert app.extensions["mcp_oauth"].limiter is not None


def test_hs256_opt_in() -> None:
    app = build(OAUTH_TOKEN_SECRET="x" * 32)
    assert app.extensions["mcp_oauth"].keys.alg == "HS256"


def test_extra_resources_are_canonicalised() -> None:
    state = build(OAUTH_RESOURCES="HTTPS://Worker.Example/mcp/ https://w2.example").extensions["mcp_oauth"]
    assert state.resources == {ISSUER + "/mcp", "https://worker.example/mcp", "https://w2.example"}


def test_secret_key_is_generated_once_per_storage(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/oauth.sqlite3"
    first = build(OAUTH_STORAGE_URL=url).config["SECRET_KEY"]
    second = build(OAUTH_STORAGE_URL=url).config["SECRET_KEY"]
    assert first and first == second
    assert build(OAUTH_STORAGE_URL=url, SECRET_KEY="given").config["SECRET_KEY"] == "given"
