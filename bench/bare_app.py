"""The ceiling: a minimal Flask app returning a small JSON object, served like the real one.

``gunicorn bench.bare_app:app`` with the same settings as the server gives the req/s that the
other benchmark targets are divided by.
"""

from __future__ import annotations

from flask import Flask
from flask.typing import ResponseReturnValue

app = Flask(__name__)


@app.get("/ping")
def ping() -> ResponseReturnValue:
    """A small JSON object, about the size of a whoami answer."""
    return {"status": "ok", "service": "bare"}
