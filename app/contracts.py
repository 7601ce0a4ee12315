"""Plugin contracts: entry-point group names, one small Protocol per kind, and ``load()``.

A plugin is a class found through an entry point of one of these groups. Built-in plugins in
``plugins/`` are registered in pyproject.toml exactly as a third party registers its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Protocol, TypeVar, runtime_checkable

from app.errors import ConfigurationError
from app.models import (
    AuthorizationCode,
    Client,
    Consent,
    InitialAccessToken,
    RefreshToken,
    SigningKey,
    TokenClaims,
    User,
)

if TYPE_CHECKING:
    from app.state import OAuthState, TokenRequest

GRANTS = "mcp_oauth.grants"
STORAGE = "mcp_oauth.storage"
RATE_LIMITERS = "mcp_oauth.rate_limiters"
TOOLS = "mcp_oauth.tools"

T = TypeVar("T")


@runtime_checkable
class TokenStore(Protocol):
    """Short-lived data: codes, refresh tokens, revoked ``jti``s.

    Every single-use operation is atomic across processes. Unknown keys give None / False;
    methods never raise for them. Backend failures may raise anything; the core wraps them in
    ``StorageError``.
    """

    @classmethod
    def from_url(cls, url: str, options: Mapping[str, object]) -> TokenStore: ...
    def close(self) -> None: ...
    def ping(self) -> None: ...

    def revoke_jti(self, jti: str, expires_at: int) -> None: ...
    def is_jti_revoked(self, jti: str) -> bool: ...

    def save_code(self, code: AuthorizationCode) -> None: ...
    def consume_code(self, code_hash: bytes, now: int) -> tuple[AuthorizationCode | None, bool]:
        """Atomically mark a code used. Returns (code, first_use); (None, False) if unknown."""
        ...

    def save_refresh_token(self, token: RefreshToken) -> None: ...
    def get_refresh_token(self, token_hash: bytes) -> RefreshToken | None: ...
    def rotate_refresh_token(
        self, old_hash: bytes, new: RefreshToken, now: int, successor_blob: bytes | None
    ) -> bool:
        """Atomically mark ``old_hash`` rotated and store ``new``; False if already rotated."""
        ...

    def add_family_jti(self, family_id: str, jti: str, expires_at: int) -> None: ...
    def revoke_family(self, family_id: str, now: int) -> int:
        """Delete a family's refresh tokens and revoke its access tokens; returns tokens hit."""
        ...

    def list_families(self, *, subject: str | None = None, client_id: str | None = None) -> list[RefreshToken]: ...
    def prune_tokens(self, now: int) -> int: ...


@runtime_checkable
class Storage(TokenStore, Protocol):
    """Durable data (clients, users, consents, signing keys) plus the ``TokenStore`` part."""

    def migrate(self) -> None: ...

    def get_client(self, client_id: str) -> Client | None: ...
    def save_client(self, client: Client) -> None: ...
    def delete_client(self, client_id: str) -> bool: ...
    def list_clients(self) -> list[Client]: ...
    def touch_client(self, client_id: str, now: int) -> None: ...

    def list_signing_keys(self) -> list[SigningKey]: ...
    def save_signing_key(self, key: SigningKey) -> None: ...
    def delete_signing_key(self, kid: str) -> None: ...

    def save_initial_access_token(self, token: InitialAccessToken) -> None: ...
    def get_initial_access_token(self, token_hash: bytes) -> InitialAccessToken | None: ...

    def get_user(self, username: str) -> User | None: ...
    def save_user(self, user: User) -> None: ...
    def delete_user(self, username: str) -> bool: ...
    def list_users(self) -> list[User]: ...

    def get_consent(self, subject: str, client_id: str) -> Consent | None: ...
    def save_consent(self, consent: Consent) -> None: ...
    def delete_consents(self, *, subject: str | None = None, client_id: str | None = None) -> int: ...

    def get_setting(self, name: str) -> str | None: ...
    def set_setting_if_absent(self, name: str, value: str) -> str:
        """Store ``value`` unless a value exists; returns the stored one (first writer wins)."""
        ...


@runtime_checkable
class Grant(Protocol):
    """A token-endpoint grant type.

    The class also sets ``grant_type: ClassVar[str]``, the value clients send (checked by
    ``load_grant``; Protocols with data members cannot be checked by ``issubclass``).
    """

    def __init__(self, state: OAuthState) -> None: ...
    def issue(self, request: TokenRequest) -> dict[str, object]:
        """Validate the grant and return the token response body (RFC 6749 §5.1)."""
        ...


@dataclass(frozen=True, slots=True)
class RateLimitResult:
    allowed: bool
    retry_after: int = 0


@runtime_checkable
class RateLimiter(Protocol):
    """Counts hits per key against a limit string such as ``"10/minute"`` (limits syntax)."""

    @classmethod
    def from_url(cls, url: str) -> RateLimiter: ...
    def hit(self, limit: str, *key: str) -> RateLimitResult: ...
    def test(self, limit: str, *key: str) -> RateLimitResult: ...
    def clear(self, limit: str, *key: str) -> None: ...


class ToolError(Exception):
    """Raised by a tool for a failure the caller should see (``isError`` result, not a crash)."""


@runtime_checkable
class Tool(Protocol):
    """An MCP tool, selected by name in ``MCP_TOOLS``.

    The class also sets ``name: ClassVar[str]`` (the tool name clients call), ``description:
    ClassVar[str]``, ``input_schema: ClassVar[dict]`` (a JSON Schema object, checked before
    ``call``) and ``required_scope: ClassVar[str]`` (the scope a token needs to see and call it);
    optionally ``output_schema``. The MCP package checks these when it loads the plugin.
    """

    def __init__(self, config: Mapping[str, object]) -> None: ...
    def call(self, arguments: Mapping[str, object], claims: TokenClaims) -> Mapping[str, object]:
        """Run the tool; returns a ``CallToolResult`` body: ``content`` (a list of content
        blocks) and optionally ``structuredContent``. Raises ToolError for a reportable failure."""
        ...


def installed(group: str) -> list[str]:
    """Names of every plugin installed in ``group``."""
    return sorted({ep.name for ep in entry_points(group=group)})


def load(group: str, name: str, kind: type[T]) -> type[T]:
    """Load plugin ``name`` of ``group`` and check that it implements ``kind``.

    Raises ConfigurationError naming the installed plugins if it is missing or broken.
    """
    found = {ep.name: ep for ep in entry_points(group=group)}
    if name not in found:
        raise ConfigurationError(f"no {group!r} plugin {name!r}; installed: {sorted(found)}")
    try:
        cls = found[name].load()
    except Exception as e:  # a broken plugin must fail start-up with its name, not a traceback
        raise ConfigurationError(
            f"plugin {name!r} ({found[name].value}) failed to load: {e!r}; installed: {sorted(found)}"
        ) from e
    if not (isinstance(cls, type) and issubclass(cls, kind)):  # type: ignore[arg-type]
        raise ConfigurationError(
            f"plugin {name!r} ({found[name].value}) does not implement {kind.__name__}; installed: {sorted(found)}"
        )
    return cls
