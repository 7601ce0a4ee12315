"""The authorization endpoint (OAuth 2.1 §4.1.1, RFC 7636, RFC 8707, RFC 9207): login and consent.

``GET`` or ``POST /oauth/authorize`` (alias ``/authorize``) takes an authorization request as
query or form parameters. The person signs in, sees what the client asks for, and approves or
denies; the client gets ``code`` (or ``error``) plus ``state`` and ``iss`` at its redirect URI.

Trust order (RFC 6749 §4.1.2.1): until the client and its redirect URI are verified, every
problem is an HTML error page and never a redirect (an open redirector otherwise). After that,
problems go to the client's redirect URI with ``error``, ``error_description``, ``state`` and
``iss``, except that a self-registered (dynamic or metadata-document) client's https address
gets them only once the person has signed in (RFC 9700 §4.11.2); until then they are pages too.

No server-side state is kept between pages: the login and consent forms carry the original
authorization parameters as hidden fields and every POST validates them again from scratch,
exactly as a fresh request (so hidden fields are never trusted). Forms carry a CSRF token bound
to the session cookie; the session holds only the signed-in person, the login time and a marker
that ends the session when their password changes.

Remembered consent (OAuth 2.1 §7.3.1): a decision the person asked to remember skips the consent
page only for confidential clients, which must authenticate at the token endpoint, so a code
obtained without the person seeing a page is useless to any other program. A public client
(``none``, metadata-document clients included) cannot prove which program is asking (a loopback
redirect matches on any port, so any local program can use its client ID): the person approves
each of its requests. Its consent page offers no "remember" choice, a ``remember`` field sent
anyway stores nothing, and ``prompt=none`` answers ``consent_required``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from flask import Response, render_template, request, session, url_for
from flask.blueprints import BlueprintSetupState
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from app import audit
from app.cimd import DocumentCache, MetadataDocumentError, MetadataDocuments, MetadataFetcher, is_metadata_url
from app.core import pkce, redirects, secrets
from app.core import scopes as scope_util
from app.errors import (
    AccessDeniedError,
    InvalidRequestError,
    InvalidScopeError,
    OAuthError,
    RateLimitedError,
    StorageError,
    TemporarilyUnavailableError,
    UnauthorizedClientError,
    UnsupportedResponseTypeError,
)
from app.models import AuthorizationCode, Client, Consent
from app.oauth import bp
from app.oauth.params import form_params, query_params
from app.state import OAuthState, oauth_state
from app.users import Authenticator, LocalAuthenticator

log = logging.getLogger("mcp_oauth")

# The authorization-request parameters carried through the login and consent pages.
AUTHZ_PARAMS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "resource",
    "prompt",
)
# Page-only form fields; only meaningful on a POST that carries ``action``.
PAGE_FIELDS = frozenset({"csrf_token", "action", "username", "password", "decision", "remember", "subject"})
ACTIONS = frozenset({"login", "consent", "switch"})
UNVERIFIED_SOURCES = frozenset({"dynamic", "cimd"})

CSS = (Path(__file__).resolve().parent.parent / "templates" / "pages.css").read_text(encoding="utf-8")
_CSS_HASH = base64.b64encode(hashlib.sha256(CSS.encode("utf-8")).digest()).decode("ascii")


# -- errors shown to the person (never redirected) ---------------------------------------------


class ErrorPage(Exception):
    """Stop and show the person an HTML error page (status 400 unless said otherwise)."""

    def __init__(self, title: str, message: str, *, status: int = 400, code: str | None = None) -> None:
        super().__init__(message)
        self.title, self.message, self.status, self.code = title, message, status, code


class LoginRequiredError(OAuthError):
    """``prompt=none`` but nobody is signed in (OpenID Connect Core §3.1.2.6)."""

    error, status_code = "login_required", 400


class ConsentRequiredError(OAuthError):
    """``prompt=none`` but the person has not approved these scopes for this client."""

    error, status_code = "consent_required", 400


# -- the validated request ---------------------------------------------------------------------


@dataclass
class Verified:
    """A client whose redirect target is trusted: from here on errors go to ``target``."""

    client: Client
    redirect_uri: str | None  # exactly as sent; None when omitted (one registered)
    target: str  # where the response goes
    state: str | None


@dataclass
class AuthorizationRequest:
    verified: Verified
    scopes: list[str]
    resource: str
    code_challenge: str
    prompt: frozenset[str]
    params: dict[str, str] = field(default_factory=dict)  # the original parameters, for the forms


# -- setup -------------------------------------------------------------------------------------


def _setup(setup_state: BlueprintSetupState) -> None:
    """Per-app objects: the authenticator and the metadata-document resolver."""
    app = setup_state.app
    state: OAuthState = app.extensions["mcp_oauth"]
    state.extras.setdefault("authenticator", LocalAuthenticator(state.storage))

    def validate(body: dict[str, Any]) -> dict[str, Any]:
        from app.oauth.register import validate_metadata

        return validate_metadata(state, body)

    store = getattr(state.token_store, "target", state.token_store)  # unguarded: a cache failure is a miss
    state.extras.setdefault(
        "cimd",
        MetadataDocuments(
            MetadataFetcher(allow_private=bool(app.config.get("OAUTH_CIMD_ALLOW_PRIVATE"))),
            validate,
            shared=store if isinstance(store, DocumentCache) else None,
        ),
    )


bp.record_once(_setup)


def authenticator(state: OAuthState) -> Authenticator:
    auth: Authenticator = state.extras["authenticator"]
    return auth


# -- the view ----------------------------------------------------------------------------------


@bp.route("/oauth/authorize", methods=["GET", "POST"])
def authorize() -> ResponseReturnValue:
    state = oauth_state()
    try:
        response = _authorize(state)
    except ErrorPage as e:
        response = _error_page(e)
    except HTTPException as e:  # e.g. 413: a body larger than MAX_CONTENT_LENGTH
        response = _error_page(ErrorPage("Invalid request", _sentence(e.description or e.name), status=e.code or 400))
    except StorageError as e:
        log.error("storage unavailable at the authorization endpoint: %s", e)
        response = _error_page(
            ErrorPage(
                "Temporarily unavailable",
                "The sign-in service cannot reach its storage right now. Please try again in a moment.",
                status=503,
                code="temporarily_unavailable",
            )
        )
    return response


def _authorize(state: OAuthState) -> Response:
    max_len = int(state.config["OAUTH_MAX_PARAM_LENGTH"])
    try:
        params = form_params(max_len) if request.method == "POST" else query_params(max_len)
    except OAuthError as e:
        # Garbage, repeats or oversize: tell the client if its redirect can still be trusted.
        verified = _verify_lenient(state, _raw_params(), max_len)
        if verified is None:
            raise ErrorPage("Invalid request", _sentence(e.description or "The request is malformed.")) from None
        return _error_redirect(state, verified, e)

    action = params.get("action") if request.method == "POST" else None
    if action is not None:
        _check_csrf(params)
        if action not in ACTIONS:
            raise ErrorPage("Invalid request", "The form sent an unknown action.")
    authz = {k: v for k, v in params.items() if k not in PAGE_FIELDS}

    verified = _verify_client(state, authz)
    try:
        req = _validate(state, verified, authz)
        return _interact(state, req, action, params)
    except OAuthError as e:
        return _error_redirect(state, verified, e)
    except StorageError as e:
        log.error("storage unavailable at the authorization endpoint: %s", e)
        return _error_redirect(
            state, verified, TemporarilyUnavailableError("storage is unavailable, try again shortly")
        )


def _raw_params() -> str:
    """The request's parameters as text, however malformed (the body was already read)."""
    if request.method == "POST":
        return request.get_data(cache=True).decode("utf-8", "replace")
    return request.query_string.decode("latin-1")


