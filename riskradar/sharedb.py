"""The sharing database: each recipient's packages served from PostgreSQL + PostGIS, where QGIS
and BI tools connect natively.

One schema and one login role per recipient, both named `<role_prefix><recipient>`: the role
may use its own schema only (grants; no other recipient's schema, no CONNECT for the public),
its search path starts there, and its table `forecast` holds the delivered weeks (the agreed
columns; the geometry as a PostGIS MultiPolygon in WGS84), `deliveries` the delivery ids. A
delivery replaces its week's rows in one transaction; an agreement that ends loses its schema
and its login. The owner's connection string comes from the environment (sharing.database.
dsn_env); a role's password from the variable its agreement names, and reaches the server only
as a SCRAM verifier computed here, so no password is in a statement or a server log.
Use a database of its own: CONNECT is revoked from PUBLIC there.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

import pandas as pd

from riskradar.config import Settings
from riskradar.errors import ConfigError, ShareDatabaseError

# The SQL type of each column a package may hold (riskradar.sharing's vocabulary, spelled out).
_TYPES = {
    "target": "text",
    "week": "date",
    "cell_id": "text",
    "rank": "integer",
    "percentile": "double precision",
    "hotspot": "boolean",
    "expected_count": "text",
    "area_code": "text",
    "area_name": "text",
    "cells": "integer",
    "hotspot_cells": "integer",
    "share_of_hotspots": "double precision",
    "geometry": "geometry(MultiPolygon, 4326)",
}


def column_type(column: str) -> str:
    if column.startswith("driver_"):
        return "text"
    return _TYPES[column]


def scram_verifier(password: str, *, salt: bytes | None = None, iterations: int = 4096) -> str:
    """PostgreSQL's SCRAM-SHA-256 verifier of a password (RFC 5802/7677), as `\\password` makes it."""
    salt = salt or os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    b64 = base64.b64encode
    return (
        f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}$"
        f"{b64(hashlib.sha256(client_key).digest()).decode()}:{b64(server_key).decode()}"
    )


