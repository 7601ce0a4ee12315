"""Short-lived data in Redis: codes, refresh tokens, revoked ``jti``s (``TokenStore`` only).

Selected with ``OAUTH_TOKEN_STORAGE_URL=redis://host:6379/0``; durable data (clients, users,
consents, keys) stays in ``sqlite`` or ``postgresql``. A ``key_prefix`` query parameter
(default ``mcp_oauth:``) namespaces the keys, so several deployments or test runs can share a
database; every other query parameter goes to redis-py (``redis://h/0?socket_timeout=2``).

Layout (``<p>`` is the prefix; hashes are the raw 32-byte SHA-256 digests, never hex):

``<p>rt:<hash>``     hash: one refresh token (fields f c s sc r i e, plus ro / sb once rotated)
``<p>code:<hash>``   hash: one authorization code (fields c ru cc sc r s f e at u)
``<p>jti:<jti>``     string: a revoked access token, until the token would have expired
``<p>fam:<family>``  hash: what revoke_family must reach: ``t<hash>`` per refresh token,
                     ``j<jti>`` -> exp per access token, ``c`` -> the hash of its code
``<p>sub:<subject>`` / ``<p>cli:<client_id>``  hashes whose fields are family ids (list_families)
``<p>cimd:<hash of URL>``  string: a fetched client metadata document (JSON), for its cache
                     lifetime (``get_document`` / ``put_document``, app/cimd.py)

Index entries of ended families are dropped as new ones are written (two random probes per
write), so an index stays within about twice its live families; ``list_families`` drops the
ones it meets. Hashes rather than sets: Redis keeps small hashes as compact listpacks, while (before 7.2) a
set of strings is always a full hash table, several times larger per member.

Every key carries a TTL (``EXPIREAT`` the latest expiry of what it holds; codes are kept an
hour past expiry so a replay is still recognised, as in the SQL store), so Redis prunes by
itself and ``prune_tokens`` is a no-op. Every write is one Lua script, so each operation is
atomic and no key is ever left without a TTL; consuming a code and rotating a refresh token are
check-and-set inside one script, so exactly one of any number of concurrent callers wins.
Scripts build key names from the prefix, so this needs a single Redis (or a replica set), not
Redis Cluster.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from app.models import AuthorizationCode, RefreshToken

# Codes stay an hour past expiry so that a replayed code is still recognised (and revokes the
# family it started), matching what the SQL store keeps before pruning.
CODE_KEEP_SECONDS = 3600

# extend(key, at): give ``key`` the expiry ``at`` unless it already lives longer. Inlined into
# every script so that no key is ever written without a TTL.
_EXTEND = """
local function extend(key, at)
  local ttl = redis.call('TTL', key)
  local now = tonumber(ARGV[1])
  if ttl < 0 or now + ttl < at then
    redis.call('EXPIREAT', key, at)
  end
end
"""

# tidy(index, prefix): an index (sub:/cli:) keeps a field per family it ever saw; ended families
# (revoked, or expired so their fam: key is gone) are dropped by probing two random fields on
# every write, which keeps an index within about twice its live families without a sweep.
_TIDY = """
local function tidy(index, prefix)
  for _, fam in ipairs(redis.call('HRANDFIELD', index, 2)) do
    if redis.call('EXISTS', prefix .. 'fam:' .. fam) == 0 then
      redis.call('HDEL', index, fam)
    end
  end
end
"""

# store(rt, fam, sub, cli, prefix): write a refresh token from ARGV[2..9] (family, c s sc r i e,
# hash) and index it in its family and its subject's and client's indexes, every key with a TTL.
_STORE = _EXTEND + _TIDY + """
local function store(rt, fam, sub, cli, prefix)
  local exp = tonumber(ARGV[8])
  redis.call('HSET', rt, 'f', ARGV[2], 'c', ARGV[3], 's', ARGV[4], 'sc', ARGV[5], 'r', ARGV[6],
             'i', ARGV[7], 'e', ARGV[8])
  redis.call('EXPIREAT', rt, exp)
  redis.call('HSET', fam, 't' .. ARGV[9], '')
  extend(fam, exp)
  for _, index in ipairs({sub, cli}) do
    redis.call('HSET', index, ARGV[2], '')
    extend(index, exp)
    tidy(index, prefix)
  end