# -- client and redirect URI (errors are pages) ------------------------------------------------


def _load_client(state: OAuthState, client_id: str) -> Client:
    if is_metadata_url(client_id):
        documents: MetadataDocuments = state.extras["cimd"]
        addr = request.remote_addr or "unknown"
        try:
            client = documents.client(
                client_id,
                state.now(),
                # A fetch costs an outbound request: count it like a registration.
                before_fetch=lambda: state.rate_limit("RATELIMIT_REGISTRATION", addr),
            )
        except RateLimitedError:
            raise ErrorPage(
                "Too many requests",
                "Too many applications were looked up from your address. Wait a minute and try again.",
                status=429,
            ) from None
        except MetadataDocumentError as e:
            raise ErrorPage(
                "This application could not be identified",
                f"Its client ID is a web address ({client_id[:120]}), but its details could not be "
                f"used: {_sentence(str(e))}",
                code="invalid_client",
            ) from None
        stored = state.storage.get_client(client_id)
        if stored is None or stored.metadata != client.metadata:
            # The token endpoint authenticates clients from storage: keep the document's copy there.
            state.storage.save_client(client)
        return client
    client = state.storage.get_client(client_id)
    if client is None:
        raise ErrorPage(
            "Unknown application",
            "The application that sent you here is not registered with this server. It may need to register again.",
            code="invalid_client",
        )
    return client


