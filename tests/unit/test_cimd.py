"""Client ID Metadata Documents: URL rules, SSRF defences, limits, validation and caching.

The fetch tests run a real HTTPS server on 127.0.0.1 with a throw-away CA; a stub resolver maps
the test host names to addresses, so nothing leaves the machine.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app import cimd
from app.cimd import (
    MetadataDocumentError,
    MetadataDocuments,
    MetadataFetcher,
    address_is_public,
    cache_ttl,
    document_metadata,
    url_problem,
)
from app.oauth.schemas import client_metadata_schema

REDIRECT = "http://127.0.0.1:7777/callback"

# -- URL and address rules -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://client.example.com/metadata.json",
        "https://client.example.com:8443/oauth/client",
        "https://client.example.com/a/b?version=2",
    ],
)
def test_usable_urls(url: str) -> None:
    assert url_problem(url) is None


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://client.example.com/metadata.json", "https"),
        ("https://client.example.com", "path"),
        ("https://client.example.com/", "path"),
        ("https://client.example.com/a/../b", ". or .."),
        ("https://client.example.com/./b", ". or .."),
        ("https://client.example.com/a#frag", "fragment"),
        ("https://user:pw@client.example.com/a", "user name"),
        ("https://client.example.com/a b", "spaces"),
        ("https://client.example.com/\u00e9", "non-ASCII"),
        ("https://client.example.com:99999/a", "valid URL"),
        ("https:///a", "host"),
        ("https://client.example.com/" + "a" * 300, "longer than"),
    ],
)
def test_unusable_urls(url: str, why: str) -> None:
    problem = url_problem(url)
    assert problem is not None and why in problem


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("240.0.0.1", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("::", False),
        ("fe80::1%eth0", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped loopback
        ("::ffff:10.0.0.1", False),
        ("not an address", False),
    ],
)
def test_address_is_public(address: str, public: bool) -> None:
    assert address_is_public(address) is public


@pytest.mark.parametrize(
    ("header", "ttl"),
    [
        (None, cimd.DEFAULT_TTL),
        ("", cimd.DEFAULT_TTL),
        ("max-age=600", 600),
        ("public, max-age=3600", 3600),
        ("max-age=5", cimd.MIN_TTL),
        ("max-age=99999999", cimd.MAX_TTL),
        ("no-store", cimd.MIN_TTL),
        ("no-cache, max-age=600", cimd.MIN_TTL),
        ("s-maxage=600", cimd.DEFAULT_TTL),
        ("max-age=abc", cimd.DEFAULT_TTL),
    ],
)
def test_cache_ttl(header: str | None, ttl: int) -> None:
    assert cache_ttl(header) == ttl


# -- document validation ------------------------------------------------------------------------


def _validate(body: dict[str, Any]) -> dict[str, Any]:
    return dict(client_metadata_schema.load(body))


def test_document_becomes_public_client_metadata() -> None:
    doc = {"client_id": "https://c.example.com/m.json", "client_name": "C", "redirect_uris": [REDIRECT]}
    meta = document_metadata(doc, _validate)
    assert meta["token_endpoint_auth_method"] == "none"
    assert meta["redirect_uris"] == [REDIRECT]
    assert meta["grant_types"] == ["authorization_code"]
    assert "client_id" not in meta


@pytest.mark.parametrize(
    ("doc", "why"),
    [
        ({"redirect_uris": [REDIRECT], "client_secret": "s"}, "client_secret"),
        ({"redirect_uris": [REDIRECT], "client_secret_expires_at": 0}, "client_secret_expires_at"),
        ({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "client_secret_basic"}, "only public"),
        ({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "private_key_jwt"}, "only public"),
        ({}, "no redirect_uris"),
        ({"redirect_uris": []}, "no redirect_uris"),
        ({"redirect_uris": ["javascript:alert(1)"]}, "redirect_uris"),
        ({"redirect_uris": [REDIRECT], "grant_types": ["client_credentials"]}, "invalid"),
        ({"redirect_uris": "http://127.0.0.1/cb"}, "invalid"),
    ],
)
def test_bad_documents(doc: dict[str, Any], why: str) -> None:
    with pytest.raises(MetadataDocumentError) as e:
        document_metadata({"client_id": "https://c.example.com/m.json", **doc}, _validate)
    assert why in str(e.value)


# -- fetching over real HTTPS -------------------------------------------------------------------


def _certificates(tmp: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for cimd.test, localhost and 127.0.0.1."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cimd.test")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("cimd.test"),
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = tmp / "ca.pem", tmp / "cert.pem", tmp / "key.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return ca_path, cert_path, key_path


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: bytes, ctype: str = "application/json", **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if "no_length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            if name != "no_length":
                self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        url = f"https://{self.headers['Host']}{self.path}"
        doc = {"client_id": url, "client_name": "Doc Client", "redirect_uris": [REDIRECT]}
        self.server.paths.append(self.path)  # type: ignore[attr-defined]
        path = self.path.split("?")[0]
        if path == "/client.json":
            self._send(200, json.dumps(doc).encode())
        elif path == "/cached.json":
            self._send(200, json.dumps(doc).encode(), Cache_Control="public, max-age=7200")
        elif path == "/vendor.json":
            self._send(200, json.dumps(doc).encode(), ctype="application/oauth-client+json; charset=utf-8")
        elif path == "/redirect":
            self._send(302, b"", Location="/client.json")
        elif path == "/missing":
            self._send(404, b"{}")
        elif path == "/html":
            self._send(200, b"<html>login</html>", ctype="text/html")
        elif path == "/big":
            self._send(200, b" " * 70000 + json.dumps(doc).encode())
        elif path == "/big-no-length":
            self._send(200, b" " * 70000 + json.dumps(doc).encode(), no_length="1")
        elif path == "/gzip":
            self._send(200, json.dumps(doc).encode(), Content_Encoding="gzip")
        elif path == "/wrong-id":
            self._send(200, json.dumps({**doc, "client_id": url + "x"}).encode())
        elif path == "/array":
            self._send(200, b"[1, 2]")
        elif path == "/not-json":
            self._send(200, b"{nope")
        elif path == "/dupe":
            self._send(200, b'{"client_id": "a", "client_id": "b"}')
        elif path == "/nan":
            self._send(200, b'{"x": NaN}')
        elif path == "/drip":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            try:
                for _ in range(40):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                pass
        else:
            self._send(404, b"{}")


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: Any) -> Iterator[tuple[int, Path, list[str]]]:
    tmp = tmp_path_factory.mktemp("tls")
    ca, cert, key = _certificates(tmp)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.paths = []  # type: ignore[attr-defined]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], ca, server.paths  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()


class StubResolver:
    """Maps every name to fixed addresses and counts lookups."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses
        self.calls: list[str] = []

    def __call__(self, host: str, port: int, type: int = 0, **kw: Any) -> list[tuple[Any, ...]]:
        self.calls.append(host)
        out = []
        for a in self.addresses:
            family = socket.AF_INET6 if ":" in a else socket.AF_INET
            out.append((family, socket.SOCK_STREAM, 6, "", (a, port)))
        return out


