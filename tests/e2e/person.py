"""The person in end-to-end tests: opens an authorization URL, signs in and approves, over HTTP.

It reads the login and consent pages' real forms (hidden fields, CSRF token, cookies), fills in
what a person would, and stops at the redirect to the client's callback, returning what the
callback would receive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import parse_qsl, urljoin, urlsplit

import httpx


@dataclass
class Form:
    action: str
    fields: dict[str, str] = field(default_factory=dict)
    buttons: list[tuple[str, str]] = field(default_factory=list)


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(Form(a.get("action", "")))
        elif self.forms and tag == "input" and a.get("name"):
            if a.get("type") == "checkbox" and "checked" not in a:
                return
            self.forms[-1].fields[a["name"]] = a.get("value", "")
        elif self.forms and tag == "button" and a.get("name"):
            self.forms[-1].buttons.append((a["name"], a.get("value", "")))


def forms_of(html: str) -> list[Form]:
    parser = _Forms()
    parser.feed(html)
    return parser.forms


@dataclass
class Redirected:
    """What the client's redirect URI receives."""

    location: str
    params: dict[str, str]


async def authorize(url: str, username: str, password: str, *, max_steps: int = 6) -> Redirected:
    """Follow the authorization pages as a person who signs in and approves."""
    async with httpx.AsyncClient(follow_redirects=False, timeout=30) as browser:
        response = await browser.get(url)
        for _ in range(max_steps):
            if response.status_code in (302, 303):
                location = response.headers["Location"]
                target = urlsplit(location)
                base = urlsplit(str(response.request.url))
                if (target.scheme, target.netloc) != (base.scheme, base.netloc) and target.netloc:
                    return Redirected(location, dict(parse_qsl(target.query)))
                response = await browser.get(urljoin(str(response.request.url), location))
                continue
            assert response.status_code == 200, (response.status_code, response.text[:500])
            forms = {f.fields.get("action"): f for f in forms_of(response.text)}
            page_url = str(response.request.url)
            if "login" in forms:
                form = forms["login"]
                data = form.fields | {"username": username, "password": password}
            elif "consent" in forms:
                form = forms["consent"]
                data = form.fields | {"decision": "approve"}
            else:
                raise AssertionError(f"no login or consent form on {page_url}: {response.text[:500]}")
            response = await browser.post(urljoin(page_url, form.action or page_url), data=data)
        raise AssertionError("too many pages before the redirect")
