"""SQLAlchemy Core descriptions of the tables that ``migrations/*.sql`` create.

The SQL files are the source of truth for the database; these objects let the query modules
build statements with Core instead of strings. A test applies the migrations to a real Postgres
and fails if these columns and the database's disagree.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Integer,
    MetaData,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB

SCHEMA = "stepstone"
metadata = MetaData(schema=SCHEMA)


def _ts(name: str, *, nullable: bool = True) -> Column[object]:
    return Column(name, DateTime(timezone=True), nullable=nullable)


runs = Table(
    "runs",
    metadata,
    Column("run_id", Text, primary_key=True),
    Column("workflow", Text, nullable=False),
    Column("entrypoint", Text, nullable=False),
    Column("version", Text),
    Column("input", JSONB, nullable=False),
    Column("status", Text, nullable=False),
    Column("epoch", BigInteger, nullable=False),
    _ts("cancel_requested_at"),
    Column("output", JSONB),
    Column("error", JSONB),
    Column("forked_from", Text),
    Column("fork_step", Integer),
    Column("parent_run_id", Text),
    Column("parent_step", Integer),
    _ts("created_at", nullable=False),
    _ts("updated_at", nullable=False),
    _ts("started_at"),
    _ts("finished_at"),
    Column("runner", Text),
    _ts("heartbeat_at"),
    Column("current_step", Integer),
    Column("current_step_name", Text),
    _ts("current_step_started_at"),
    Column("completed_steps", Integer, nullable=False),
    _ts("wake_at"),
    Column("waiting_for", Text),
    Column("recoveries", Integer, nullable=False),
    Column("last_failure", JSONB),
    Column("pinned", JSONB),
)

_step_columns = (
    ("run_id", Text, False),
    ("step", Integer, False),
    ("name", Text, False),
    ("kind", Text, False),
    ("status", Text, False),
    ("output", JSONB, True),
    ("error", JSONB, True),
    ("started_at", DateTime(timezone=True), False),
    ("finished_at", DateTime(timezone=True), False),
    ("attempts", Integer, False),
    ("epoch", BigInteger, False),
    ("cleanup", Boolean, False),
)

steps = Table(
    "steps",
    metadata,
    *(
        Column(n, t, nullable=null, primary_key=n in ("run_id", "step"))
        for n, t, null in _step_columns
    ),
)

step_history = Table(
    "step_history",
    metadata,
    *(Column(n, t, nullable=null) for n, t, null in _step_columns),
    _ts("archived_at", nullable=False),
    Column("archived_by", Text, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("run_id", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("payload", JSONB),
    Column("dedup_key", Text),
    _ts("sent_at", nullable=False),
    Column("consumed_step", Integer),
)

timers = Table(
    "timers",
    metadata,
    Column("run_id", Text, primary_key=True),
    Column("step", Integer, primary_key=True),
    _ts("deadline"),
)

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("name", Text, nullable=False),
    _ts("applied_at", nullable=False),
    Column("compatible", Boolean, nullable=False),
)
