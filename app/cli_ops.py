"""Operator CLI for housekeeping: ``oauth prune`` and ``oauth grants list|revoke``.

Added to the ``oauth`` command group by app/cli.py.
"""

from __future__ import annotations

import json
import time

import click
from flask.cli import AppGroup

from app import admin
from app.state import oauth_state

grants_cli = AppGroup("grants", help="Grants people gave clients (refresh-token families).")


def _day(ts: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ts))


@click.command("prune")
@click.option(
    "--unused-days",
    type=click.IntRange(min=1),
    default=None,
    help="Also delete registered clients that obtained no token for this many days.",
)
@click.option("--include-cli", is_flag=True, help="With --unused-days, CLI-created clients too.")
def prune_cmd(unused_days: int | None, include_cli: bool) -> None:
    """Delete expired codes, tokens, revocations and signing keys (and unused clients)."""
    result = admin.prune(oauth_state(), unused_days=unused_days, include_cli=include_cli)
    click.echo(f"pruned {result.tokens} expired token records, {result.keys} signing keys")
    if unused_days is not None:
        click.echo(f"deleted {len(result.clients)} clients unused for {unused_days} days")
        for client_id in result.clients:
            click.echo(f"  {client_id}")


@grants_cli.command("list")
@click.option("--user", "subject", default=None, help="Only this person's grants.")
@click.option("--client", "client_id", default=None, help="Only grants to this client.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def grants_list(subject: str | None, client_id: str | None, as_json: bool) -> None:
    """List live grants: family, client, person, scope, resource, and when the current refresh
    token was issued and expires (never a token)."""
    for rt in admin.list_grants(oauth_state(), subject=subject, client_id=client_id):
        row = {
            "family_id": rt.family_id,
            "client_id": rt.client_id,
            "user": rt.subject,
            "scope": rt.scope,
            "resource": rt.resource,
            "issued_at": rt.issued_at,
            "expires_at": rt.expires_at,
        }
        if as_json:
            click.echo(json.dumps(row, sort_keys=True))
        else:
            click.echo(
                f"{rt.family_id}\t{rt.client_id}\t{rt.subject}\t{rt.scope}\t{rt.resource}\t"
                f"issued {_day(rt.issued_at)}\texpires {_day(rt.expires_at)}"
            )


@grants_cli.command("revoke")
@click.option("--family", "family_id", default=None, help="One grant, by family id (from `grants list`).")
@click.option("--user", "subject", default=None, help="Every grant of this person (and their consents).")
@click.option("--client", "client_id", default=None, help="Every grant to this client (and its consents).")
def grants_revoke(family_id: str | None, subject: str | None, client_id: str | None) -> None:
    """Revoke grants: their refresh tokens stop working and their access tokens are revoked.

    --user and --client together revoke what that person gave that client.
    """
    state = oauth_state()
    if family_id is not None:
        if subject is not None or client_id is not None:
            raise click.UsageError("--family cannot be combined with --user or --client")
        matches = [rt for rt in admin.list_grants(state) if rt.family_id == family_id]
        if not matches:
            raise click.ClickException(f"no live grant {family_id}")
        admin.revoke_grant(state, family_id, reason="cli", client_id=matches[0].client_id)
        click.echo(f"revoked grant {family_id}")
        return
    if subject is None and client_id is None:
        raise click.UsageError("name --family, --user or --client")
    families = admin.revoke_grants(state, subject=subject, client_id=client_id)
    click.echo(f"revoked {len(families)} grants")
    for fam in families:
        click.echo(f"  {fam}")
