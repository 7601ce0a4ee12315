"""The ``oauth`` blueprint: metadata, registration, token, revocation, introspection."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("oauth", __name__)

from app.oauth import introspection, metadata, register, resource_metadata, token  # noqa: E402,F401  (routes)