def _verify_client(state: OAuthState, params: dict[str, str]) -> Verified:
    """The client and where its responses go. Raises ErrorPage: nothing is trusted yet."""
    client_id = params.get("client_id")
    if client_id is None:
        raise ErrorPage("Invalid request", "The request does not say which application is asking (no client_id).")
    client = _load_client(state, client_id)
    redirect_uri = params.get("redirect_uri")
    registered = client.redirect_uris
    if redirect_uri is None:
        # OAuth 2.1 §4.1.1: may be omitted only when exactly one is registered.
        if len(registered) != 1:
            raise ErrorPage(
                "Invalid request",
                "The application did not say where to send you back (no redirect_uri), and it has "
                "several registered addresses.",
                code="invalid_request",
            )
        target = registered[0]
    else:
        if redirects.matches(redirect_uri, registered) is None:
            raise ErrorPage(
                "Redirect address not allowed",
                "The application asked to send you back to an address it has not registered. "
                "For your safety you were not redirected.",
                code="invalid_request",
            )
        target = redirect_uri  # a loopback match keeps the port the client is listening on
    return Verified(client=client, redirect_uri=redirect_uri, target=target, state=params.get("state"))


def _verify_lenient(state: OAuthState, raw: str, max_len: int) -> Verified | None:
    """After a strict parse failed: the verified client if ``client_id`` and ``redirect_uri``
    are each present once and valid (so the error may go to the client), else None."""
    try:
        pairs = parse_qsl(raw, keep_blank_values=True, errors="replace", max_num_fields=200)
    except ValueError:
        return None
    seen: dict[str, list[str]] = {}
    for name, value in pairs:
        seen.setdefault(name, []).append(value)
    single = {k: v[0] for k, v in seen.items() if len(v) == 1 and v[0] and len(v[0]) <= max_len}
    if "client_id" not in single or len(seen.get("client_id", [])) != 1 or len(seen.get("redirect_uri", [])) > 1:
        return None
    if "\ufffd" in single["client_id"] or "\ufffd" in single.get("redirect_uri", ""):
        return None
    try:
        verified = _verify_client(state, {k: v for k, v in single.items() if k in ("client_id", "redirect_uri")})
    except ErrorPage:
        return None
    st = single.get("state")
    verified.state = st if st is not None and "\ufffd" not in st else None
    return verified


# -- the rest of the request (errors go to the client) -----------------------------------------


