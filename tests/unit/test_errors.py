"""The OAuthError hierarchy and its rendering (RFC 6749 §5.2, RFC 6750 §3, RFC 9728 §5.1)."""

from __future__ import annotations

import logging

import pytest
from flask import Flask
from marshmallow import ValidationError

from app import errors
from app.errors import (
    BearerInvalidRequestError,
    InsufficientScopeError,
    InvalidClientError,
    InvalidClientMetadataError,
    InvalidRedirectURIError,
    InvalidTokenError,
    OAuthError,
    RateLimitedError,
    StorageError,
    TemporarilyUnavailableError,
    register_error_handlers,
    safe_description,
)

RM = "http://127.0.0.1:8000/.well-known/oauth-protected-resource/mcp"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain text, with punctuation!", "plain text, with punctuation!"),
        ('say "hi"', "say ?hi?"),  # %x22 and %x5C are not allowed (RFC 6749 §5.2)
        ("C:\\path", "C:?path"),
        ("caf\u00e9", "caf?"),
        ("line\nbreak\ttab\rcr\x00nul", "line?break?tab?cr?nul"),
        ("rtl \u202e override", "rtl ? override"),
        ("lone \ud800 surrogate", "lone ? surrogate"),
        ("~!#[]", "~!#[]"),
    ],
)
def test_safe_description(text: str, expected: str) -> None:
    assert safe_description(text) == expected


def test_safe_description_is_bounded() -> None:
    assert len(safe_description("x" * 10_000)) == 300


def test_descriptions_are_sanitised_on_construction() -> None:
    e = InvalidTokenError('bad "token"\n\\', resource_metadata=RM)
    assert e.description == "bad ?token???"
    assert '"token"' not in e.headers()["WWW-Authenticate"]


def test_body_leaves_out_a_missing_description() -> None:
    assert OAuthError().body() == {"error": "invalid_request"}
    assert OAuthError("why").body() == {"error": "invalid_request", "error_description": "why"}


@pytest.mark.parametrize(
    ("cls", "code", "status"),
    [
        (errors.InvalidRequestError, "invalid_request", 400),
        (errors.RequestTooLargeError, "invalid_request", 413),
        (errors.UnsupportedMediaTypeError, "invalid_request", 415),
        (InvalidClientError, "invalid_client", 401),
        (errors.InvalidGrantError, "invalid_grant", 400),
        (errors.UnauthorizedClientError, "unauthorized_client", 400),
        (errors.UnsupportedGrantTypeError, "unsupported_grant_type", 400),
        (errors.InvalidScopeError, "invalid_scope", 400),
        (errors.InvalidTargetError, "invalid_target", 400),
        (errors.UnsupportedTokenTypeError, "unsupported_token_type", 400),
        (errors.AccessDeniedError, "access_denied", 403),
        (InvalidClientMetadataError, "invalid_client_metadata", 400),
        (InvalidRedirectURIError, "invalid_redirect_uri", 400),
        (InvalidTokenError, "invalid_token", 401),
        (InsufficientScopeError, "insufficient_scope", 403),
        (BearerInvalidRequestError, "invalid_request", 400),
        (TemporarilyUnavailableError, "temporarily_unavailable", 503),
        (RateLimitedError, "rate_limited", 429),
    ],
)
def test_codes_and_statuses(cls: type[OAuthError], code: str, status: int) -> None:
    e = cls("because")
    assert (e.error, e.status_code) == (code, status)
    assert e.headers()["Cache-Control"] == "no-store"
    assert e.body() == {"error": code, "error_description": "because"}


def test_invalid_client_asks_for_basic() -> None:
    assert InvalidClientError().headers()["WWW-Authenticate"].startswith("Basic ")


def test_bearer_without_credentials_has_no_error_attribute() -> None:
    # RFC 6750 §3.1: a request with no authentication information gets no error code.
    header = InvalidTokenError("token required", resource_metadata=RM, include_error=False).headers()[
        "WWW-Authenticate"
    ]
    assert header == f'Bearer realm="mcp", resource_metadata="{RM}"'


def test_bearer_invalid_token_shape() -> None:
    header = InvalidTokenError("token has expired", resource_metadata=RM, scope="mcp:tools").headers()[
        "WWW-Authenticate"
    ]
    assert header == (
        'Bearer realm="mcp", error="invalid_token", error_description="token has expired", '
        f'scope="mcp:tools", resource_metadata="{RM}"'
    )


def test_insufficient_scope_shape() -> None:
    e = InsufficientScopeError("needs mcp:resources", resource_metadata=RM, scope="mcp:resources mcp:tools")
    assert e.status_code == 403
    header = e.headers()["WWW-Authenticate"]
    assert header.startswith('Bearer realm="mcp", error="insufficient_scope"')
    assert 'scope="mcp:resources mcp:tools"' in header


