"""Operator CLI: ``flask --app wsgi oauth ...`` (or the ``mcp-oauth`` console script).

Secrets are printed once, when created; only their hashes are stored.
"""

from __future__ import annotations

import json
import sys
import time

import click
from flask import Flask
from flask.cli import AppGroup, FlaskGroup

from app.cli_ops import grants_cli, prune_cmd
from app.cli_users import consent_cli, user_cli
from app.core import secrets
from app.models import InitialAccessToken
from app.state import oauth_state

oauth_cli = AppGroup("oauth", help="Manage the authorization server.")
client_cli = AppGroup("client", help="Registered clients.")
keys_cli = AppGroup("keys", help="Access-token signing keys.")
iat_cli = AppGroup("iat", help="Initial access tokens for registering client_credentials clients.")
oauth_cli.add_command(client_cli)
oauth_cli.add_command(keys_cli)
oauth_cli.add_command(iat_cli)
oauth_cli.add_command(grants_cli)
oauth_cli.add_command(prune_cmd)
oauth_cli.add_command(user_cli)
oauth_cli.add_command(consent_cli)


def _echo_json(data: object) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


@oauth_cli.command("init")
def init_cmd() -> None:
    """Create or migrate the schema and the first signing key (idempotent)."""
    state = oauth_state()
    state.storage.migrate()
    state.keys.ensure()
    click.echo(f"storage ready (schema v{state.storage.schema_version()}); signing key {state.keys.current().kid}")


@client_cli.command("create")
@click.option("--name", "client_name", required=True, help="Human-readable client name.")
@click.option(
    "--grant",
    "grants",
    multiple=True,
    default=("client_credentials",),
    show_default=True,
    type=click.Choice(["client_credentials", "authorization_code", "refresh_token"]),
)
@click.option("--scope", default="", help="Space-separated scopes (default: the server's defaults).")
@click.option("--redirect-uri", "redirect_uris", multiple=True, help="Redirect URI (repeatable).")
@click.option("--public", is_flag=True, help="A public client (token_endpoint_auth_method none).")
@click.option("--introspect", is_flag=True, help="May introspect any token (a resource server).")
def client_create(
    client_name: str,
    grants: tuple[str, ...],
    scope: str,
    redirect_uris: tuple[str, ...],
    public: bool,
    introspect: bool,
) -> None:
    """Register a client; prints its secret once."""
    from app.oauth.register import client_response, new_client, validate_metadata

    state = oauth_state()
    body = {
        "client_name": client_name,
        "grant_types": list(grants),
        "redirect_uris": list(redirect_uris),
        "token_endpoint_auth_method": "none" if public else "client_secret_basic",
    }
    if scope:
        body["scope"] = scope
    from marshmallow import ValidationError

    from app.errors import OAuthError, validation_error

    try:
        metadata = validate_metadata(state, body)
    except ValidationError as e:
        raise click.ClickException(validation_error(e).description or "invalid metadata") from None
    except OAuthError as e:
        raise click.ClickException(e.description or e.error) from None
    privileges = frozenset({"introspect"}) if introspect else frozenset()
    client, secret, reg_token = new_client(state, metadata, registered_by="cli", privileges=privileges)
    _echo_json(client_response(state, client, secret, reg_token))


@client_cli.command("list")
def client_list() -> None:
    """List clients (no secrets)."""
    state = oauth_state()
    for c in state.storage.list_clients():
        click.echo(
            f"{c.client_id}\t{c.metadata.get('client_name', '-')}\t{' '.join(c.grant_types)}\t"
            f"{c.auth_method}\t{c.registered_by}\tissued {time.strftime('%Y-%m-%d', time.gmtime(c.issued_at))}"
        )


@client_cli.command("delete")
@click.argument("client_id")
def client_delete(client_id: str) -> None:
    """Delete a client with its consents and refresh tokens."""
    from app import admin

    if not admin.delete_client(oauth_state(), client_id, by="cli"):
        raise click.ClickException(f"no client {client_id}")
    click.echo(f"deleted {client_id}")


@client_cli.command("rotate-secret")
@click.argument("client_id")
@click.option("--expires-in", type=int, default=None, help="Seconds until the new secret expires (0 = never).")
def client_rotate_secret(client_id: str, expires_in: int | None) -> None:
    """Give a confidential client a new secret (the old one stops working); prints it once."""
    state = oauth_state()
    client = state.storage.get_client(client_id)
    if client is None:
        raise click.ClickException(f"no client {client_id}")
    if client.is_public:
        raise click.ClickException("public clients have no secret")
    secret = secrets.new_token()
    ttl = int(state.config["OAUTH_CLIENT_SECRET_TTL"]) if expires_in is None else expires_in
    client.secret_hash = secrets.token_hash(secret)
    client.secret_expires_at = state.now() + ttl if ttl else 0
    state.storage.save_client(client)
    _echo_json({"client_id": client_id, "client_secret": secret, "client_secret_expires_at": client.secret_expires_at})


@iat_cli.command("create")
@click.option("--expires-in", type=int, default=86400, show_default=True, help="Seconds (0 = never).")
@click.option("--description", default="", help="What it is for.")
def iat_create(expires_in: int, description: str) -> None:
    """Create an initial access token (RFC 7591 §3); prints it once."""
    state = oauth_state()
    token = secrets.new_token()
    now = state.now()
    expires_at = now + expires_in if expires_in else 0
    state.storage.save_initial_access_token(
        InitialAccessToken(secrets.token_hash(token), now, expires_at, description)
    )
    _echo_json({"initial_access_token": token, "expires_at": expires_at})


@keys_cli.command("rotate")
def keys_rotate() -> None:
    """New signing key; old keys stay published until the tokens they signed expire."""
    key = oauth_state().keys.rotate()
    click.echo(f"new signing key {key.kid} ({key.alg})")


@keys_cli.command("list")
def keys_list() -> None:
    """List signing keys."""
    for k in oauth_state().storage.list_signing_keys():
        status = "active" if k.retired_at is None else f"retired, published until {k.expires_at}"
        click.echo(f"{k.kid}\t{k.alg}\t{status}")


def register_cli(app: Flask) -> None:
    app.cli.add_command(oauth_cli)


def main() -> None:
    """Console script ``mcp-oauth``: the ``flask oauth`` commands for ``wsgi:app``."""
    from app import create_app

    cli = FlaskGroup(create_app=lambda: create_app())
    sys.argv = [sys.argv[0], "oauth", *sys.argv[1:]]
    cli.main()
