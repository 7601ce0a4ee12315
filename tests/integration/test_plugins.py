"""A third party's plugins, installed by a throwaway distribution, are found and used.

The distribution is a ``<name>.dist-info`` folder (METADATA + entry_points.txt) next to a module
on ``sys.path``: exactly what ``pip install`` leaves behind, so ``importlib.metadata`` finds its
entry points the way it finds ours.
"""

from __future__ import annotations

import importlib
import secrets as pysecrets
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from app import contracts, create_app
from app.core import secrets
from app.errors import ConfigurationError
from app.models import InitialAccessToken
from tests.conftest import ISSUER, base_config
from tests.support.checks import assert_error, basic, bearer

ECHO = "urn:example:params:oauth:grant-type:echo"

PLUGIN_SOURCE = '''
"""A third-party plugin module: an extension grant and a storage backend."""

from __future__ import annotations

from typing import Any, ClassVar

from app.errors import InvalidRequestError
from plugins.storage.memory import MemoryStorage

OPENED: list["DictStorage"] = []


class EchoGrant:
    """Extension grant (RFC 6749 §4.5): echoes ``message`` next to a normal access token."""

    grant_type: ClassVar[str] = "{echo}"

    def __init__(self, state: Any) -> None:
        self.state = state

    def issue(self, request: Any) -> dict[str, Any]:
        message = request.params.get("message")
        if message is None:
            raise InvalidRequestError("message is required")
        client = request.client
        token, claims = self.state.access_tokens.issue(
            subject=client.client_id,
            client_id=client.client_id,
            scope="mcp:tools",
            audience=self.state.default_resource,
            extra={{"echo": message}},
        )
        return {{"access_token": token, "token_type": "Bearer", "expires_in": 60, "echo": message}}


class DictStorage(MemoryStorage):
    """Storage selected by ``dictstore://<label>``: the memory backend, recording its use."""

    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label
        self.calls: list[str] = []
        OPENED.append(self)

    @classmethod
    def from_url(cls, url: str, options: Any) -> "DictStorage":
        return cls(url.partition("://")[2])

    def save_client(self, client: Any) -> None:
        self.calls.append("save_client")
        super().save_client(client)

    def get_client(self, client_id: str) -> Any:
        self.calls.append("get_client")
        return super().get_client(client_id)


class NotAStorage:
    """Registered as a storage plugin but implements nothing of the contract."""

    @classmethod
    def from_url(cls, url: str, options: Any) -> "NotAStorage":
        return cls()


class NoGrantType:
    def __init__(self, state: Any) -> None: ...

    def issue(self, request: Any) -> dict[str, Any]:
        return {{}}
'''

BROKEN_SOURCE = 'raise ImportError("this plugin needs a library that is not installed")\n'


@pytest.fixture
def distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], Any]]:
    """Install a throwaway distribution; returns a function giving its module."""
    suffix = pysecrets.token_hex(4)
    module, broken = f"throwaway_plugins_{suffix}", f"throwaway_broken_{suffix}"
    site = tmp_path / "site"
    site.mkdir()
    (site / f"{module}.py").write_text(PLUGIN_SOURCE.format(echo=ECHO))
    (site / f"{broken}.py").write_text(BROKEN_SOURCE)
    info = site / f"throwaway_plugins_{suffix}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: throwaway-plugins-{suffix}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        textwrap.dedent(
            f"""\
            [mcp_oauth.grants]
            echo = {module}:EchoGrant
            nogranttype = {module}:NoGrantType

            [mcp_oauth.storage]
            dictstore = {module}:DictStorage
            notastorage = {module}:NotAStorage
            brokenstore = {broken}:Store
            """
        )
    )
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()  # also clears importlib.metadata's path cache
    try:
        yield lambda name="": importlib.import_module(module)
    finally:
        monkeypatch.undo()
        importlib.invalidate_caches()
        for name in (module, broken):
            sys.modules.pop(name, None)
    # Uninstalled again: the distribution does not leak into other tests.
    assert "echo" not in contracts.installed(contracts.GRANTS)


def test_the_throwaway_plugins_are_installed(distribution: Callable[[], Any]) -> None:
    assert {"echo", "nogranttype", "client_credentials"} <= set(contracts.installed(contracts.GRANTS))
    assert {"dictstore", "notastorage", "brokenstore", "memory", "sqlite"} <= set(
        contracts.installed(contracts.STORAGE)
    )


