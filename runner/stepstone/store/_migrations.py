"""Schema migrations: numbered SQL files applied in order, with one owner.

Why numbered SQL rather than Alembic: the schema is small, reviewers read plain SQL, and the
runner must not need migration tooling at start. ``migrate`` is called by whoever owns the
database (the CLI for its local database, the chart's hook Job or the operator in a cluster);
every other process calls ``verify``.

Compatibility: a migration is additive unless its file says ``-- stepstone: incompatible``
on a line of its own. Code older than the database may run against it when every newer
migration is additive (runs pinned to an older workflow image keep working after an upgrade);
code newer than the database must wait for ``migrate``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources

from sqlalchemy import Connection, text

from stepstone.errors import SchemaVersionError

log = logging.getLogger("stepstone.store")

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Any constant works; it only has to be the same for every process that migrates.
_LOCK_KEY = 0x5735_7011


INCOMPATIBLE_MARK = "-- stepstone: incompatible"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def compatible(self) -> bool:
        """Can code that predates this migration still use the schema after it?"""
        return INCOMPATIBLE_MARK not in (line.strip() for line in self.sql.splitlines())


def available() -> list[Migration]:
    """The migrations shipped with this package, in order."""
    found = []
    for entry in resources.files("stepstone.store.migrations").iterdir():
        m = _NAME.match(entry.name)
        if m:
            found.append(Migration(int(m.group(1)), m.group(2), entry.read_text()))
    found.sort(key=lambda mig: mig.version)
    for expected, mig in enumerate(found, start=1):
        if mig.version != expected:
            raise RuntimeError(f"migration numbers must be contiguous; {mig.version} found")
    return found


def target_version() -> int:
    """The schema version this code speaks."""
    return available()[-1].version


def _current_version_txn(conn: Connection) -> int | None:
    exists = conn.execute(text("SELECT to_regclass('stepstone.schema_version')")).scalar()
    if exists is None:
        return None
    return int(
        conn.execute(text("SELECT max(version) FROM stepstone.schema_version")).scalar() or 0
    )


def migrate_txn(conn: Connection) -> list[int]:
    """Apply what is missing, under an advisory lock so concurrent owners cannot race."""
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
    conn.execute(text("CREATE SCHEMA IF NOT EXISTS stepstone"))
    conn.execute(
        text(
            "CREATE TABLE IF NOT EXISTS stepstone.schema_version ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
    )
    conn.execute(
        text(
            "ALTER TABLE stepstone.schema_version"
            " ADD COLUMN IF NOT EXISTS compatible boolean NOT NULL DEFAULT true"
        )
    )
    current = _current_version_txn(conn) or 0
    target = target_version()
    if current > target:
        raise SchemaVersionError(
            f"database schema is version {current}, newer than this stepstone ({target}); "
            "upgrade stepstone"
        )
    applied = []
    for mig in available():
        if mig.version <= current:
            continue
        log.info("applying migration", extra={"version": mig.version, "migration": mig.name})
        conn.exec_driver_sql(mig.sql)
        conn.execute(
            text(
                "INSERT INTO stepstone.schema_version (version, name, compatible)"
                " VALUES (:v, :n, :c)"
            ),
            {"v": mig.version, "n": mig.name, "c": mig.compatible},
        )
        applied.append(mig.version)
    return applied


def verify_txn(conn: Connection) -> int:
    """Check the database has exactly the schema version this code speaks."""
    current = _current_version_txn(conn)
    target = target_version()
    if current is None or current == 0:
        raise SchemaVersionError(
            "the stepstone schema is not installed in this database; run "
            "`stepstone db migrate` (or install the chart, whose hook does it)"
        )
    if current < target:
        raise SchemaVersionError(
            f"database schema is version {current} but this stepstone needs {target}; "
            "run `stepstone db migrate`"
        )
    if current > target:
        breaking = conn.execute(
            text(
                "SELECT version, name FROM stepstone.schema_version"
                " WHERE version > :t AND NOT coalesce(compatible, false) ORDER BY version"
            ),
            {"t": target},
        ).first()
        if breaking is not None:
            raise SchemaVersionError(
                f"database schema is version {current}; migration {breaking[0]} "
                f"({breaking[1]}) is incompatible with this stepstone (schema {target}): "
                "upgrade stepstone (rebuild the workflow image on a newer stepstone)"
            )
    return current
