"""Migrations: applied once, in order, by one owner; everyone else verifies the version; the
Core table descriptions match what the SQL created."""

from __future__ import annotations

import threading
import uuid

import psycopg
import pytest
from sqlalchemy import inspect

from stepstone import SchemaVersionError
from stepstone.store import Store
from stepstone.store._migrations import target_version
from stepstone.store._tables import metadata


@pytest.fixture
def empty_url(postgres_server: str) -> str:
    name = f"e_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return postgres_server.rpartition("/")[0] + f"/{name}"


def test_verify_refuses_a_database_without_the_schema(empty_url: str) -> None:
    store = Store.connect(empty_url)
    with pytest.raises(SchemaVersionError, match="run `stepstone db migrate`"):
        store.verify()
    store.close()


def test_concurrent_migrations_apply_each_migration_once(empty_url: str) -> None:
    results: list[list[int]] = []

    def migrate() -> None:
        store = Store.connect(empty_url)
        results.append(store.migrate())
        store.close()

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    applied = [r for r in results if r]
    assert applied == [list(range(1, target_version() + 1))]
    store = Store.connect(empty_url)
    assert store.verify() == target_version()
    assert store.migrate() == []
    store.close()


def test_a_newer_additive_schema_is_accepted_an_incompatible_one_refused(
    store: Store,
) -> None:
    """Runs pinned to an older image keep working after additive migrations."""
    with store.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO stepstone.schema_version (version, name) VALUES (998, 'additive')"
        )
    assert store.verify() == 998
    with store.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO stepstone.schema_version (version, name, compatible)"
            " VALUES (999, 'breaking', false)"
        )
    with pytest.raises(SchemaVersionError, match=r"migration 999 \(breaking\) is incompatible"):
        store.verify()


def test_migrations_declare_incompatibility_in_their_sql() -> None:
    from stepstone.store._migrations import INCOMPATIBLE_MARK, Migration

    assert Migration(3, "x", "ALTER TABLE t ADD COLUMN c int;").compatible
    assert not Migration(3, "x", f"{INCOMPATIBLE_MARK}\nALTER TABLE t DROP COLUMN c;").compatible


def test_table_descriptions_match_the_migrations(store: Store) -> None:
    inspector = inspect(store.engine)
    for table in metadata.sorted_tables:
        actual = {c["name"]: c for c in inspector.get_columns(table.name, schema="stepstone")}
        assert set(actual) == {c.name for c in table.columns}, table.name
        for column in table.columns:
            assert actual[column.name]["nullable"] == column.nullable, (table.name, column.name)
        pk = inspector.get_pk_constraint(table.name, schema="stepstone")["constrained_columns"]
        assert set(pk) == {c.name for c in table.primary_key.columns}, table.name
