"""SQL storage on SQLAlchemy Core: one implementation and one migration list for SQLite and
PostgreSQL.

SQLite runs in WAL mode with a busy timeout so several gunicorn workers share one file.
Single-use operations are conditional UPDATEs whose row count decides the winner, inside one
transaction, which is atomic on both engines.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import weakref
from collections import namedtuple
from collections.abc import Callable, Mapping
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection, Engine

from app.models import (
    AuthorizationCode,
    Client,
    Consent,
    InitialAccessToken,
    RefreshToken,
    SigningKey,
    User,
)

metadata = sa.MetaData()

schema_version = sa.Table(
    "schema_version", metadata, sa.Column("version", sa.Integer, nullable=False)
)
clients = sa.Table(
    "clients",
    metadata,
    sa.Column("client_id", sa.String(255), primary_key=True),
    sa.Column("metadata", sa.Text, nullable=False),
    sa.Column("issued_at", sa.BigInteger, nullable=False),
    sa.Column("secret_hash", sa.LargeBinary(32)),
    sa.Column("secret_expires_at", sa.BigInteger, nullable=False, default=0),
    sa.Column("registration_token_hash", sa.LargeBinary(32)),
    sa.Column("registered_by", sa.String(16), nullable=False),
    sa.Column("privileges", sa.Text, nullable=False, default=""),
    sa.Column("last_used_at", sa.BigInteger, nullable=False, default=0),
)
signing_keys = sa.Table(
    "signing_keys",
    metadata,
    sa.Column("kid", sa.String(64), primary_key=True),
    sa.Column("alg", sa.String(16), nullable=False),
    sa.Column("private_pem", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("retired_at", sa.BigInteger),
    sa.Column("expires_at", sa.BigInteger),
)
initial_access_tokens = sa.Table(
    "initial_access_tokens",
    metadata,
    sa.Column("token_hash", sa.LargeBinary(32), primary_key=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=False),
    sa.Column("description", sa.Text, nullable=False, default=""),
)
revoked_jtis = sa.Table(
    "revoked_jtis",
    metadata,
    sa.Column("jti", sa.String(64), primary_key=True),
    sa.Column("expires_at", sa.BigInteger, nullable=False, index=True),
)
auth_codes = sa.Table(
    "auth_codes",
    metadata,
    sa.Column("code_hash", sa.LargeBinary(32), primary_key=True),
    sa.Column("client_id", sa.String(255), nullable=False),
    sa.Column("redirect_uri", sa.Text, nullable=False),
    sa.Column("code_challenge", sa.String(128), nullable=False),
    sa.Column("scope", sa.Text, nullable=False),
    sa.Column("resource", sa.Text, nullable=False),
    sa.Column("subject", sa.String(255), nullable=False),
    sa.Column("family_id", sa.String(64), nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=False, index=True),
    sa.Column("auth_time", sa.BigInteger, nullable=False, default=0),
    sa.Column("used", sa.Boolean, nullable=False, default=False),
)
refresh_tokens = sa.Table(
    "refresh_tokens",
    metadata,
    sa.Column("token_hash", sa.LargeBinary(32), primary_key=True),
    sa.Column("family_id", sa.String(64), nullable=False, index=True),
    sa.Column("client_id", sa.String(255), nullable=False, index=True),
    sa.Column("subject", sa.String(255), nullable=False, index=True),
    sa.Column("scope", sa.Text, nullable=False),
    sa.Column("resource", sa.Text, nullable=False),
    sa.Column("issued_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=False, index=True),
    sa.Column("rotated_at", sa.BigInteger),
    sa.Column("successor_blob", sa.LargeBinary),
)
family_jtis = sa.Table(
    "family_jtis",
    metadata,
    sa.Column("family_id", sa.String(64), nullable=False, index=True),
    sa.Column("jti", sa.String(64), primary_key=True),
    sa.Column("expires_at", sa.BigInteger, nullable=False),
)
users = sa.Table(
    "users",
    metadata,
    sa.Column("username", sa.String(255), primary_key=True),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False, default=False),
)
consents = sa.Table(
    "consents",
    metadata,
    sa.Column("subject", sa.String(255), primary_key=True),
    sa.Column("client_id", sa.String(255), primary_key=True),
    sa.Column("scope", sa.Text, nullable=False),
    sa.Column("granted_at", sa.BigInteger, nullable=False),
)
settings = sa.Table(
    "settings",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)


def _v1(conn: Connection) -> None:
    metadata.create_all(conn, checkfirst=True)


# Versioned migrations, shared by every SQL engine: append, never edit a released one.
MIGRATIONS: list[Callable[[Connection], None]] = [_v1]


def _loads(text: str) -> Any:
    """Stored JSON (written by the json module). orjson reads it about 4x faster; the json
    module takes what orjson refuses (an integer beyond 64 bits), so every stored row reads."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _client_from_row(row: Any) -> Client:
    return Client(
        client_id=row.client_id,
        metadata=_loads(row.metadata),
        issued_at=row.issued_at,
        secret_hash=row.secret_hash,
        secret_expires_at=row.secret_expires_at,
        registration_token_hash=row.registration_token_hash,
        registered_by=row.registered_by,
        privileges=frozenset(p for p in row.privileges.split(" ") if p),
        last_used_at=row.last_used_at,
    )


