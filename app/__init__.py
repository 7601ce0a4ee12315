"""Application factory: config -> plugins -> blueprints -> handlers."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from app import audit, health, metrics
from app.config import Defaults, check_types, load_unprefixed_env
from app.errors import ConfigurationError, register_error_handlers
from app.guard import EXTENSION, LocalResourceServer
from app.sessions import CachedSignerSessionInterface, OAuthFlask
from app.state import OAuthState


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the authorization server. Bad config raises ConfigurationError here, not later."""
    app = OAuthFlask(__name__, instance_relative_config=True)
    app.config.from_object(Defaults)
    load_unprefixed_env(app.config)
    app.config.from_prefixed_env()
    if test_config is not None:
        app.config.update(test_config)
    check_types(app.config)
    logging.getLogger("mcp_oauth").setLevel(logging.INFO)
    audit.configure()
    proxies = app.config["OAUTH_TRUSTED_PROXIES"]
    if not isinstance(proxies, int) or isinstance(proxies, bool) or proxies < 0:
        raise ConfigurationError("OAUTH_TRUSTED_PROXIES must be 0 or a positive number of proxies")
    if proxies:
        # Trust exactly as many X-Forwarded-* hops as there are proxies: one more would let a
        # client choose its own address (and dodge per-address rate limits).
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies
        )

    state = OAuthState.from_config(app.config, app.instance_path)
    app.extensions["mcp_oauth"] = state
    if not app.config.get("SECRET_KEY"):
        # One secret for every worker and restart: the first process to start stores it.
        app.config["SECRET_KEY"] = state.storage.set_setting_if_absent("secret_key", secrets.token_hex(32))
    # Login session cookie: no script access, not sent on cross-site POSTs, HTTPS-only when the issuer is.
    app.session_interface = CachedSignerSessionInterface()
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=state.issuer.startswith("https://"),
    )
    app.extensions[EXTENSION] = LocalResourceServer(
        resource=state.default_resource,
        resource_metadata_url=f"{state.issuer}/.well-known/oauth-protected-resource/mcp",
        verify=lambda token: state.access_tokens.verify(token, state.default_resource),
    )

    register_error_handlers(app)
    from app.mcp import bp as mcp_bp
    from app.oauth import bp as oauth_bp

    app.register_blueprint(oauth_bp)
    app.register_blueprint(mcp_bp, url_prefix="/mcp")
    # Root aliases for 2025-03-26 clients that find no metadata and guess the paths.
    for alias, endpoint in (("/token", "oauth.issue_token"), ("/register", "oauth.register_client")):
        view = app.view_functions[endpoint]
        app.add_url_rule(alias, endpoint=f"alias{alias.replace('/', '_')}", view_func=view, methods=["POST"])
    app.add_url_rule(
        "/authorize",
        endpoint="alias_authorize",
        view_func=app.view_functions["oauth.authorize"],
        methods=["GET", "POST"],
    )

    health.init_app(app)
    metrics.init_app(app)
    from app.cors import init_cors

    init_cors(app)

    from app.cli import register_cli

    register_cli(app)
    return app