def test_a_third_party_grant_and_storage_are_used(tmp_path: Path, distribution: Callable[[], Any]) -> None:
    label = pysecrets.token_hex(4)
    app = create_app(
        base_config(
            tmp_path,
            OAUTH_STORAGE_URL=f"dictstore://{label}",
            OAUTH_GRANT_TYPES="client_credentials echo",
        )
    )
    plugin = distribution()
    state = app.extensions["mcp_oauth"]
    store = state.storage.target
    assert type(store) is plugin.DictStorage and store.label == label  # the URL scheme picked it
    assert store in plugin.OPENED
    client = app.test_client()

    # The metadata advertises the extension grant.
    meta = client.get("/.well-known/oauth-authorization-server").json
    assert ECHO in meta["grant_types_supported"]

    # Registering a client for it needs an initial access token (no person consents to it)...
    body = {"grant_types": [ECHO], "client_name": "echo worker"}
    assert client.post("/oauth/register", json=body).status_code == 401
    assert "save_client" not in store.calls
    # ...and with one, the client is stored in the plugin's storage.
    iat = secrets.new_token()
    state.storage.save_initial_access_token(InitialAccessToken(secrets.token_hash(iat), 0, 0))
    r = client.post("/oauth/register", json=body, headers=bearer(iat))
    assert r.status_code == 201, r.json
    reg = r.get_json()
    assert reg["grant_types"] == [ECHO]
    assert "save_client" in store.calls and reg["client_id"] in store._clients

    # The token endpoint dispatches to the plugin's grant.
    store.calls.clear()
    auth = basic(reg["client_id"], reg["client_secret"])
    r = client.post("/oauth/token", data={"grant_type": ECHO, "message": "hello"}, headers=auth)
    assert r.status_code == 200, r.json
    assert r.json["echo"] == "hello"
    assert "get_client" in store.calls
    claims = jwt.decode(r.json["access_token"], options={"verify_signature": False})
    assert claims["echo"] == "hello" and claims["iss"] == ISSUER
    # The token it minted is a normal access token.
    assert client.get("/mcp/whoami", headers=bearer(r.json["access_token"])).status_code == 200
    # Its errors are rendered like ours.
    assert_error(client.post("/oauth/token", data={"grant_type": ECHO}, headers=auth), 400, "invalid_request")
    # The client may not use grants it did not register for.
    r = client.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=auth)
    assert_error(r, 400, "unauthorized_client")


def test_grants_that_are_not_enabled_cannot_be_registered(tmp_path: Path, distribution: Callable[[], Any]) -> None:
    # Installed but not in OAUTH_GRANT_TYPES: neither advertised nor registrable.
    app = create_app(base_config(tmp_path, OAUTH_STORAGE_URL="memory://", OAUTH_GRANT_TYPES="client_credentials"))
    client = app.test_client()
    assert ECHO not in client.get("/.well-known/oauth-authorization-server").json["grant_types_supported"]
    state = app.extensions["mcp_oauth"]
    iat = secrets.new_token()
    state.storage.save_initial_access_token(InitialAccessToken(secrets.token_hash(iat), 0, 0))
    r = client.post("/oauth/register", json={"grant_types": [ECHO]}, headers=bearer(iat))
    assert_error(r, 400, "invalid_client_metadata", mentions="grant_types")
    assert_error(client.post("/oauth/token", data={"grant_type": ECHO}), 400, "unsupported_grant_type")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"OAUTH_STORAGE_URL": "brokenstore://x"}, "failed to load"),
        ({"OAUTH_STORAGE_URL": "notastorage://x"}, "does not implement"),
        ({"OAUTH_TOKEN_STORAGE_URL": "notastorage://x"}, "does not implement"),
        ({"OAUTH_GRANT_TYPES": "client_credentials nogranttype"}, "no grant_type"),
        ({"OAUTH_GRANT_TYPES": "client_credentials missing"}, "'missing'"),
    ],
)
def test_a_broken_plugin_fails_at_start_listing_the_installed_ones(
    tmp_path: Path, distribution: Callable[[], Any], overrides: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        create_app(base_config(tmp_path, **overrides))
    text = str(info.value)
    assert message in text
    assert "installed" in text
    group = contracts.GRANTS if "OAUTH_GRANT_TYPES" in overrides else contracts.STORAGE
    for name in contracts.installed(group):
        assert repr(name) in text, (name, text)