def fetcher(tls: tuple[int, Path, list[str]], *addresses: str, **kw: Any) -> MetadataFetcher:
    resolver = kw.pop("resolver", None) or StubResolver(*(addresses or ("127.0.0.1",)))
    ctx = ssl.create_default_context(cafile=str(tls[1]))
    return MetadataFetcher(allow_private=kw.pop("allow_private", True), resolver=resolver, ssl_context=ctx, **kw)


def url(tls: tuple[int, Path, list[str]], path: str, host: str = "cimd.test") -> str:
    return f"https://{host}:{tls[0]}{path}"


def test_fetch_a_document(tls_server: Any) -> None:
    resolver = StubResolver("127.0.0.1")
    doc, ttl = fetcher(tls_server, resolver=resolver).fetch(url(tls_server, "/client.json"))
    assert doc["client_id"] == url(tls_server, "/client.json")
    assert doc["client_name"] == "Doc Client"
    assert ttl == cimd.DEFAULT_TTL
    # One lookup; the connection went to the address that was checked (the name itself does not
    # resolve anywhere but the stub), and TLS was verified against the name.
    assert resolver.calls == ["cimd.test"]


def test_fetch_honours_max_age_and_vendor_json(tls_server: Any) -> None:
    assert fetcher(tls_server).fetch(url(tls_server, "/cached.json"))[1] == 7200
    assert fetcher(tls_server).fetch(url(tls_server, "/vendor.json"))[0]["client_name"] == "Doc Client"


def test_fetch_sends_the_query(tls_server: Any) -> None:
    doc, _ = fetcher(tls_server).fetch(url(tls_server, "/client.json?v=2"))
    assert doc["client_id"].endswith("/client.json?v=2")
    assert "/client.json?v=2" in tls_server[2]


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("/redirect", "redirects are not followed"),
        ("/missing", "HTTP 404"),
        ("/html", "not served as application/json"),
        ("/big", "larger than 65536 bytes"),
        ("/big-no-length", "larger than 65536 bytes"),
        ("/gzip", "must not be compressed"),
        ("/wrong-id", "client_id does not equal its URL"),
        ("/array", "must be a JSON object"),
        ("/not-json", "not valid JSON"),
        ("/dupe", "not valid JSON"),
        ("/nan", "not valid JSON"),
    ],
)
def test_fetch_failures(tls_server: Any, path: str, why: str) -> None:
    with pytest.raises(MetadataDocumentError) as e:
        fetcher(tls_server).fetch(url(tls_server, path))
    assert why in str(e.value)