def _validate(state: OAuthState, verified: Verified, params: dict[str, str]) -> AuthorizationRequest:
    client = verified.client
    response_type = params.get("response_type")
    if response_type is None:
        raise InvalidRequestError("response_type is required")
    if response_type != "code":
        raise UnsupportedResponseTypeError("only response_type=code is supported")
    if "authorization_code" not in client.grant_types:
        raise UnauthorizedClientError("this client is not registered for the authorization_code grant")

    # PKCE is mandatory and S256 only (OAuth 2.1 §4.1.1); an absent method means plain (RFC 7636).
    challenge = params.get("code_challenge")
    if challenge is None:
        raise InvalidRequestError("code_challenge is required (PKCE with S256)")
    method = params.get("code_challenge_method")
    if method != "S256":
        raise InvalidRequestError("code_challenge_method must be S256")
    if not pkce.valid_challenge(challenge):
        raise InvalidRequestError("code_challenge must be 43 base64url characters (S256)")

    try:
        requested = scope_util.parse(params.get("scope"))
    except ValueError as e:
        raise InvalidScopeError(str(e)) from None
    allowed = [s for s in state.client_scopes(client) if s in state.scopes]
    if requested:
        outside = [s for s in requested if s not in allowed]
        if outside:
            raise InvalidScopeError(f"scope not allowed for this client: {' '.join(outside)[:100]}")
        scopes = requested
    else:
        scopes = allowed
    if not scopes:
        raise InvalidScopeError("this client may not ask for any scope")

    resource_param = params.get("resource")
    resource = state.resolve_resource([resource_param] if resource_param is not None else [])

    # OpenID Connect prompt values that MCP clients send (e.g. prompt=consent); others are ignored.
    prompt = frozenset(params.get("prompt", "").split())
    if "none" in prompt and len(prompt) > 1:
        raise InvalidRequestError("prompt=none cannot be combined with other values")

    kept = {k: params[k] for k in AUTHZ_PARAMS if k in params}
    return AuthorizationRequest(verified, scopes, resource, challenge, prompt, kept)


# -- login, consent, code ----------------------------------------------------------------------


def _interact(state: OAuthState, req: AuthorizationRequest, action: str | None, form: dict[str, str]) -> Response:
    """Walk the person through login and consent; return a page or the final redirect."""
    if action == "switch":
        _sign_out()
        return _login_page(state, req)

    subject = _signed_in(state)
    if action == "login":
        outcome = _login(state, req, form)
        if isinstance(outcome, Response):
            return outcome
        subject = outcome
    elif action is None and "login" in req.prompt:
        # prompt=login (or a fresh request asking for it): sign in again even with a session.
        subject = None

    if subject is None:
        if "none" in req.prompt:
            raise LoginRequiredError("the person is not signed in")
        return _login_page(state, req)

    if action == "consent" and form.get("subject") != subject:
        # Signed in as someone else (another tab) since the page was shown: ask this person.
        action = None
    if action == "consent":
        decision = form.get("decision")
        if decision == "deny":
            audit.event("consent.denied", sub=subject, client_id=req.verified.client.client_id, scope=req.scopes)
            raise AccessDeniedError("the person denied the request")
        if decision != "approve":
            raise ErrorPage("Invalid request", "The form did not say whether you approve or deny.")
        if form.get("remember") == "yes" and _may_remember(req.verified.client):
            _remember(state, subject, req)
        audit.event("consent.granted", sub=subject, client_id=req.verified.client.client_id, scope=req.scopes)
        return _issue_code(state, req, subject)

    client = req.verified.client
    if "consent" not in req.prompt and _may_remember(client) and _consented(state, subject, req):
        return _issue_code(state, req, subject)
    if "none" in req.prompt:
        if not _may_remember(client):
            raise ConsentRequiredError("the person approves each request of a public client")
        raise ConsentRequiredError("the person has not approved this request")
    return _consent_page(state, req, subject)


def _signed_in(state: OAuthState) -> str | None:
    """The signed-in person, if the session is still valid for them."""
    subject = session.get("sub")
    if not isinstance(subject, str):
        return None
    auth_time = session.get("auth_time")
    ttl = int(state.config["OAUTH_LOGIN_SESSION_TTL"])
    marker = authenticator(state).session_marker(subject)
    if (
        marker is None
        or not isinstance(auth_time, int)
        or auth_time + ttl <= state.now()
        or not hmac.compare_digest(str(session.get("marker", "")), marker)
    ):
        _sign_out()
        return None
    return subject


def _sign_out() -> None:
    for key in ("sub", "auth_time", "marker"):
        session.pop(key, None)