class ShareDatabase:
    """The recipients' schemas and roles in one database (see the module docstring)."""

    def __init__(self, dsn: str, role_prefix: str, *, source: str = "the sharing database"):
        self._dsn = dsn
        self.role_prefix = role_prefix
        self.source = source

    @classmethod
    def from_settings(cls, settings: Settings) -> ShareDatabase | None:
        """The configured database (None: sharing.database is not set); ConfigError when the
        variable holding its connection string is unset (never its value)."""
        spec = settings.sharing.database
        if spec is None:
            return None
        dsn = os.environ.get(spec.dsn_env, "").strip()
        if not dsn:
            raise ConfigError(
                f"{settings.config_file}: key 'sharing.database.dsn_env' names {spec.dsn_env}, which is "
                f"not set: set it to the database's connection string (postgresql://user:password@host:port/db)"
            )
        return cls(dsn, spec.role_prefix, source=f"the sharing database (${spec.dsn_env})")

    def role(self, recipient: str) -> str:
        return f"{self.role_prefix}{recipient}"

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        import psycopg

        try:
            with psycopg.connect(self._dsn, connect_timeout=10) as conn, conn.transaction():
                with conn.cursor() as cur:
                    # one delivery at a time changes roles, grants and schemas
                    cur.execute("SELECT pg_advisory_xact_lock(hashtext('riskradar-share'))")
                    yield cur
        except psycopg.Error as exc:
            raise ShareDatabaseError(f"{self.source}: {self._safe(exc)}") from None

    def _safe(self, exc: Exception) -> str:
        text = f"{type(exc).__name__}: {str(exc).strip()}"
        try:
            from psycopg.conninfo import conninfo_to_dict

            password = conninfo_to_dict(self._dsn).get("password")
        except Exception:  # noqa: BLE001 - a malformed DSN: the server's message names no password
            password = None
        return text.replace(str(password), "***") if password else text

    def refresh(
        self,
        recipient: str,
        tables: dict[str, pd.DataFrame],
        *,
        week: date,
        delivery_id: str,
        agreement_version: int,
        password: str,
    ) -> int:
        """Serve a delivery: the recipient's role (login, its password), schema and grants, its
        week's rows replaced, the delivery id stored; one transaction. The rows written."""
        from psycopg import sql

        role = self.role(recipient)
        frame = pd.concat(list(tables.values()), ignore_index=True)
        columns = list(frame.columns)
        with self._transaction() as cur:
            self._require_postgis(cur)
            self._grant(cur, role, scram_verifier(password))
            self._table(cur, role, columns)
            ident = sql.Identifier(role)
            cur.execute(sql.SQL("DELETE FROM {}.forecast WHERE week = %s").format(ident), [week])
            names = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
            with cur.copy(sql.SQL("COPY {}.forecast ({}) FROM STDIN").format(ident, names)) as copy:
                for row in _rows(frame):
                    copy.write_row(row)
            cur.execute(
                sql.SQL(
                    "INSERT INTO {}.deliveries (delivery_id, week, agreement_version, delivered_at) "
                    "VALUES (%s, %s, %s, now())"
                ).format(ident),
                [delivery_id, week, agreement_version],
            )
            cur.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {0} TO {0}").format(ident))
        return len(frame)

    def _require_postgis(self, cur: Any) -> None:
        cur.execute("SELECT 1 FROM pg_extension WHERE extname = 'postgis'")
        if cur.fetchone() is None:
            cur.execute("SELECT current_database()")
            raise ShareDatabaseError(
                f"{self.source}: PostGIS is not installed in the database {cur.fetchone()[0]!r}: "
                "run CREATE EXTENSION postgis there as its owner"
            )

    def _grant(self, cur: Any, role: str, verifier: str) -> None:
        from psycopg import sql

        ident = sql.Identifier(role)
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
        verb = "ALTER" if cur.fetchone() else "CREATE"
        cur.execute(sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(ident, sql.Literal(verifier)))
        cur.execute("SELECT current_database()")
        database = sql.Identifier(cur.fetchone()[0])
        cur.execute(sql.SQL("REVOKE CONNECT ON DATABASE {} FROM PUBLIC").format(database))
        cur.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(database, ident))
        cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident))
        cur.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM PUBLIC").format(ident))
        cur.execute(sql.SQL("GRANT USAGE ON SCHEMA {0} TO {0}").format(ident))
        cur.execute(sql.SQL("ALTER ROLE {0} SET search_path = {0}, public").format(ident))

    def _table(self, cur: Any, role: str, columns: list[str]) -> None:
        """The recipient's `forecast` table with exactly `columns` (made again when the agreed
        columns changed: the weeks served under the old terms go with it)."""
        from psycopg import sql

        ident = sql.Identifier(role)
        cur.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
            "AND table_name = 'forecast' ORDER BY ordinal_position",
            [role],
        )
        existing = [r[0] for r in cur.fetchall()]
        if existing != columns:
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}.forecast").format(ident))
            spec = sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(column_type(c))) for c in columns
            )
            cur.execute(sql.SQL("CREATE TABLE {}.forecast ({})").format(ident, spec))
            cur.execute(sql.SQL("CREATE INDEX ON {}.forecast (week, target)").format(ident))
        cur.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {}.deliveries (delivery_id text PRIMARY KEY, week date NOT NULL, "
                "agreement_version integer NOT NULL, delivered_at timestamptz NOT NULL)"
            ).format(ident)
        )

    def withdraw(self, recipient: str) -> bool:
        """The recipient's schema (its rows) dropped and its login taken away; whether it had any."""
        from psycopg import sql

        role = self.role(recipient)
        ident = sql.Identifier(role)
        with self._transaction() as cur:
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
            had_role = cur.fetchone() is not None
            cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [role])
            had_schema = cur.fetchone() is not None
            cur.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(ident))
            if had_role:
                cur.execute(sql.SQL("ALTER ROLE {} NOLOGIN PASSWORD NULL").format(ident))
                cur.execute("SELECT current_database()")
                database = sql.Identifier(cur.fetchone()[0])
                cur.execute(sql.SQL("REVOKE CONNECT ON DATABASE {} FROM {}").format(database, ident))
        return had_schema

    def holds(self, recipient: str, delivery_id: str) -> bool:
        """Whether the database serves the delivery `delivery_id` to the recipient."""
        with self._transaction() as cur:
            cur.execute(
                "SELECT 1 FROM information_schema.tables "
                "WHERE table_schema = %s AND table_name = 'deliveries'",
                [self.role(recipient)],
            )
            if cur.fetchone() is None:
                return False
            from psycopg import sql

            cur.execute(
                sql.SQL("SELECT 1 FROM {}.deliveries WHERE delivery_id = %s").format(
                    sql.Identifier(self.role(recipient))
                ),
                [delivery_id],
            )
            return cur.fetchone() is not None

    def recipients(self) -> list[str]:
        """The recipients the database has a schema for."""
        with self._transaction() as cur:
            cur.execute(
                "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s) ORDER BY 1",
                [self.role_prefix],
            )
            return [r[0][len(self.role_prefix) :] for r in cur.fetchall()]


def _rows(frame: pd.DataFrame) -> Iterator[tuple]:
    """The frame's rows for COPY: missing values as NULL, a polygon as an EWKT MultiPolygon."""
    import shapely

    geometry = None
    if "geometry" in frame.columns:
        shapes = shapely.from_wkt(frame["geometry"].to_numpy(dtype=object))
        multi = [
            None if s is None else (s if s.geom_type == "MultiPolygon" else shapely.MultiPolygon([s]))
            for s in shapes
        ]
        geometry = [None if m is None else f"SRID=4326;{m.wkt}" for m in multi]
    columns = list(frame.columns)
    for i, values in enumerate(frame.itertuples(index=False, name=None)):
        row = []
        for column, value in zip(columns, values, strict=True):
            if column == "geometry":
                value = geometry[i]
            elif value is None or (isinstance(value, float) and value != value):
                value = None
            elif hasattr(value, "item"):
                value = value.item()
            row.append(value)
        yield tuple(row)