def _refresh_from_row(row: Any) -> RefreshToken:
    return RefreshToken(
        token_hash=row.token_hash,
        family_id=row.family_id,
        client_id=row.client_id,
        subject=row.subject,
        scope=row.scope,
        resource=row.resource,
        issued_at=row.issued_at,
        expires_at=row.expires_at,
        rotated_at=row.rotated_at,
        successor_blob=row.successor_blob,
    )


def engine_url(url: str) -> str:
    """Pick the driver: psycopg 3 for PostgreSQL, the standard library for SQLite."""
    scheme, _, rest = url.partition("://")
    if scheme in ("postgresql", "postgres"):
        return "postgresql+psycopg://" + rest
    return url


class SQLStorage:
    """Clients, users, consents, keys and tokens in one SQL database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._lock = threading.Lock()
        self._direct = _ThreadConnections.for_engine(engine)
        self._client_q = _FastRead(
            engine, clients.select().where(clients.c.client_id == sa.bindparam("client_id")), self._direct
        )
        self._revoked_q = _FastRead(engine, sa.text("SELECT 1 FROM revoked_jtis WHERE jti = :jti"), self._direct)
        # A pool must not cross a fork (gunicorn --preload): the child drops the parent's
        # connections without closing them, and opens its own.
        ref = weakref.ref(engine)
        os.register_at_fork(after_in_child=lambda: _dispose_in_child(ref))

    @classmethod
    def from_url(cls, url: str, options: Mapping[str, object]) -> SQLStorage:
        real = engine_url(url)
        if real.startswith("sqlite"):
            path = real.split("///", 1)[1] if "///" in real else ""
            if path and path != ":memory:":
                os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            engine = sa.create_engine(real, connect_args={"timeout": 30, "check_same_thread": False})

            @sa.event.listens_for(engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.execute("PRAGMA busy_timeout=30000")
                cur.close()

            # pysqlite's own transaction handling defers BEGIN; take it over so that every
            # transaction starts with BEGIN IMMEDIATE and writers queue instead of deadlocking.
            @sa.event.listens_for(engine, "connect")
            def _autocommit(dbapi_conn: Any, _record: Any) -> None:
                dbapi_conn.isolation_level = None

            @sa.event.listens_for(engine, "begin")
            def _begin(conn: Connection) -> None:
                conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("write") else "BEGIN")
        else:
            # A short connect timeout turns an unreachable server into a quick 503, not a hung worker.
            connect_args = {} if "connect_timeout=" in real else {"connect_timeout": 5}
            engine = sa.create_engine(
                real,
                pool_size=int(str(options.get("pool_size", 5))),
                pool_pre_ping=True,
                pool_recycle=300,
                connect_args=connect_args,
            )
        return cls(engine)

    def close(self) -> None:
        if self._direct is not None:
            self._direct.close()
        self.engine.dispose()

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")

    # -- transactions -------------------------------------------------------------------------

    def _write(self) -> Any:
        """A write transaction (BEGIN IMMEDIATE on SQLite)."""
        conn = self.engine.connect()
        conn.info["write"] = True
        return _Txn(conn)

    def _read(self) -> Any:
        conn = self.engine.connect()
        conn.info["write"] = False
        return _Txn(conn)

    def migrate(self) -> None:
        """Create or upgrade the schema; safe when several processes start at once."""
        with self._write() as conn:
            if self.dialect == "postgresql":
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(727274)")
            schema_version.create(conn, checkfirst=True)
            current = conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0
            for version, step in enumerate(MIGRATIONS, start=1):
                if version > current:
                    step(conn)
                    conn.execute(schema_version.insert().values(version=version))

    def schema_version(self) -> int:
        with self._read() as conn:
            return int(conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0)

    # -- clients ------------------------------------------------------------------------------

    def get_client(self, client_id: str) -> Client | None:
        # Every token request looks its client up: the fast single-statement read.
        row = self._client_q.one({"client_id": client_id})
        return _client_from_row(_ClientRow._make(row)) if row else None

    def save_client(self, client: Client) -> None:
        values = {
            "metadata": json.dumps(client.metadata, separators=(",", ":")),
            "issued_at": client.issued_at,
            "secret_hash": client.secret_hash,
            "secret_expires_at": client.secret_expires_at,
            "registration_token_hash": client.registration_token_hash,
            "registered_by": client.registered_by,
            "privileges": " ".join(sorted(client.privileges)),
            "last_used_at": client.last_used_at,
        }
        with self._write() as conn:
            done = conn.execute(
                clients.update().where(clients.c.client_id == client.client_id).values(**values)
            ).rowcount
            if not done:
                conn.execute(clients.insert().values(client_id=client.client_id, **values))

    def delete_client(self, client_id: str) -> bool:
        with self._write() as conn:
            n = conn.execute(clients.delete().where(clients.c.client_id == client_id)).rowcount
            conn.execute(consents.delete().where(consents.c.client_id == client_id))
            families = [
                r.family_id
                for r in conn.execute(
                    sa.select(refresh_tokens.c.family_id).where(refresh_tokens.c.client_id == client_id)
                )
            ]
            conn.execute(refresh_tokens.delete().where(refresh_tokens.c.client_id == client_id))
            for fam in set(families):
                self._revoke_family_jtis(conn, fam)
        return bool(n)

    def list_clients(self) -> list[Client]:
        with self._read() as conn:
            return [_client_from_row(r) for r in conn.execute(clients.select().order_by(clients.c.issued_at))]

    def touch_client(self, client_id: str, now: int) -> None:
        with self._write() as conn:
            conn.execute(
                clients.update()
                .where(clients.c.client_id == client_id, clients.c.last_used_at < now - 3600)
                .values(last_used_at=now)
            )

    # -- signing keys -------------------------------------------------------------------------

    def list_signing_keys(self) -> list[SigningKey]:
        with self._read() as conn:
            rows = conn.execute(signing_keys.select().order_by(signing_keys.c.created_at))
            return [
                SigningKey(
                    kid=r.kid,
                    alg=r.alg,
                    private_pem=bytes(r.private_pem),
                    created_at=r.created_at,
                    retired_at=r.retired_at,
                    expires_at=r.expires_at,
                )
                for r in rows
            ]

    def save_signing_key(self, key: SigningKey) -> None:
        values = {
            "alg": key.alg,
            "private_pem": key.private_pem,
            "created_at": key.created_at,
            "retired_at": key.retired_at,
            "expires_at": key.expires_at,
        }
        with self._write() as conn:
            done = conn.execute(signing_keys.update().where(signing_keys.c.kid == key.kid).values(**values)).rowcount
            if not done:
                conn.execute(signing_keys.insert().values(kid=key.kid, **values))

    def delete_signing_key(self, kid: str) -> None:
        with self._write() as conn:
            conn.execute(signing_keys.delete().where(signing_keys.c.kid == kid))

    # -- initial access tokens ----------------------------------------------------------------

    def save_initial_access_token(self, token: InitialAccessToken) -> None:
        with self._write() as conn:
            conn.execute(
                initial_access_tokens.insert().values(
                    token_hash=token.token_hash,
                    created_at=token.created_at,
                    expires_at=token.expires_at,
                    description=token.description,
                )
            )

    def get_initial_access_token(self, token_hash: bytes) -> InitialAccessToken | None:
        with self._read() as conn:
            r = conn.execute(
                initial_access_tokens.select().where(initial_access_tokens.c.token_hash == token_hash)
            ).first()
        if r is None:
            return None
        return InitialAccessToken(bytes(r.token_hash), r.created_at, r.expires_at, r.description)

    # -- revocation ---------------------------------------------------------------------------

    def revoke_jti(self, jti: str, expires_at: int) -> None:
        with self._write() as conn:
            self._revoke_jti(conn, jti, expires_at)

    def _revoke_jti(self, conn: Connection, jti: str, expires_at: int) -> None:
        if self.dialect == "postgresql":
            # Concurrent revocations of one jti (a replay storm) must not fail on the key.
            conn.execute(pg_insert(revoked_jtis).values(jti=jti, expires_at=expires_at).on_conflict_do_nothing())
            return
        exists = conn.execute(sa.select(revoked_jtis.c.jti).where(revoked_jtis.c.jti == jti)).first()
        if not exists:
            conn.execute(revoked_jtis.insert().values(jti=jti, expires_at=expires_at))

    def is_jti_revoked(self, jti: str) -> bool:
        # The hot path of every protected request: one indexed primary-key lookup.
        return self._revoked_q.one({"jti": jti}) is not None

    # -- authorization codes ------------------------------------------------------------------

    def save_code(self, code: AuthorizationCode) -> None:
        with self._write() as conn:
            conn.execute(
                auth_codes.insert().values(
                    code_hash=code.code_hash,
                    client_id=code.client_id,
                    redirect_uri=code.redirect_uri,
                    code_challenge=code.code_challenge,
                    scope=code.scope,
                    resource=code.resource,
                    subject=code.subject,
                    family_id=code.family_id,
                    expires_at=code.expires_at,
                    auth_time=code.auth_time,
                    used=False,
                )
            )

    def consume_code(self, code_hash: bytes, now: int) -> tuple[AuthorizationCode | None, bool]:
        with self._write() as conn:
            first = conn.execute(
                auth_codes.update()
                .where(auth_codes.c.code_hash == code_hash, auth_codes.c.used == sa.false())
                .values(used=True)
            ).rowcount == 1
            r = conn.execute(auth_codes.select().where(auth_codes.c.code_hash == code_hash)).first()
        if r is None:
            return None, False
        code = AuthorizationCode(
            code_hash=bytes(r.code_hash),
            client_id=r.client_id,
            redirect_uri=r.redirect_uri,
            code_challenge=r.code_challenge,
            scope=r.scope,
            resource=r.resource,
            subject=r.subject,
            family_id=r.family_id,
            expires_at=r.expires_at,
            auth_time=r.auth_time,
        )
        return code, first

    # -- refresh tokens -----------------------------------------------------------------------

    def _refresh_values(self, t: RefreshToken) -> dict[str, Any]:
        return {
            "token_hash": t.token_hash,
            "family_id": t.family_id,
            "client_id": t.client_id,
            "subject": t.subject,
            "scope": t.scope,
            "resource": t.resource,
            "issued_at": t.issued_at,
            "expires_at": t.expires_at,
            "rotated_at": t.rotated_at,
            "successor_blob": t.successor_blob,
        }

    def save_refresh_token(self, token: RefreshToken) -> None:
        with self._write() as conn:
            conn.execute(refresh_tokens.insert().values(**self._refresh_values(token)))

    def get_refresh_token(self, token_hash: bytes) -> RefreshToken | None:
        with self._read() as conn:
            r = conn.execute(refresh_tokens.select().where(refresh_tokens.c.token_hash == token_hash)).first()
        return _refresh_from_row(r) if r else None

    def rotate_refresh_token(
        self, old_hash: bytes, new: RefreshToken, now: int, successor_blob: bytes | None
    ) -> bool:
        with self._write() as conn:
            won = conn.execute(
                refresh_tokens.update()
                .where(refresh_tokens.c.token_hash == old_hash, refresh_tokens.c.rotated_at.is_(None))
                .values(rotated_at=now, successor_blob=successor_blob)
            ).rowcount == 1
            if won:
                conn.execute(refresh_tokens.insert().values(**self._refresh_values(new)))
        return won

    def add_family_jti(self, family_id: str, jti: str, expires_at: int) -> None:
        with self._write() as conn:
            conn.execute(family_jtis.insert().values(family_id=family_id, jti=jti, expires_at=expires_at))

    def _revoke_family_jtis(self, conn: Connection, family_id: str) -> int:
        # DELETE ... RETURNING revokes exactly the rows it removes. A SELECT followed by a DELETE
        # could, on PostgreSQL (READ COMMITTED), delete a jti committed between the two by a
        # racing code exchange without revoking it, leaving that access token alive.
        rows = list(
            conn.execute(
                family_jtis.delete()
                .where(family_jtis.c.family_id == family_id)
                .returning(family_jtis.c.jti, family_jtis.c.expires_at)
            )
        )
        for r in rows:
            self._revoke_jti(conn, r.jti, r.expires_at)
        return len(rows)

    def revoke_family(self, family_id: str, now: int) -> int:
        with self._write() as conn:
            doomed = refresh_tokens.delete().where(refresh_tokens.c.family_id == family_id)
            n = conn.execute(doomed).rowcount
            # Twice, for PostgreSQL (READ COMMITTED): a rotation that held a row of this family
            # when the first DELETE started makes it wait, and then commits a successor the first
            # DELETE's snapshot cannot see; the second DELETE starts after that commit and sees it.
            # (A rotation that had not reached its row yet finds it deleted and fails.)
            n += conn.execute(doomed).rowcount
            # Codes of the family can no longer be exchanged either.
            conn.execute(auth_codes.update().where(auth_codes.c.family_id == family_id).values(used=True))
            return n + self._revoke_family_jtis(conn, family_id)

    def list_families(self, *, subject: str | None = None, client_id: str | None = None) -> list[RefreshToken]:
        q = refresh_tokens.select().where(refresh_tokens.c.rotated_at.is_(None))
        if subject is not None:
            q = q.where(refresh_tokens.c.subject == subject)
        if client_id is not None:
            q = q.where(refresh_tokens.c.client_id == client_id)
        with self._read() as conn:
            return [_refresh_from_row(r) for r in conn.execute(q.order_by(refresh_tokens.c.issued_at))]

    def prune_tokens(self, now: int) -> int:
        with self._write() as conn:
            n = conn.execute(revoked_jtis.delete().where(revoked_jtis.c.expires_at < now)).rowcount
            n += conn.execute(auth_codes.delete().where(auth_codes.c.expires_at < now - 3600)).rowcount
            n += conn.execute(refresh_tokens.delete().where(refresh_tokens.c.expires_at < now)).rowcount
            n += conn.execute(family_jtis.delete().where(family_jtis.c.expires_at < now)).rowcount
            return n

    # -- users and consents -------------------------------------------------------------------

    def get_user(self, username: str) -> User | None:
        with self._read() as conn:
            r = conn.execute(users.select().where(users.c.username == username)).first()
        return User(r.username, r.password_hash, r.created_at, bool(r.disabled)) if r else None

    def save_user(self, user: User) -> None:
        values = {"password_hash": user.password_hash, "created_at": user.created_at, "disabled": user.disabled}
        with self._write() as conn:
            done = conn.execute(users.update().where(users.c.username == user.username).values(**values)).rowcount
            if not done:
                conn.execute(users.insert().values(username=user.username, **values))

    def delete_user(self, username: str) -> bool:
        with self._write() as conn:
            conn.execute(consents.delete().where(consents.c.subject == username))
            return bool(conn.execute(users.delete().where(users.c.username == username)).rowcount)

    def list_users(self) -> list[User]:
        with self._read() as conn:
            return [
                User(r.username, r.password_hash, r.created_at, bool(r.disabled))
                for r in conn.execute(users.select().order_by(users.c.username))
            ]

    def get_consent(self, subject: str, client_id: str) -> Consent | None:
        with self._read() as conn:
            r = conn.execute(
                consents.select().where(consents.c.subject == subject, consents.c.client_id == client_id)
            ).first()
        if r is None:
            return None
        return Consent(r.subject, r.client_id, frozenset(r.scope.split()), r.granted_at)

    def save_consent(self, consent: Consent) -> None:
        values = {"scope": " ".join(sorted(consent.scopes)), "granted_at": consent.granted_at}
        with self._write() as conn:
            done = conn.execute(
                consents.update()
                .where(consents.c.subject == consent.subject, consents.c.client_id == consent.client_id)
                .values(**values)
            ).rowcount
            if not done:
                conn.execute(consents.insert().values(subject=consent.subject, client_id=consent.client_id, **values))

    def delete_consents(self, *, subject: str | None = None, client_id: str | None = None) -> int:
        q = consents.delete()
        if subject is not None:
            q = q.where(consents.c.subject == subject)
        if client_id is not None:
            q = q.where(consents.c.client_id == client_id)
        with self._write() as conn:
            return int(conn.execute(q).rowcount)

    # -- settings -----------------------------------------------------------------------------

    def get_setting(self, name: str) -> str | None:
        with self._read() as conn:
            return conn.execute(sa.select(settings.c.value).where(settings.c.name == name)).scalar()

    def set_setting_if_absent(self, name: str, value: str) -> str:
        if self.dialect == "postgresql":
            # Workers start together; on PostgreSQL the first INSERT wins without a key error.
            with self._write() as conn:
                conn.execute(pg_insert(settings).values(name=name, value=value).on_conflict_do_nothing())
                return str(conn.execute(sa.select(settings.c.value).where(settings.c.name == name)).scalar())
        with self._write() as conn:
            existing = conn.execute(sa.select(settings.c.value).where(settings.c.name == name)).scalar()
            if existing is not None:
                return str(existing)
            conn.execute(settings.insert().values(name=name, value=value))
            return value


def _dispose_in_child(ref: weakref.ReferenceType[Engine]) -> None:
    engine = ref()
    if engine is not None:
        engine.dispose(close=False)


_ClientRow = namedtuple("_ClientRow", [c.name for c in clients.c])  # type: ignore[misc]


class _ThreadConnections:
    """SQLite files: one autocommit ``sqlite3`` connection per thread for the fast reads.

    Skips the pool's checkout and reset (~10 us of the ~13 us a revocation check costs through
    it). Each SELECT runs outside any transaction, so it sees every commit made before it, as
    a pooled connection does. Connections belong to the process that opened them: after a
    fork the child opens its own and never touches (or closes) the parent's.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()
        self._opened: list[tuple[int, sqlite3.Connection]] = []
        self._lock = threading.Lock()
        self._generation = 0  # bumped by close(): every thread then opens a fresh connection

    @classmethod
    def for_engine(cls, engine: Engine) -> _ThreadConnections | None:
        """For a SQLite file database; None otherwise (in-memory databases are per connection)."""
        url = engine.url
        path = url.database or ""
        if engine.dialect.name != "sqlite" or path in ("", ":memory:") or path.startswith("file:") or url.query:
            return None
        return cls(path)

    def one(self, sql: str, args: Any) -> tuple[Any, ...] | None:
        local = self._local
        conn = getattr(local, "conn", None)
        if conn is None or local.pid != os.getpid() or local.generation != self._generation:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            local.conn, local.pid, local.generation = conn, os.getpid(), self._generation
            with self._lock:
                self._opened.append((local.pid, conn))
        try:
            cur = conn.execute(sql, args)
            try:
                row = cur.fetchone()
            finally:
                # Resets the statement: an unfinished SELECT would hold its read snapshot open,
                # and later reads on this connection would not see newer commits.
                cur.close()
        except Exception:
            local.conn = None  # open a fresh one next time
            raise
        return tuple(row) if row is not None else None

    def close(self) -> None:
        pid = os.getpid()
        with self._lock:
            self._generation += 1
            mine = [c for p, c in self._opened if p == pid]
            self._opened = [(p, c) for p, c in self._opened if p != pid]
        for conn in mine:
            conn.close()