def _login(state: OAuthState, req: AuthorizationRequest, form: dict[str, str]) -> str | Response:
    """Check the credentials; the subject on success, else the login page with an error."""
    username = form.get("username", "").strip()
    password = form.get("password", "")
    addr = request.remote_addr or "unknown"
    user_key = username.casefold()[:255]
    if not username or not password:
        return _login_page(state, req, username=username, error="Enter your username and password.")
    try:
        # Refuse before checking the password, so a throttled guesser learns nothing.
        state.check_rate_limit("RATELIMIT_LOGIN", "addr", addr)
        state.check_rate_limit("RATELIMIT_LOGIN", "user", user_key)
    except RateLimitedError as e:
        audit.event("login.failed", username=username[:255], reason="throttled")
        page = _login_page(
            state,
            req,
            username=username,
            error=f"Too many failed sign-in attempts. Wait {e.retry_after} seconds and try again.",
            status=429,
        )
        page.headers["Retry-After"] = str(e.retry_after)
        return page
    subject = authenticator(state).authenticate(username, password)
    if subject is None:
        state.rate_limit_quiet("RATELIMIT_LOGIN", "addr", addr)
        state.rate_limit_quiet("RATELIMIT_LOGIN", "user", user_key)
        audit.event("login.failed", username=username[:255], reason="bad_credentials")
        return _login_page(state, req, username=username, error="Wrong username or password.")
    if state.limiter is not None:
        # A correct password clears that username's failures (not the address's).
        state.limiter.clear(str(state.config["RATELIMIT_LOGIN"]), "RATELIMIT_LOGIN", "user", user_key)
    marker = authenticator(state).session_marker(subject) or ""
    session.clear()  # a new login starts a new session (and a new CSRF token)
    session["sub"] = subject
    session["auth_time"] = state.now()
    session["marker"] = marker
    audit.event("login.succeeded", username=subject)
    return subject


def _may_remember(client: Client) -> bool:
    """Whether a remembered consent may approve this client's requests without the page: only
    for confidential clients (OAuth 2.1 §7.3.1). A public client's code could be obtained by any
    program that uses its client ID, so the person must see every request."""
    return not client.is_public


def _consented(state: OAuthState, subject: str, req: AuthorizationRequest) -> bool:
    consent = state.storage.get_consent(subject, req.verified.client.client_id)
    return consent is not None and set(req.scopes) <= consent.scopes


def _remember(state: OAuthState, subject: str, req: AuthorizationRequest) -> None:
    client_id = req.verified.client.client_id
    existing = state.storage.get_consent(subject, client_id)
    scopes = frozenset(req.scopes) | (existing.scopes if existing else frozenset())
    state.storage.save_consent(Consent(subject=subject, client_id=client_id, scopes=scopes, granted_at=state.now()))


def _issue_code(state: OAuthState, req: AuthorizationRequest, subject: str) -> Response:
    now = state.now()
    code = secrets.new_token()
    auth_time = session.get("auth_time")
    state.token_store.save_code(
        AuthorizationCode(
            code_hash=secrets.token_hash(code),
            client_id=req.verified.client.client_id,
            redirect_uri=req.verified.redirect_uri or "",
            code_challenge=req.code_challenge,
            scope=scope_util.join(req.scopes),
            resource=req.resource,
            subject=subject,
            family_id=secrets.new_identifier(),
            expires_at=now + int(state.config["OAUTH_CODE_TTL"]),
            auth_time=auth_time if isinstance(auth_time, int) else now,
        )
    )
    return _redirect(state, req.verified, {"code": code})


# -- responses ---------------------------------------------------------------------------------


def _redirect(state: OAuthState, verified: Verified, values: dict[str, str]) -> Response:
    """Send the authorization response to the verified target, with ``state`` and ``iss``."""
    out = dict(values)
    if verified.state is not None:
        out["state"] = verified.state
    out["iss"] = state.issuer  # RFC 9207, on success and error alike
    target = verified.target
    sep = "" if target.endswith(("?", "&")) else ("&" if urlsplit(target).query else "?")
    # 303 after a POST: the browser must not re-send the form (with a password) to the client.
    response = Response(status=303 if request.method == "POST" else 302)
    response.headers["Location"] = target + sep + urlencode(out)
    return _secure(response, verified)


def _error_redirect(state: OAuthState, verified: Verified, error: OAuthError) -> Response:
    if not _may_redirect(state, verified):
        # RFC 9700 §4.11.2 (OAuth 2.1 §7.13.2): a self-registered client could otherwise send a
        # malformed request on purpose and use this server to bounce a person to its site.
        raise ErrorPage(
            "The application's request was refused",
            f"{_sentence(error.description or error.error)} This application registered itself and is "
            "not verified, so you were not sent back to it before signing in.",
            status=error.status_code if error.status_code in (429, 503) else 400,
            code=error.error,
        )
    values = {"error": error.error}
    if error.description:
        values["error_description"] = error.description
    return _redirect(state, verified, values)


