"""Fixtures shared by every test that needs Postgres.

One real Postgres 15 server per test session (Debian's binaries, see
``tests.substrate.postgres``), or the one ``STEPSTONE_TEST_DATABASE_URL`` names; each test gets
a fresh database cloned from a template that already has the stepstone schema.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from stepstone.store import Store
from tests.substrate.postgres import LocalPostgres, PostgresUnavailableError

TEMPLATE = "stepstone_template"


@pytest.fixture(scope="session")
def postgres_instance() -> Iterator[LocalPostgres | None]:
    """The session's Postgres server when this session started it (chaos tests restart it);
    None when ``STEPSTONE_TEST_DATABASE_URL`` names one."""
    if os.environ.get("STEPSTONE_TEST_DATABASE_URL"):
        yield None
        return
    try:
        server = LocalPostgres.create()
    except PostgresUnavailableError as exc:
        pytest.skip(str(exc))
    server.start()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="session")
def postgres_server(postgres_instance: LocalPostgres | None) -> str:
    """A superuser URL of the session's Postgres server (database ``postgres``)."""
    if postgres_instance is None:
        return os.environ["STEPSTONE_TEST_DATABASE_URL"]
    return postgres_instance.url


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def _template(postgres_server: str) -> str:
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE}")
        conn.execute(f"CREATE DATABASE {TEMPLATE}")
    store = Store.connect(_with_database(postgres_server, TEMPLATE))
    store.migrate()
    store.close()
    return TEMPLATE


@pytest.fixture
def database_url(postgres_server: str, _template: str) -> Iterator[str]:
    """A fresh database with the stepstone schema, dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {_template}")
    yield _with_database(postgres_server, name)
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    s = Store.connect(database_url, retry_seconds=5)
    yield s
    s.close()
