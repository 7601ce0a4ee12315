"""The ``oauth`` blueprint: metadata, registration, token, revocation, introspection."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("oauth", __name__)

from app.oauth import (  # noqa: E402,F401  (routes)
    authorize,
    introspection,
    metadata,
    openapi,
    register,
    resource_metadata,
    token,
)