def test_redirect_is_not_followed(tls_server: Any) -> None:
    paths = tls_server[2]
    before = len(paths)
    with pytest.raises(MetadataDocumentError):
        fetcher(tls_server).fetch(url(tls_server, "/redirect"))
    assert paths[before:] == ["/redirect"]


def test_total_time_limit(tls_server: Any) -> None:
    start = time.monotonic()
    with pytest.raises(MetadataDocumentError) as e:
        fetcher(tls_server, timeout=1.0).fetch(url(tls_server, "/drip"))
    assert "within 1 seconds" in str(e.value)
    assert time.monotonic() - start < 2.5  # a trickle of bytes does not extend the deadline


def test_slow_dns_is_cut_off() -> None:
    def slow(*args: Any, **kw: Any) -> list[Any]:
        time.sleep(2)
        return []

    start = time.monotonic()
    with pytest.raises(MetadataDocumentError) as e:
        MetadataFetcher(resolver=slow, timeout=0.3).fetch("https://slow.example.com/m.json")
    assert "took longer" in str(e.value)
    assert time.monotonic() - start < 1.5


def test_unknown_host() -> None:
    def fail(*args: Any, **kw: Any) -> list[Any]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(MetadataDocumentError) as e:
        MetadataFetcher(resolver=fail).fetch("https://nowhere.example.com/m.json")
    assert "could not be found" in str(e.value)


def test_untrusted_certificate(tls_server: Any) -> None:
    f = MetadataFetcher(allow_private=True, resolver=StubResolver("127.0.0.1"))  # system CAs only
    with pytest.raises(MetadataDocumentError) as e:
        f.fetch(url(tls_server, "/client.json"))
    assert "TLS certificate" in str(e.value)


def test_certificate_for_another_name(tls_server: Any) -> None:
    with pytest.raises(MetadataDocumentError) as e:
        fetcher(tls_server).fetch(url(tls_server, "/client.json", host="other.test"))
    assert "TLS certificate" in str(e.value)


def test_connection_refused() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    f = MetadataFetcher(allow_private=True, resolver=StubResolver("127.0.0.1"))
    with pytest.raises(MetadataDocumentError) as e:
        f.fetch(f"https://cimd.test:{port}/client.json")
    assert "could not connect" in str(e.value)


@pytest.mark.parametrize(
    "addresses",
    [
        ("127.0.0.1",),
        ("10.0.0.7",),
        ("169.254.169.254",),
        ("::1",),
        ("::ffff:127.0.0.1",),
        ("93.184.216.34", "10.0.0.7"),  # one private answer among public ones is enough to refuse
    ],
)
def test_private_addresses_are_refused_before_connecting(tls_server: Any, addresses: tuple[str, ...]) -> None:
    paths = tls_server[2]
    before = len(paths)
    with pytest.raises(MetadataDocumentError) as e:
        fetcher(tls_server, *addresses, allow_private=False).fetch(url(tls_server, "/client.json"))
    assert "private or reserved address" in str(e.value)
    assert paths[before:] == []


def test_bad_url_is_refused_without_a_lookup() -> None:
    resolver = StubResolver("127.0.0.1")
    with pytest.raises(MetadataDocumentError) as e:
        MetadataFetcher(resolver=resolver).fetch("https://c.example.com/")
    assert "must have a path" in str(e.value)
    assert resolver.calls == []


# -- the cache ----------------------------------------------------------------------------------


class FakeFetcher:
    def __init__(self, ttl: int = 300, fail: bool = False) -> None:
        self.ttl, self.fail, self.calls = ttl, fail, 0

    def fetch(self, url: str) -> tuple[dict[str, Any], int]:
        self.calls += 1
        if self.fail:
            raise MetadataDocumentError("down")
        return {"client_id": url, "redirect_uris": [REDIRECT], "client_name": f"v{self.calls}"}, self.ttl


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_cache_keeps_a_document_for_its_ttl() -> None:
    f, clock = FakeFetcher(ttl=120), Clock()
    docs = MetadataDocuments(f, _validate, clock=clock)  # type: ignore[arg-type]
    first = docs.client("https://c.example.com/m.json", 1)
    assert first.client_id == "https://c.example.com/m.json"
    assert first.registered_by == "cimd" and first.is_public
    clock.t += 119
    assert docs.client("https://c.example.com/m.json", 2).metadata["client_name"] == "v1"
    clock.t += 2
    assert docs.client("https://c.example.com/m.json", 3).metadata["client_name"] == "v2"
    assert f.calls == 2