def _may_redirect(state: OAuthState, verified: Verified) -> bool:
    """Whether the response may go to ``verified.target`` now. Always for clients the operator
    registered, for loopback and private-use targets (they stay on the person's device), and once
    the person has signed in; an unverified client's web address must wait for the sign-in."""
    if verified.client.registered_by not in UNVERIFIED_SOURCES:
        return True
    if urlsplit(verified.target).scheme.lower() != "https":
        return True
    return _signed_in(state) is not None


def _csrf_token() -> str:
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.new_token(24)
        session["csrf"] = token
    return token


def _check_csrf(form: dict[str, str]) -> None:
    expected = session.get("csrf")
    sent = form.get("csrf_token")
    if not isinstance(expected, str) or sent is None or not hmac.compare_digest(expected.encode(), sent.encode()):
        raise ErrorPage(
            "This form has expired",
            "The page you submitted is no longer valid (it may be old, or cookies may be blocked). "
            "Nothing was approved. Go back to the application and start again.",
            code="invalid_request",
        )


def _client_view(client: Client) -> dict[str, Any]:
    name = str(client.metadata.get("client_name") or "").strip()
    return {
        "client_name": name or client.client_id,
        "client_id": client.client_id,
        "unverified": client.registered_by in UNVERIFIED_SOURCES,
        "cimd_host": urlsplit(client.client_id).hostname if client.registered_by == "cimd" else None,
    }


def _redirect_host(target: str) -> str:
    parts = urlsplit(target)
    if redirects.is_loopback(target):
        return f"{parts.hostname} (an application on this computer)"
    if parts.scheme in ("http", "https"):
        return parts.netloc.rsplit("@", 1)[-1]
    return f"the app that handles {parts.scheme}: links"


def _form_context(state: OAuthState, req: AuthorizationRequest) -> dict[str, Any]:
    return {
        "hidden": list(req.params.items()),
        "csrf_token": _csrf_token(),
        "action_url": url_for("oauth.authorize"),
        **_client_view(req.verified.client),
    }


def _login_page(
    state: OAuthState, req: AuthorizationRequest, *, username: str = "", error: str | None = None, status: int = 200
) -> Response:
    return _page(
        "login.html",
        req.verified,
        status,
        username=username[:255],
        error=error,
        **_form_context(state, req),
    )


def _consent_page(state: OAuthState, req: AuthorizationRequest, subject: str) -> Response:
    scopes = [{"name": s, "description": state.scopes.get(s, s)} for s in req.scopes]
    return _page(
        "consent.html",
        req.verified,
        200,
        subject=subject,
        scopes=scopes,
        redirect_host=_redirect_host(req.verified.target),
        resource=req.resource,
        rememberable=_may_remember(req.verified.client),
        **_form_context(state, req),
    )


def _error_page(e: ErrorPage) -> Response:
    return _page("error.html", None, e.status, title=e.title, message=e.message, code=e.code)


def _page(template: str, verified: Verified | None, status: int, **context: Any) -> Response:
    issuer_host = urlsplit(oauth_state().issuer).netloc
    html = render_template(template, css=CSS, issuer_host=issuer_host, **context)
    response = Response(html, status=status, mimetype="text/html")
    return _secure(response, verified)


def _form_action_sources(verified: Verified | None) -> str:
    """CSP form-action: our own forms, plus the client's origin, because browsers apply
    form-action to the redirect that follows a form POST."""
    sources = ["'self'"]
    if verified is not None:
        parts = urlsplit(verified.target)
        if parts.scheme in ("http", "https") and parts.netloc:
            sources.append(f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}")
        elif parts.scheme:
            sources.append(f"{parts.scheme}:")
    return " ".join(sources)


def _secure(response: Response, verified: Verified | None) -> Response:
    """Headers for every response of this endpoint: no caching, no framing, no scripts, no referrer."""
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; style-src 'sha256-{_CSS_HASH}'; img-src 'self'; "
        f"form-action {_form_action_sources(verified)}; frame-ancestors 'none'; base-uri 'none'"
    )
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."
