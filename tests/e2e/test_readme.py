"""The README's quick-start steps, pasted verbatim into bash, against a live gunicorn server."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.support.servers import ROOT, start_gunicorn

pytestmark = pytest.mark.slow


def quick_start_blocks() -> list[tuple[str, str]]:
    """(language, text) of every fenced block in the README's Quick start section."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(\w+)\n(.*?)```", section, flags=re.S)


def test_quick_start_steps_work_verbatim(tmp_path: Path) -> None:
    blocks = quick_start_blocks()
    scripts = [text for lang, text in blocks if lang == "sh"]
    shown = [json.loads(text) for lang, text in blocks if lang == "json"]
    assert len(scripts) == 4 and len(shown) == 3

    env = {"OAUTH_STORAGE_URL": f"sqlite:///{tmp_path}/oauth.sqlite3"}
    server = start_gunicorn(env, tmp_path, workers=2)
    try:
        # The README says 127.0.0.1:8000; the test server runs on a free port.
        work = tmp_path / "shell"
        work.mkdir()
        (work / ".venv").symlink_to(ROOT / ".venv")
        (work / "wsgi.py").symlink_to(ROOT / "wsgi.py")
        shell_env = {k: v for k, v in os.environ.items() if not k.startswith(("OAUTH_", "FLASK_"))}
        shell_env |= env | {"OAUTH_ISSUER": server.url}
        script = ""
        for i, block in enumerate(scripts):
            script += block.replace("http://127.0.0.1:8000", server.url) + f"\necho; echo '=== {i}'\n"
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=work,
            env=shell_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        parts = re.split(r"^=== \d+$", done.stdout, flags=re.M)
        got = [json.loads(part.strip()) for part in parts[1:4]]
    finally:
        server.stop()

    for example, actual in zip(shown, got, strict=True):
        assert set(actual) == set(example), (example, actual)
    registered, token, whoami = got
    assert registered["grant_types"] == ["client_credentials"]
    assert token["token_type"] == "Bearer" and token["scope"] == "mcp:tools"
    assert whoami["client_id"] == registered["client_id"]
