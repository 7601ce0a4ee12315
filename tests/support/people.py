"""Test helpers for the person-facing authorization flow: PKCE pairs, a cheap password hasher,
and an HTML form reader that follows the login and consent pages as a browser would."""

from __future__ import annotations

import base64
import hashlib
import secrets as pysecrets
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

from argon2 import PasswordHasher

from app.users import LocalAuthenticator

PASSWORD = "correct horse battery"


def pkce_pair() -> tuple[str, str]:
    """(verifier, S256 challenge)."""
    verifier = pysecrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def fast_authenticator(state: Any) -> LocalAuthenticator:
    """A LocalAuthenticator with cheap argon2id parameters, installed the way another identity
    source would be (``state.extras["authenticator"]``). Tests only: real costs are the default."""
    auth = LocalAuthenticator(state.storage, PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    state.extras["authenticator"] = auth
    return auth


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)  # hidden, text, password, checked boxes
    checkboxes: dict[str, str] = field(default_factory=dict)  # every checkbox (checked or not)
    buttons: list[tuple[str, str]] = field(default_factory=list)  # (name, value) of submit buttons

    def submit(self, button: str | None = None, **values: str | None) -> dict[str, str]:
        """The body a browser would send: the fields, overrides (None removes), the button."""
        data = dict(self.fields)
        for name, value in values.items():
            if value is None:
                data.pop(name, None)
            else:
                data[name] = value
        if button is not None:
            matches = [b for b in self.buttons if b[1] == button]
            assert matches, f"no submit button with value {button!r}: {self.buttons}"
            name, value = matches[0]
            if name:
                data[name] = value
        return data


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v or "") for k, v in attrs}
        if tag == "form":
            self.forms.append(Form(action=a.get("action", ""), method=a.get("method", "get").lower()))
        elif not self.forms:
            return
        elif tag == "input":
            kind, name = a.get("type", "text"), a.get("name", "")
            if not name:
                return
            if kind == "checkbox":
                self.forms[-1].checkboxes[name] = a.get("value", "on")
                if "checked" in a:
                    self.forms[-1].fields[name] = a.get("value", "on")
            elif kind != "submit":
                self.forms[-1].fields[name] = a.get("value", "")
        elif tag == "button" and a.get("type", "submit") == "submit":
            self.forms[-1].buttons.append((a.get("name", ""), a.get("value", "")))


def forms(html: str) -> list[Form]:
    parser = _FormParser()
    parser.feed(html)
    return parser.forms


def form(html: str, action: str) -> Form:
    """The form whose hidden ``action`` field is ``action`` (login, consent, switch)."""
    for f in forms(html):
        if f.fields.get("action") == action:
            return f
    raise AssertionError(f"no {action} form in the page: {html[:2000]}")


def redirect_params(location: str) -> dict[str, str]:
    """Query parameters of a redirect Location, each exactly once."""
    query = parse_qs(urlsplit(location).query, keep_blank_values=True)
    assert all(len(v) == 1 for v in query.values()), f"repeated parameters in {location}"
    return {k: v[0] for k, v in query.items()}