class _FastRead:
    """A single-statement read on a pooled DBAPI connection, compiled once for the engine.

    The hot reads (client lookup, revocation check) skip SQLAlchemy's Connection and
    transaction layers, which cost ~100 us per call on SQLite against ~10 us for the pooled
    cursor (~3 us on a per-thread SQLite connection, ``_ThreadConnections``). One SELECT
    needs no explicit transaction: SQLite runs it atomically on its own (autocommit mode), and
    on PostgreSQL the pool rolls the implicit transaction back when the connection is
    returned. Values come back as the driver gives them (str, int, bytes), which for these
    columns is what SQLAlchemy would return.
    """

    __slots__ = ("engine", "sql", "names", "direct")

    def __init__(self, engine: Engine, stmt: Any, direct: _ThreadConnections | None = None) -> None:
        compiled = stmt.compile(dialect=engine.dialect)
        self.engine = engine
        self.sql = str(compiled)
        self.names = list(compiled.positiontup) if compiled.positional and compiled.positiontup else None
        self.direct = direct

    def one(self, params: dict[str, Any]) -> tuple[Any, ...] | None:
        """The first row, or None."""
        if self.direct is not None:
            return self.direct.one(self.sql, [params[n] for n in self.names or ()])
        conn = self.engine.raw_connection()
        try:
            cur = conn.cursor()
            try:
                cur.execute(self.sql, [params[n] for n in self.names] if self.names is not None else params)
                row = cur.fetchone()
            finally:
                cur.close()
        except Exception:
            # The connection may be broken: never hand it to the next request.
            conn.invalidate()
            raise
        finally:
            conn.close()
        return tuple(row) if row is not None else None


class _Txn:
    """``with`` helper: one connection, one transaction, committed on success."""

    __slots__ = ("conn", "txn")

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def __enter__(self) -> Connection:
        self.txn = self.conn.begin()
        return self.conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None:
                self.txn.commit()
            else:
                self.txn.rollback()
        finally:
            self.conn.close()