def test_bearer_header_without_optional_parts() -> None:
    assert InvalidTokenError().headers()["WWW-Authenticate"] == 'Bearer realm="mcp", error="invalid_token"'


@pytest.mark.parametrize(("given", "header"), [(0, "1"), (-5, "1"), (1, "1"), (42, "42"), (2.9, "2")])
def test_retry_after_is_a_positive_integer(given: float, header: str) -> None:
    assert RateLimitedError("slow down", retry_after=given).headers()["Retry-After"] == header  # type: ignore[arg-type]


def test_temporarily_unavailable_has_retry_after() -> None:
    assert TemporarilyUnavailableError().headers()["Retry-After"].isdigit()


@pytest.mark.parametrize(
    ("messages", "cls", "description"),
    [
        ({"client_name": ["Too long."]}, InvalidClientMetadataError, "client_name: Too long."),
        ({"redirect_uris": ["x must not contain a fragment"]}, InvalidRedirectURIError, "redirect_uris: x must"),
        (
            {"redirect_uris": ["bad"], "scope": ["worse"]},  # redirect URI problems win
            InvalidRedirectURIError,
            "redirect_uris: bad; scope: worse",
        ),
        ({"contacts": {0: ["Not a valid string."]}}, InvalidClientMetadataError, "contacts.0: Not a valid string."),
        ({"_schema": ["whole body wrong"]}, InvalidClientMetadataError, "whole body wrong"),
    ],
)
def test_validation_error_names_the_field(messages: dict[str, object], cls: type[OAuthError], description: str) -> None:
    e = errors.validation_error(ValidationError(messages))  # type: ignore[arg-type]
    assert type(e) is cls
    assert e.description is not None and e.description.startswith(description)


@pytest.fixture
def err_app() -> Flask:
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 10
    register_error_handlers(app)

    @app.post("/oauth")
    def oauth() -> None:
        raise InvalidClientError("unknown client")

    @app.post("/body")
    def body() -> str:
        from flask import request

        return str(len(request.get_data()))

    @app.get("/storage")
    def storage() -> None:
        raise StorageError("OperationalError in get_client")

    @app.get("/crash")
    def crash() -> None:
        raise RuntimeError("secret-value-in-exception")

    @app.get("/marshmallow")
    def marsh() -> None:
        raise ValidationError({"redirect_uris": ["bad"]})

    return app


def test_oauth_error_response(err_app: Flask) -> None:
    r = err_app.test_client().post("/oauth")
    assert r.status_code == 401
    assert r.json == {"error": "invalid_client", "error_description": "unknown client"}
    assert r.headers["Cache-Control"] == "no-store"
    assert r.headers["WWW-Authenticate"].startswith("Basic")


@pytest.mark.parametrize(
    ("method", "path", "status", "error"),
    [("GET", "/nowhere", 404, "not_found"), ("GET", "/oauth", 405, "method_not_allowed")],
)
def test_http_errors_are_json(err_app: Flask, method: str, path: str, status: int, error: str) -> None:
    r = err_app.test_client().open(path, method=method)
    assert r.status_code == status
    assert r.json is not None and r.json["error"] == error and "error_description" in r.json
    assert r.headers["Cache-Control"] == "no-store"
    if status == 405:
        assert "POST" in r.headers["Allow"]


def test_oversized_body_is_413_json(err_app: Flask) -> None:
    r = err_app.test_client().post("/body", data=b"x" * 100, content_type="application/octet-stream")
    assert r.status_code == 413
    assert r.json == {"error": "invalid_request", "error_description": "request body is larger than 10 bytes"}


def test_storage_failure_is_503(err_app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    r = err_app.test_client().get("/storage")
    assert r.status_code == 503
    assert r.json is not None and r.json["error"] == "temporarily_unavailable"
    assert r.headers["Retry-After"] == "5"


def test_crash_is_500_json_without_details(err_app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="mcp_oauth"):
        r = err_app.test_client().get("/crash")
    assert r.status_code == 500
    assert r.json == {"error": "server_error", "error_description": "internal error"}
    assert b"secret-value" not in r.data and b"Traceback" not in r.data
    assert any("RuntimeError" in rec.getMessage() for rec in caplog.records)


def test_marshmallow_errors_are_rendered(err_app: Flask) -> None:
    r = err_app.test_client().get("/marshmallow")
    assert r.status_code == 400
    assert r.json == {"error": "invalid_redirect_uri", "error_description": "redirect_uris: bad"}
