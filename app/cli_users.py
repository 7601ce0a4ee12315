"""Operator CLI for people: ``oauth user create|delete|list|set-password`` and
``oauth consent list|revoke``.

Added to the ``oauth`` command group by app/cli.py. Passwords are never printed or logged; they
come from ``--password`` or a hidden prompt with confirmation.
"""

from __future__ import annotations

import time

import click
from flask.cli import AppGroup

from app import admin, audit
from app.models import Consent
from app.state import OAuthState, oauth_state
from app.users import LocalAuthenticator

user_cli = AppGroup("user", help="People who sign in to authorize clients (local user store).")
consent_cli = AppGroup("consent", help="Remembered consent decisions (person, client, scopes).")


def _users(state: OAuthState) -> LocalAuthenticator:
    # The CLI manages the local store even when another authenticator serves the login page.
    return LocalAuthenticator(state.storage)


def _day(ts: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ts))


_password_option = click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="The password (asked for, hidden and twice, when left out).",
)


@user_cli.command("create")
@click.argument("username")
@_password_option
def user_create(username: str, password: str) -> None:
    """Add a person who can sign in (password stored as an argon2id hash)."""
    state = oauth_state()
    try:
        _users(state).create(username, password, state.now())
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    audit.event("user.created", username=username, by="cli")
    click.echo(f"created user {username}")


@user_cli.command("set-password")
@click.argument("username")
@_password_option
@click.option("--revoke-grants", is_flag=True, help="Also end every grant this person gave (their refresh tokens).")
def user_set_password(username: str, password: str, revoke_grants: bool) -> None:
    """Replace a person's password; their login sessions end at once."""
    state = oauth_state()
    try:
        _users(state).set_password(username, password)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    audit.event("user.password_changed", username=username, by="cli")
    click.echo(f"password changed for {username}")
    if revoke_grants:
        families = admin.revoke_grants(state, subject=username, reason="cli")
        click.echo(f"revoked {len(families)} grants")


@user_cli.command("delete")
@click.argument("username")
def user_delete(username: str) -> None:
    """Delete a person, their remembered consents and every grant they gave."""
    state = oauth_state()
    if state.storage.get_user(username) is None:
        raise click.ClickException(f"no user {username}")
    families = admin.revoke_grants(state, subject=username, reason="user_deleted")
    state.storage.delete_user(username)
    audit.event("user.deleted", username=username, by="cli")
    click.echo(f"deleted user {username} (revoked {len(families)} grants)")


@user_cli.command("list")
def user_list() -> None:
    """List people: username, created, status (never a password hash)."""
    for u in oauth_state().storage.list_users():
        click.echo(f"{u.username}\tcreated {_day(u.created_at)}\t{'disabled' if u.disabled else 'active'}")


def _consents(state: OAuthState, subject: str | None, client_id: str | None) -> list[Consent]:
    """Remembered consents matching the filters.

    The storage contract looks consents up by (person, client), so this walks people x clients:
    fine for an operator's command.
    """
    subjects = [subject] if subject is not None else [u.username for u in state.storage.list_users()]
    clients = [client_id] if client_id is not None else [c.client_id for c in state.storage.list_clients()]
    found = []
    for s in subjects:
        for c in clients:
            consent = state.storage.get_consent(s, c)
            if consent is not None:
                found.append(consent)
    return found


@consent_cli.command("list")
@click.option("--user", "subject", default=None, help="Only this person's consents.")
@click.option("--client", "client_id", default=None, help="Only consents to this client.")
def consent_list(subject: str | None, client_id: str | None) -> None:
    """List remembered consents: person, client, scopes, when given."""
    for c in _consents(oauth_state(), subject, client_id):
        click.echo(f"{c.subject}\t{c.client_id}\t{' '.join(sorted(c.scopes))}\tgranted {_day(c.granted_at)}")


@consent_cli.command("revoke")
@click.option("--user", "subject", required=True, help="The person whose consents to forget.")
@click.option("--client", "client_id", default=None, help="Only the consent to this client.")
def consent_revoke(subject: str, client_id: str | None) -> None:
    """Forget remembered consents: the next authorization asks the person again.

    Tokens already issued keep working; end them with ``oauth grants revoke``.
    """
    n = oauth_state().storage.delete_consents(subject=subject, client_id=client_id)
    audit.event("consent.revoked", sub=subject, client_id=client_id, count=n, by="cli")
    click.echo(f"revoked {n} consents")
