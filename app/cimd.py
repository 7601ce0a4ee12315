"""Client ID Metadata Documents (MCP 2025-11-25; draft-ietf-oauth-client-id-metadata-document).

A client may use an ``https`` URL as its ``client_id``; the document at that URL is its
registration. Fetching a URL that a stranger chose is a server-side request forgery risk, so the
fetch here:

- resolves the host once, refuses it if any address is private, loopback, link-local,
  multicast, reserved or otherwise not global (unless ``OAUTH_CIMD_ALLOW_PRIVATE``), and then
  connects to exactly the address it checked, so DNS cannot change between check and connect;
- verifies TLS against the URL's host name; follows no redirects;
- stops after ``MAX_BYTES`` and after ``TIMEOUT`` seconds in total (DNS included);
- accepts only a JSON object whose ``client_id`` equals the URL and which passes the same
  validation as dynamic registration (RFC 7591 schema), as a public client.

Documents are cached per process, for the response's ``Cache-Control: max-age`` bounded to
``[MIN_TTL, MAX_TTL]``; failures are cached for ``FAILURE_TTL`` so that reloads cannot turn the
server into a request amplifier. When the token store can share documents between processes
(the ``redis`` plugin: ``DocumentCache``), fetched documents are also kept there for the same
time, so every worker and instance fetches a document once per lifetime rather than once each;
a document read from there is validated again before use, and a cache that fails is skipped.
Every failure is a ``MetadataDocumentError`` whose text is meant for the person on the error
page.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import logging
import re
import socket
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

from app.core.strict_json import no_duplicates, reject_constant
from app.models import Client

MAX_BYTES = 64 * 1024
TIMEOUT = 5.0
DEFAULT_TTL = 300
MIN_TTL = 60
MAX_TTL = 86400
FAILURE_TTL = 10
MAX_ENTRIES = 1000
# The document URL becomes the stored client_id (a 255-character column).
MAX_URL_LENGTH = 255

Resolver = Callable[..., list[tuple[Any, ...]]]
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d{1,10})\"?\s*(?:,|$)", re.IGNORECASE)
_dns_pool: ThreadPoolExecutor | None = None
_dns_lock = threading.Lock()


class MetadataDocumentError(Exception):
    """A client's metadata document cannot be used; ``str(e)`` is shown to the person."""


def is_metadata_url(client_id: str) -> bool:
    """True when ``client_id`` names a metadata document (an https URL) rather than a registration."""
    return client_id.startswith("https://")


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a document ``client_id`` (draft §3), or None when it can."""
    if len(url) > MAX_URL_LENGTH:
        return f"it is longer than {MAX_URL_LENGTH} characters"
    if any(ord(c) <= 0x20 or ord(c) >= 0x7F for c in url):
        return "it contains spaces, control or non-ASCII characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return "it is not a valid URL"
    if parts.scheme != "https" or not parts.hostname:
        return "it must be an https URL with a host"
    if "#" in url:
        return "it must not contain a fragment"
    if "@" in parts.netloc:
        return "it must not contain a user name or password"
    if not parts.path or parts.path == "/":
        return "it must have a path"
    if any(seg in (".", "..") for seg in parts.path.split("/")):
        return "it must not contain . or .. path segments"
    return None


def address_is_public(address: str) -> bool:
    """True for a globally routable unicast address; False for anything a fetch must not reach."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:10.0.0.1 reaches 10.0.0.1
    return bool(
        ip.is_global
        and not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast)
        and not (ip.is_reserved or ip.is_unspecified)
    )


def cache_ttl(cache_control: str | None) -> int:
    """Seconds to keep a document: its ``max-age`` bounded to [MIN_TTL, MAX_TTL]."""
    if not cache_control:
        return DEFAULT_TTL
    lowered = cache_control.lower()
    if "no-store" in lowered or "no-cache" in lowered:
        return MIN_TTL
    m = _MAX_AGE.search(cache_control)
    if m is None:
        return DEFAULT_TTL
    return max(MIN_TTL, min(MAX_TTL, int(m.group(1))))


