"""Hypothesis profiles for the property tests, and the apps they run against.

Two profiles, both with ``deadline=None`` (a loaded machine must not turn slowness into a
failure) and example counts sized so the whole package stays well under a minute:

- ``property-dev`` (default): random, with an example database under ``.pytest_cache`` so a
  failure found once is replayed first next time;
- ``property-ci`` (chosen when ``CI`` is set, as ``.ci/run`` does): derandomized and without a
  database, so a CI run is reproducible and writes nothing.

``PROPERTY_PROFILE`` picks one by name, and ``PROPERTY_EXAMPLES`` scales every example count
(e.g. ``PROPERTY_EXAMPLES=10`` for a long local hunt). The profile is applied per test through
``examples(n)``, not loaded globally, so other hypothesis users in the run (schemathesis) keep
their own settings.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

from app import create_app
from tests.conftest import base_config

_ROOT = Path(__file__).resolve().parents[2]
_COMMON: dict[str, Any] = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    "print_blob": True,
}
settings.register_profile(
    "property-dev",
    database=DirectoryBasedExampleDatabase(str(_ROOT / ".pytest_cache" / "hypothesis")),
    **_COMMON,
)
settings.register_profile("property-ci", database=None, derandomize=True, **_COMMON)

PROFILE = os.environ.get("PROPERTY_PROFILE") or ("property-ci" if os.environ.get("CI") else "property-dev")
SCALE = float(os.environ.get("PROPERTY_EXAMPLES", "1"))


def examples(n: int) -> settings:
    """Settings for one property test: the selected profile with ``n`` (scaled) examples."""
    return settings(settings.get_profile(PROFILE), max_examples=max(1, int(n * SCALE)))


def property_config(tmp_path: Path, storage: str) -> dict[str, Any]:
    """An app config on ``storage`` (``memory`` or ``sqlite``), rate limits out of the way."""
    url = "memory://" if storage == "memory" else f"sqlite:///{tmp_path}/property.sqlite3"
    return base_config(
        tmp_path,
        OAUTH_STORAGE_URL=url,
        OAUTH_GRANT_TYPES="authorization_code refresh_token client_credentials",
        RATELIMIT_ENABLED=False,
    )


@pytest.fixture(scope="module", params=["memory", "sqlite"])
def backend_app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """One app per module and storage backend, shared by every example of the module's tests."""
    app = create_app(property_config(tmp_path_factory.mktemp(f"property-{request.param}"), request.param))
    yield app
    app.extensions["mcp_oauth"].close()
