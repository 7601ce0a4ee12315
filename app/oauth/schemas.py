"""marshmallow schemas for request bodies: RFC 7591 client metadata.

Unknown metadata is dropped, not refused: RFC 7591 §2 says the server MUST ignore metadata it
does not understand, and real MCP clients send extra fields.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from marshmallow import (
    EXCLUDE,
    Schema,
    ValidationError,
    fields,
    post_load,
    pre_load,
    validate,
    validates,
    validates_schema,
)

from app.core import redirects
from app.core import scopes as scope_util

AUTH_METHODS = ("none", "client_secret_basic", "client_secret_post")
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
# Grants through which a person consents to each authorization; any other grant acts without one.
PERSON_GRANTS = frozenset({"authorization_code", "refresh_token"})
# A grant type is a short name or an absolute URI (RFC 6749 §4.5, extension grants). Which ones
# this server supports is checked against the enabled grant plugins (register.validate_metadata).
# (validate.Regexp anchors only the start, hence the \Z.)
_GRANT_TYPE = r"(?:[a-z][a-z0-9_]{0,63}|[a-zA-Z][a-zA-Z0-9+.\-]*:[\x21-\x7e]{1,200})\Z"

# C0 and C1 controls, DEL, and the bidirectional embeddings, overrides and isolates.
_CONTROL_OR_BIDI = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _plain_text(value: str) -> None:
    """No control or bidirectional-override characters: these values end up on pages and in logs.
    No unpaired surrogates either: a metadata document's JSON may escape one (CIMD), and the page
    showing it could not be encoded."""
    if _CONTROL_OR_BIDI.search(value):
        raise ValidationError("must not contain control or bidirectional-override characters")
    if _SURROGATE.search(value):
        raise ValidationError("must not contain unpaired surrogates")


_text = {"validate": [validate.Length(max=1000), _plain_text]}


def _https_or_loopback(value: str) -> None:
    problem = redirects.problem(value)
    if problem is not None or urlsplit(value).scheme not in ("https", "http"):
        raise ValidationError("must be an https URL")


class ClientMetadataSchema(Schema):
    """RFC 7591 §2 client metadata, with this server's rules."""

    class Meta:
        unknown = EXCLUDE

    redirect_uris = fields.List(fields.String(), validate=validate.Length(max=20), load_default=list)
    token_endpoint_auth_method = fields.String(
        validate=validate.OneOf(AUTH_METHODS), load_default="client_secret_basic"
    )
    grant_types = fields.List(
        fields.String(validate=validate.Regexp(_GRANT_TYPE, error="is not a grant type")),
        validate=validate.Length(min=1, max=3),
        load_default=lambda: ["authorization_code"],
    )
    response_types = fields.List(
        fields.String(validate=validate.Equal("code", error="only code is supported")),
        validate=validate.Length(max=1),
        load_default=lambda: ["code"],
    )
    client_name = fields.String(validate=validate.Length(max=200))
    client_uri = fields.String(validate=_https_or_loopback)
    logo_uri = fields.String(validate=_https_or_loopback)
    tos_uri = fields.String(validate=_https_or_loopback)
    policy_uri = fields.String(validate=_https_or_loopback)
    contacts = fields.List(fields.String(**_text), validate=validate.Length(max=10))
    scope = fields.String(validate=validate.Length(max=1000))
    software_id = fields.String(**_text)
    software_version = fields.String(**_text)

    @validates("redirect_uris")
    def _redirect_uris(self, value: list[str], **kwargs: Any) -> None:
        for uri in value:
            problem = redirects.problem(uri)
            if problem:
                raise ValidationError(f"{uri[:80]} {problem}")
        if len(set(value)) != len(value):
            raise ValidationError("must not repeat a URI")

    @validates("scope")
    def _scope(self, value: str, **kwargs: Any) -> None:
        try:
            scope_util.parse(value)
        except ValueError as e:
            raise ValidationError(str(e)) from None

    @validates("client_name")
    def _name(self, value: str, **kwargs: Any) -> None:
        _plain_text(value)

    @pre_load
    def _null_is_absent(self, data: Any, **kwargs: Any) -> Any:
        # RFC 7592 §2.2 treats omitted fields as null; treat a null as omitted, the same thing
        # said the other way round (some client libraries serialise unset fields as null).
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data

    @validates_schema
    def _consistent(self, data: dict[str, Any], **kwargs: Any) -> None:
        grants = data.get("grant_types", ["authorization_code"])
        if len(set(grants)) != len(grants):
            raise ValidationError("must not repeat a grant type", "grant_types")
        if "authorization_code" in grants:
            if not data.get("redirect_uris"):
                raise ValidationError("authorization_code clients need at least one redirect URI", "redirect_uris")
            if "code" not in data.get("response_types", ["code"]):
                raise ValidationError("authorization_code needs response_types [code]", "response_types")
        if "refresh_token" in grants and "authorization_code" not in grants:
            raise ValidationError("refresh_token goes with authorization_code", "grant_types")
        method = data.get("token_endpoint_auth_method", "client_secret_basic")
        if "client_credentials" in grants and method == "none":
            raise ValidationError(
                "client_credentials needs a confidential client (client_secret_basic or client_secret_post)",
                "token_endpoint_auth_method",
            )

    @post_load
    def _normalise(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        if "scope" in data:
            parsed = scope_util.parse(data["scope"])
            if parsed:
                data["scope"] = " ".join(parsed)
            else:
                del data["scope"]  # "" means the server's defaults
        if "authorization_code" not in data["grant_types"]:
            data["response_types"] = []  # RFC 7591 §2.1: response types follow the grants
        return data


client_metadata_schema = ClientMetadataSchema()