def _resolve_with_timeout(resolver: Resolver, host: str, port: int, timeout: float) -> list[tuple[Any, ...]]:
    """getaddrinfo has no timeout of its own; run it in a small pool and stop waiting."""
    global _dns_pool
    with _dns_lock:
        if _dns_pool is None:
            _dns_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="cimd-dns")
    future = _dns_pool.submit(resolver, host, port, type=socket.SOCK_STREAM)
    try:
        return future.result(timeout=max(0.01, timeout))
    except FutureTimeout:
        raise MetadataDocumentError(f"looking up {host} took longer than {TIMEOUT:g} seconds") from None
    except (OSError, UnicodeError):
        raise MetadataDocumentError(f"the host {host} could not be found") from None


class MetadataFetcher:
    """Fetches one document over HTTPS with the SSRF rules above. No caching here."""

    def __init__(
        self,
        *,
        allow_private: bool = False,
        timeout: float = TIMEOUT,
        max_bytes: int = MAX_BYTES,
        resolver: Resolver = socket.getaddrinfo,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.allow_private = allow_private
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.resolver = resolver
        self.ssl_context = ssl_context or ssl.create_default_context()

    def fetch(self, url: str) -> tuple[dict[str, Any], int]:
        """The document at ``url`` and how long it may be cached. Raises MetadataDocumentError."""
        problem = url_problem(url)
        if problem:
            raise MetadataDocumentError(f"The client ID is not a usable metadata document URL: {problem}.")
        parts = urlsplit(url)
        host, port = str(parts.hostname), parts.port or 443
        deadline = time.monotonic() + self.timeout

        infos = _resolve_with_timeout(self.resolver, host, port, self.timeout)
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        if not addresses:
            raise MetadataDocumentError(f"the host {host} could not be found")
        if not self.allow_private:
            # Refuse if ANY answer is internal: a name may mix public and private addresses.
            internal = [a for a in addresses if not address_is_public(a)]
            if internal:
                raise MetadataDocumentError(
                    f"{host} resolves to a private or reserved address; this server does not fetch "
                    "client metadata from internal networks"
                )
        sock = self._connect(addresses, port, deadline, host)
        try:
            return self._request(sock, host, port, parts, deadline, url)
        finally:
            sock.close()

    def _connect(self, addresses: list[str], port: int, deadline: float, host: str) -> ssl.SSLSocket:
        last: Exception | None = None
        for address in addresses:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                # Connect to the checked address itself: no second lookup, no rebinding.
                raw = socket.create_connection((address, port), timeout=remaining)
            except OSError as e:
                last = e
                continue
            try:
                raw.settimeout(max(0.01, deadline - time.monotonic()))
                return self.ssl_context.wrap_socket(raw, server_hostname=host)
            except ssl.SSLCertVerificationError:
                raw.close()
                raise MetadataDocumentError(f"the TLS certificate of {host} is not valid") from None
            except (OSError, ssl.SSLError) as e:
                raw.close()
                last = e
        if isinstance(last, TimeoutError) or time.monotonic() >= deadline:
            raise MetadataDocumentError(f"{host} did not answer within {self.timeout:g} seconds")
        raise MetadataDocumentError(f"could not connect to {host} over HTTPS")

    def _request(
        self, sock: ssl.SSLSocket, host: str, port: int, parts: Any, deadline: float, url: str
    ) -> tuple[dict[str, Any], int]:
        conn = http.client.HTTPSConnection(host, port, context=self.ssl_context)
        conn.sock = sock  # already connected to the checked address; http.client will not reconnect
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        response: http.client.HTTPResponse | None = None
        try:
            conn.request(
                "GET",
                target,
                headers={"Accept": "application/json", "User-Agent": "mcp-oauth-server", "Connection": "close"},
            )
            response = conn.getresponse()
            if 300 <= response.status < 400:
                raise MetadataDocumentError(f"{host} answered with a redirect; redirects are not followed")
            if response.status != 200:
                raise MetadataDocumentError(f"{host} answered HTTP {response.status} for the metadata document")
            encoding = (response.getheader("Content-Encoding") or "identity").strip().lower()
            if encoding != "identity":
                raise MetadataDocumentError("the metadata document must not be compressed")
            ctype = (response.getheader("Content-Type") or "").split(";", 1)[0].strip().lower()
            if not (ctype == "application/json" or (ctype.startswith("application/") and ctype.endswith("+json"))):
                raise MetadataDocumentError("the metadata document is not served as application/json")
            declared = response.getheader("Content-Length")
            if declared is not None and declared.strip().isdigit() and int(declared) > self.max_bytes:
                raise MetadataDocumentError(f"the metadata document is larger than {self.max_bytes} bytes")
            body = bytearray()
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise MetadataDocumentError(f"{host} did not send the document within {self.timeout:g} seconds")
                sock.settimeout(remaining)
                chunk = response.read1(16384)  # never blocks for more than the remaining time
                if not chunk:
                    break
                body += chunk
                if len(body) > self.max_bytes:
                    raise MetadataDocumentError(f"the metadata document is larger than {self.max_bytes} bytes")
            ttl = cache_ttl(response.getheader("Cache-Control"))
        except TimeoutError:
            raise MetadataDocumentError(f"{host} did not send the document within {self.timeout:g} seconds") from None
        except (http.client.HTTPException, OSError):
            raise MetadataDocumentError(f"{host} sent a malformed HTTP response") from None
        finally:
            # The response owns the socket once the server said Connection: close; close both.
            if response is not None:
                response.close()
            conn.close()
        try:
            text = bytes(body).decode("utf-8")
            doc = json.loads(text, object_pairs_hook=no_duplicates, parse_constant=reject_constant)
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise MetadataDocumentError("the metadata document is not valid JSON") from None
        if not isinstance(doc, dict):
            raise MetadataDocumentError("the metadata document must be a JSON object")
        # Simple string comparison (RFC 3986 §6.2.1), as the draft requires.
        if doc.get("client_id") != url:
            raise MetadataDocumentError("the metadata document's client_id does not equal its URL")
        return doc, ttl


def document_metadata(doc: dict[str, Any], validate: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    """Client metadata from a fetched document, validated like a registration (public client).

    ``validate`` is the registration validator; it raises marshmallow ``ValidationError`` or an
    ``OAuthError``, both turned into MetadataDocumentError here.
    """
    from marshmallow import ValidationError

    from app.errors import OAuthError, validation_error

    # No secret can be agreed through a public document (draft §4.1).
    for field in ("client_secret", "client_secret_expires_at"):
        if field in doc:
            raise MetadataDocumentError(f"the metadata document must not contain {field}")
    method = doc.get("token_endpoint_auth_method", "none")
    if method != "none":
        raise MetadataDocumentError(
            "the metadata document asks for token_endpoint_auth_method "
            f"{str(method)[:40]}; this server accepts only public clients (none) by document"
        )
    body = {k: v for k, v in doc.items() if k != "client_id"}
    body["token_endpoint_auth_method"] = "none"
    if not body.get("redirect_uris"):
        raise MetadataDocumentError("the metadata document lists no redirect_uris")
    try:
        return validate(body)
    except ValidationError as e:
        raise MetadataDocumentError(
            f"the metadata document is invalid: {validation_error(e).description or 'bad metadata'}"
        ) from None
    except OAuthError as e:
        raise MetadataDocumentError(f"the metadata document is invalid: {e.description or e.error}") from None


log = logging.getLogger(__name__)


@runtime_checkable
class DocumentCache(Protocol):
    """Fetched metadata documents shared by processes (optional; the ``redis`` token store)."""

    def get_document(self, url: str) -> tuple[dict[str, Any], int] | None:
        """The document cached for ``url`` and its seconds left, or None."""
        ...

    def put_document(self, url: str, document: dict[str, Any], ttl: int) -> None:
        """Keep ``document`` for ``ttl`` seconds."""
        ...


class MetadataDocuments:
    """Resolves document URLs to ``Client`` records, with a bounded per-process cache in front of
    an optional shared one (``DocumentCache``)."""

    def __init__(
        self,
        fetcher: MetadataFetcher,
        validate: Callable[[dict[str, Any]], dict[str, Any]],
        clock: Callable[[], float] = time.monotonic,
        shared: DocumentCache | None = None,
    ) -> None:
        self.fetcher = fetcher
        self.validate = validate
        self.clock = clock
        self.shared = shared
        self._cache: OrderedDict[str, tuple[float, Client | MetadataDocumentError]] = OrderedDict()
        self._lock = threading.Lock()

    def cached(self, url: str) -> Client | MetadataDocumentError | None:
        """The cached outcome for ``url`` if still fresh, else None."""
        with self._lock:
            entry = self._cache.get(url)
            if entry is None:
                return None
            if entry[0] <= self.clock():
                del self._cache[url]
                return None
            return entry[1]

    def client(self, url: str, now: int, before_fetch: Callable[[], None] | None = None) -> Client:
        """The client described at ``url``. Raises MetadataDocumentError.

        ``before_fetch`` runs only when the network is about to be used (e.g. a rate limit).
        """
        hit = self.cached(url)
        if isinstance(hit, MetadataDocumentError):
            raise hit
        if hit is not None:
            return hit
        shared = self._from_shared(url, now)
        if shared is not None:
            return shared
        if before_fetch is not None:
            before_fetch()
        try:
            doc, ttl = self.fetcher.fetch(url)
            metadata = document_metadata(doc, self.validate)
        except MetadataDocumentError as e:
            self._store(url, FAILURE_TTL, e)
            raise
        client = self._client(url, metadata, now)
        self._store(url, ttl, client)
        self._shared_put(url, doc, ttl)
        return client

    def _from_shared(self, url: str, now: int) -> Client | None:
        """The client from the shared cache's copy (then kept per process too); None on a miss or
        when the copy is not this URL's document or fails validation (a server with other rules
        stored it), so that the document is fetched."""
        found = self._shared_get(url)
        if found is None or found[0].get("client_id") != url:
            return None
        doc, ttl = found
        try:
            metadata = document_metadata(doc, self.validate)
        except MetadataDocumentError:
            return None
        client = self._client(url, metadata, now)
        self._store(url, ttl, client)
        return client

    @staticmethod
    def _client(url: str, metadata: dict[str, Any], now: int) -> Client:
        return Client(client_id=url, metadata=metadata, issued_at=now, registered_by="cimd", last_used_at=now)

    # The shared cache only saves fetches: when it fails, the document is fetched as if it missed.
    def _shared_get(self, url: str) -> tuple[dict[str, Any], int] | None:
        if self.shared is None:
            return None
        try:
            found = self.shared.get_document(url)
        except Exception as e:
            log.warning("shared metadata-document cache unavailable (%s); fetching instead", type(e).__name__)
            return None
        if found is None or not isinstance(found[0], dict) or found[1] <= 0:
            return None
        return found[0], min(int(found[1]), MAX_TTL)

    def _shared_put(self, url: str, doc: dict[str, Any], ttl: int) -> None:
        if self.shared is None:
            return
        try:
            self.shared.put_document(url, doc, ttl)
        except Exception as e:
            log.warning("shared metadata-document cache unavailable (%s); not stored", type(e).__name__)

    def _store(self, url: str, ttl: int, value: Client | MetadataDocumentError) -> None:
        with self._lock:
            self._cache[url] = (self.clock() + ttl, value)
            self._cache.move_to_end(url)
            while len(self._cache) > MAX_ENTRIES:
                self._cache.popitem(last=False)