end
"""

# KEYS: rt, fam, sub, cli.  ARGV: now, family, c s sc r i e, hash, rotated_at or '', blob or '',
# prefix
_SAVE_REFRESH = _STORE + """
if tonumber(ARGV[8]) <= tonumber(ARGV[1]) then return 0 end
store(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[12])
if ARGV[10] ~= '' then redis.call('HSET', KEYS[1], 'ro', ARGV[10]) end
if ARGV[11] ~= '' then redis.call('HSET', KEYS[1], 'sb', ARGV[11]) end
return 1
"""

# KEYS: old rt, new rt, fam, sub, cli.  ARGV: now, family, c s sc r i e (of the new token), new hash,
# successor blob or '', prefix.  Returns 1 when this call rotated the token, 0 when it was unknown
# or already rotated.
_ROTATE = _STORE + """
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HEXISTS', KEYS[1], 'ro') == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'ro', ARGV[1])
if ARGV[10] ~= '' then redis.call('HSET', KEYS[1], 'sb', ARGV[10]) end
store(KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[11])
return 1
"""

# KEYS: code, fam.  ARGV: now, keep_until, code hash, c ru cc sc r s f e at
_SAVE_CODE = _EXTEND + """
redis.call('HSET', KEYS[1], 'c', ARGV[4], 'ru', ARGV[5], 'cc', ARGV[6], 'sc', ARGV[7], 'r', ARGV[8],
           's', ARGV[9], 'f', ARGV[10], 'e', ARGV[11], 'at', ARGV[12], 'u', '0')
redis.call('EXPIREAT', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[2], 'c', ARGV[3])
extend(KEYS[2], tonumber(ARGV[2]))
return 1
"""

# KEYS: code.  Returns false when unknown, else {first_use, fields...}.
_CONSUME_CODE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local used = redis.call('HGET', KEYS[1], 'u')
redis.call('HSET', KEYS[1], 'u', '1')
local first = 0
if used == '0' then first = 1 end
return {first, redis.call('HGETALL', KEYS[1])}
"""

# KEYS: jti.  ARGV: now, exp.  A revocation that has already expired needs no record.
_REVOKE_JTI = """
if tonumber(ARGV[2]) > tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'EXAT', ARGV[2])
end
return 1
"""

# KEYS: fam.  ARGV: now, jti, exp
_ADD_FAMILY_JTI = _EXTEND + """
redis.call('HSET', KEYS[1], 'j' .. ARGV[2], ARGV[3])
extend(KEYS[1], tonumber(ARGV[3]))
return 1
"""

# KEYS: fam.  ARGV: now, prefix.  Deletes the family's refresh tokens, revokes its access
# tokens, marks its code used; returns how many tokens it hit.
_REVOKE_FAMILY = """
local now = tonumber(ARGV[1])
local n = 0
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  local kind, rest = string.sub(fields[i], 1, 1), string.sub(fields[i], 2)
  if kind == 't' then
    n = n + redis.call('DEL', ARGV[2] .. 'rt:' .. rest)
  elseif kind == 'j' then
    local exp = tonumber(fields[i + 1])
    if exp > now then
      redis.call('SET', ARGV[2] .. 'jti:' .. rest, '1', 'EXAT', exp)
    end
    n = n + 1
  elseif fields[i] == 'c' then
    local ck = ARGV[2] .. 'code:' .. fields[i + 1]
    if redis.call('EXISTS', ck) == 1 then redis.call('HSET', ck, 'u', '1') end
  end
end
redis.call('DEL', KEYS[1])
return n
"""


def _text(value: bytes | None) -> str:
    return value.decode() if value is not None else ""


