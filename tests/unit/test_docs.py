"""The README documents every configuration key, so the table cannot drift from app/config.py."""

from __future__ import annotations

from app.config import Defaults
from tests.support.servers import ROOT


def test_every_config_key_is_in_the_readme_table() -> None:
    readme = (ROOT / "README.md").read_text()
    keys = [k for k in vars(Defaults) if k.isupper()]
    missing = [k for k in keys if f"| `{k}` |" not in readme]
    assert not missing, f"README configuration table lacks {missing}"