def test_cache_remembers_failures_briefly() -> None:
    f, clock = FakeFetcher(fail=True), Clock()
    docs = MetadataDocuments(f, _validate, clock=clock)  # type: ignore[arg-type]
    for _ in range(3):
        with pytest.raises(MetadataDocumentError):
            docs.client("https://c.example.com/m.json", 1)
    assert f.calls == 1
    clock.t += cimd.FAILURE_TTL
    f.fail = False
    assert docs.client("https://c.example.com/m.json", 1).metadata["client_name"] == "v2"


def test_cache_remembers_invalid_documents_briefly() -> None:
    class Bad(FakeFetcher):
        def fetch(self, url: str) -> tuple[dict[str, Any], int]:
            self.calls += 1
            return {"client_id": url, "client_secret": "x", "redirect_uris": [REDIRECT]}, 300

    f = Bad()
    docs = MetadataDocuments(f, _validate, clock=Clock())  # type: ignore[arg-type]
    for _ in range(2):
        with pytest.raises(MetadataDocumentError):
            docs.client("https://c.example.com/m.json", 1)
    assert f.calls == 1


def test_before_fetch_runs_only_on_a_miss() -> None:
    hits: list[int] = []
    docs = MetadataDocuments(FakeFetcher(), _validate, clock=Clock())  # type: ignore[arg-type]
    for _ in range(3):
        docs.client("https://c.example.com/m.json", 1, before_fetch=lambda: hits.append(1))
    assert hits == [1]


def test_cache_is_bounded(monkeypatch: Any) -> None:
    monkeypatch.setattr(cimd, "MAX_ENTRIES", 3)
    f = FakeFetcher()
    docs = MetadataDocuments(f, _validate, clock=Clock())  # type: ignore[arg-type]
    for i in range(5):
        docs.client(f"https://c.example.com/{i}.json", 1)
    assert len(docs._cache) == 3
    assert docs.cached("https://c.example.com/0.json") is None
    assert docs.cached("https://c.example.com/4.json") is not None


class SharedCache:
    """What the redis token store offers (app.cimd.DocumentCache), in a dict."""

    def __init__(self, fail: bool = False) -> None:
        self.docs: dict[str, tuple[dict[str, Any], int]] = {}
        self.fail = fail

    def get_document(self, url: str) -> tuple[dict[str, Any], int] | None:
        if self.fail:
            raise ConnectionError("down")
        return self.docs.get(url)

    def put_document(self, url: str, document: dict[str, Any], ttl: int) -> None:
        if self.fail:
            raise ConnectionError("down")
        self.docs[url] = (document, ttl)


def test_shared_cache_saves_other_workers_the_fetch() -> None:
    url, shared = "https://c.example.com/m.json", SharedCache()
    assert isinstance(shared, cimd.DocumentCache)
    f = FakeFetcher(ttl=120)
    worker_1 = MetadataDocuments(f, _validate, clock=Clock(), shared=shared)  # type: ignore[arg-type]
    worker_2 = MetadataDocuments(f, _validate, clock=Clock(), shared=shared)  # type: ignore[arg-type]
    assert worker_1.client(url, 1).metadata["client_name"] == "v1"
    assert shared.docs[url][1] == 120
    fetches: list[int] = []
    got = worker_2.client(url, 2, before_fetch=lambda: fetches.append(1))
    assert got.metadata["client_name"] == "v1" and got.client_id == url and got.is_public
    assert f.calls == 1 and fetches == []  # no fetch, so no fetch rate limit either


def test_shared_documents_are_validated_again() -> None:
    url, shared = "https://c.example.com/m.json", SharedCache()
    shared.docs[url] = ({"client_id": "https://other.example.com/m.json", "redirect_uris": [REDIRECT]}, 300)
    f = FakeFetcher()
    docs = MetadataDocuments(f, _validate, clock=Clock(), shared=shared)  # type: ignore[arg-type]
    assert docs.client(url, 1).metadata["client_name"] == "v1"  # fetched, the stored one refused
    assert f.calls == 1 and shared.docs[url][0]["client_id"] == url


def test_a_failing_shared_cache_is_a_miss() -> None:
    f = FakeFetcher()
    docs = MetadataDocuments(f, _validate, clock=Clock(), shared=SharedCache(fail=True))  # type: ignore[arg-type]
    assert docs.client("https://c.example.com/m.json", 1).metadata["client_name"] == "v1"
    assert f.calls == 1


def test_failures_are_not_shared() -> None:
    url, shared = "https://c.example.com/m.json", SharedCache()
    docs = MetadataDocuments(FakeFetcher(fail=True), _validate, clock=Clock(), shared=shared)  # type: ignore[arg-type]
    with pytest.raises(MetadataDocumentError):
        docs.client(url, 1)
    assert shared.docs == {}