def split_url(url: str) -> tuple[str, str]:
    """Split our ``key_prefix`` option off a Redis URL: returns (redis-py URL, prefix)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = "mcp_oauth:"
    rest = []
    for name, value in query:
        if name == "key_prefix":
            prefix = value
        else:
            rest.append((name, value))
    return urlunsplit(parts._replace(query=urlencode(rest))), prefix


class RedisTokenStore:
    """``TokenStore`` on Redis: every entry expires by itself; single-use steps are Lua scripts."""

    def __init__(self, client: redis.Redis, prefix: str = "mcp_oauth:") -> None:
        self.client = client
        self.prefix = prefix
        self._p = prefix.encode()
        self._save_refresh = client.register_script(_SAVE_REFRESH)
        self._rotate = client.register_script(_ROTATE)
        self._save_code = client.register_script(_SAVE_CODE)
        self._consume_code = client.register_script(_CONSUME_CODE)
        self._revoke_jti = client.register_script(_REVOKE_JTI)
        self._add_family_jti = client.register_script(_ADD_FAMILY_JTI)
        self._revoke_family = client.register_script(_REVOKE_FAMILY)

    @classmethod
    def from_url(cls, url: str, options: Mapping[str, object]) -> RedisTokenStore:
        """Open a pool (redis-py reconnects after fork by itself, so each worker gets its own).

        Short socket timeouts and retries make an outage a quick 503 rather than a hung worker.
        """
        real, prefix = split_url(url)
        kwargs: dict[str, Any] = {
            "socket_timeout": 2.0,
            "socket_connect_timeout": 2.0,
            "health_check_interval": 30,
            # redis-py's default retries back off for seconds; two quick retries ride out a
            # blip (a failover, a dropped connection) and an outage still answers 503 at once.
            "retry": Retry(ExponentialBackoff(cap=0.2, base=0.02), 2),
        }
        for name in ("socket_timeout", "socket_connect_timeout"):
            if name in options:
                kwargs[name] = float(str(options[name]))
        client = redis.Redis.from_url(real, **kwargs)
        return cls(client, str(options.get("key_prefix", prefix)))

    def _key(self, kind: str, ident: bytes | str) -> bytes:
        raw = ident if isinstance(ident, bytes) else ident.encode()
        return self._p + kind.encode() + b":" + raw

    def close(self) -> None:
        self.client.close()

    # -- client metadata documents (app.cimd.DocumentCache) --------------------------------------

    def _document_key(self, url: str) -> bytes:
        return self._key("cimd", hashlib.sha256(url.encode("utf-8", "surrogatepass")).digest())

    def get_document(self, url: str) -> tuple[dict[str, Any], int] | None:
        pipe = self.client.pipeline(transaction=False)
        key = self._document_key(url)
        pipe.get(key)
        pipe.ttl(key)
        raw, ttl = pipe.execute()
        if raw is None or ttl is None or int(ttl) <= 0:
            return None
        doc = json.loads(raw)
        return (doc, int(ttl)) if isinstance(doc, dict) else None

    def put_document(self, url: str, document: dict[str, Any], ttl: int) -> None:
        if ttl > 0:
            self.client.set(self._document_key(url), json.dumps(document, separators=(",", ":")), ex=int(ttl))

    def ping(self) -> None:
        self.client.ping()

    # -- revocation ---------------------------------------------------------------------------

    def revoke_jti(self, jti: str, expires_at: int) -> None:
        self._revoke_jti(keys=[self._key("jti", jti)], args=[_now(), expires_at])

    def is_jti_revoked(self, jti: str) -> bool:
        return bool(self.client.exists(self._key("jti", jti)))

    # -- authorization codes ------------------------------------------------------------------

    def save_code(self, code: AuthorizationCode) -> None:
        self._save_code(
            keys=[self._key("code", code.code_hash), self._key("fam", code.family_id)],
            args=[
                _now(),
                code.expires_at + CODE_KEEP_SECONDS,
                code.code_hash,
                code.client_id,
                code.redirect_uri,
                code.code_challenge,
                code.scope,
                code.resource,
                code.subject,
                code.family_id,
                code.expires_at,
                code.auth_time,
            ],
        )

    def consume_code(self, code_hash: bytes, now: int) -> tuple[AuthorizationCode | None, bool]:
        found = self._consume_code(keys=[self._key("code", code_hash)])
        if not found:
            return None, False
        first, flat = found
        f = dict(zip(flat[::2], flat[1::2], strict=True))
        code = AuthorizationCode(
            code_hash=code_hash,
            client_id=_text(f.get(b"c")),
            redirect_uri=_text(f.get(b"ru")),
            code_challenge=_text(f.get(b"cc")),
            scope=_text(f.get(b"sc")),
            resource=_text(f.get(b"r")),
            subject=_text(f.get(b"s")),
            family_id=_text(f.get(b"f")),
            expires_at=int(f.get(b"e", 0)),
            auth_time=int(f.get(b"at", 0)),
        )
        return code, bool(first)

    # -- refresh tokens -----------------------------------------------------------------------

    def _token_args(self, t: RefreshToken) -> list[Any]:
        return [t.client_id, t.subject, t.scope, t.resource, t.issued_at, t.expires_at]

    def save_refresh_token(self, token: RefreshToken) -> None:
        self._save_refresh(
            keys=[
                self._key("rt", token.token_hash),
                self._key("fam", token.family_id),
                self._key("sub", token.subject),
                self._key("cli", token.client_id),
            ],
            args=[
                _now(),
                token.family_id,
                *self._token_args(token),
                token.token_hash,
                "" if token.rotated_at is None else token.rotated_at,
                token.successor_blob or b"",
                self._p,
            ],
        )

    def get_refresh_token(self, token_hash: bytes) -> RefreshToken | None:
        f = self.client.hgetall(self._key("rt", token_hash))
        if not f:
            return None
        return _refresh_from_fields(token_hash, f)

    def rotate_refresh_token(
        self, old_hash: bytes, new: RefreshToken, now: int, successor_blob: bytes | None
    ) -> bool:
        won = self._rotate(
            keys=[
                self._key("rt", old_hash),
                self._key("rt", new.token_hash),
                self._key("fam", new.family_id),
                self._key("sub", new.subject),
                self._key("cli", new.client_id),
            ],
            args=[now, new.family_id, *self._token_args(new), new.token_hash, successor_blob or b"", self._p],
        )
        return bool(won)

    def add_family_jti(self, family_id: str, jti: str, expires_at: int) -> None:
        self._add_family_jti(keys=[self._key("fam", family_id)], args=[_now(), jti, expires_at])

    def revoke_family(self, family_id: str, now: int) -> int:
        return int(self._revoke_family(keys=[self._key("fam", family_id)], args=[now, self._p]))

    def list_families(self, *, subject: str | None = None, client_id: str | None = None) -> list[RefreshToken]:
        """The live (unrotated, unexpired) refresh token of each matching family, oldest first.

        Families that were revoked or expired are dropped from the index sets on the way.
        """
        index_keys = []
        if subject is not None:
            index_keys.append(self._key("sub", subject))
        if client_id is not None:
            index_keys.append(self._key("cli", client_id))
        if index_keys:
            found = [set(self.client.hkeys(k)) for k in index_keys]
            families = set.intersection(*found)
        else:
            start = len(self._key("fam", b""))
            pattern = _glob_escape(self._key("fam", b"")) + b"*"
            families = {k[start:] for k in self.client.scan_iter(match=pattern, count=500)}
        out: list[RefreshToken] = []
        for fam in sorted(families):
            hashes = [f[1:] for f in self.client.hkeys(self._key("fam", fam)) if f[:1] == b"t"]
            if not hashes:
                for key in index_keys:
                    self.client.hdel(key, fam)
                continue
            pipe = self.client.pipeline(transaction=False)
            for h in hashes:
                pipe.hgetall(self._key("rt", h))
            for h, fields in zip(hashes, pipe.execute(), strict=True):
                if fields and b"ro" not in fields:
                    out.append(_refresh_from_fields(h, fields))
        return sorted(out, key=lambda t: t.issued_at)

    def prune_tokens(self, now: int) -> int:
        """Nothing to do: every key expires by itself."""
        return 0

    # -- diagnostics --------------------------------------------------------------------------

    def memory_usage(self, token_hash: bytes) -> int:
        """Bytes Redis holds for one refresh token's own key (``MEMORY USAGE``)."""
        return int(self.client.memory_usage(self._key("rt", token_hash), samples=0) or 0)


def _refresh_from_fields(token_hash: bytes, f: Mapping[bytes, bytes]) -> RefreshToken:
    return RefreshToken(
        token_hash=token_hash,
        family_id=_text(f.get(b"f")),
        client_id=_text(f.get(b"c")),
        subject=_text(f.get(b"s")),
        scope=_text(f.get(b"sc")),
        resource=_text(f.get(b"r")),
        issued_at=int(f.get(b"i", 0)),
        expires_at=int(f.get(b"e", 0)),
        rotated_at=int(f[b"ro"]) if b"ro" in f else None,
        successor_blob=f.get(b"sb"),
    )


def _glob_escape(raw: bytes) -> bytes:
    """Escape SCAN's glob characters, so a prefix or id containing them matches only itself."""
    for ch in (b"\\", b"*", b"?", b"[", b"]"):
        raw = raw.replace(ch, b"\\" + ch)
    return raw


def _now() -> int:
    return int(time.time())
