"""Operator actions shared by the CLI and the views: revoking grants, deleting and pruning clients.

They work whether short-lived data lives with the durable data or in a separate token store
(``OAUTH_TOKEN_STORAGE_URL``): grants (refresh-token families) are found and revoked in
``state.token_store``, clients and consents in ``state.storage``.
"""

from __future__ import annotations

from dataclasses import dataclass

from app import audit
from app.models import RefreshToken
from app.state import OAuthState


@dataclass(frozen=True, slots=True)
class PruneResult:
    tokens: int  # expired codes, refresh tokens and revocation records removed
    keys: int  # signing keys past their publication window removed
    clients: list[str]  # ids of the unused clients deleted


def list_grants(state: OAuthState, *, subject: str | None = None, client_id: str | None = None) -> list[RefreshToken]:
    """The live refresh token of every grant (family), optionally of one person and/or client."""
    return list(state.token_store.list_families(subject=subject, client_id=client_id))


def revoke_grant(state: OAuthState, family_id: str, *, reason: str, client_id: str = "") -> int:
    """Revoke one family (its refresh tokens and access tokens); returns tokens hit."""
    hit = int(state.token_store.revoke_family(family_id, state.now()))
    audit.event("family.revoked", reason=reason, client_id=client_id, family_id=family_id, tokens=hit)
    return hit


def revoke_grants(
    state: OAuthState, *, subject: str | None = None, client_id: str | None = None, reason: str = "cli"
) -> list[str]:
    """Revoke every grant of a person and/or a client, and their consents (so the next
    authorization asks the person again). Returns the revoked family ids."""
    if subject is None and client_id is None:
        raise ValueError("name a subject or a client")
    families = list_grants(state, subject=subject, client_id=client_id)
    for rt in families:
        revoke_grant(state, rt.family_id, reason=reason, client_id=rt.client_id)
    state.storage.delete_consents(subject=subject, client_id=client_id)
    return [rt.family_id for rt in families]


def delete_client(state: OAuthState, client_id: str, *, by: str) -> bool:
    """Delete a client with its consents, and end its grants wherever they are stored.

    SQL storage ends the grants it holds itself, atomically with the delete; a separate token
    store (Redis) is told here, first, so no refresh token outlives its client.
    """
    if state.token_store is not state.storage:
        for rt in list_grants(state, client_id=client_id):
            revoke_grant(state, rt.family_id, reason="client_deleted", client_id=client_id)
    found = bool(state.storage.delete_client(client_id))
    if found:
        audit.event("client.deleted", client_id=client_id, by=by)
    return found


def prune(state: OAuthState, *, unused_days: int | None = None, include_cli: bool = False) -> PruneResult:
    """Remove expired codes, tokens and revocations, expired signing keys, and (with
    ``unused_days``) clients that obtained no token for that many days.

    Clients created with the CLI are kept unless ``include_cli``: an operator made them on
    purpose (a worker may run rarely); registered ones (open registration or initial access
    token) go when unused.
    """
    now = state.now()
    tokens = int(state.token_store.prune_tokens(now))
    if state.token_store is not state.storage:
        tokens += int(state.storage.prune_tokens(now))
    keys = int(state.keys.prune(now))
    deleted: list[str] = []
    if unused_days is not None:
        cutoff = now - unused_days * 86400
        for client in state.storage.list_clients():
            if client.registered_by == "cli" and not include_cli:
                continue
            if max(client.last_used_at, client.issued_at) < cutoff:
                if delete_client(state, client.client_id, by="prune"):
                    deleted.append(client.client_id)
    return PruneResult(tokens=tokens, keys=keys, clients=deleted)
