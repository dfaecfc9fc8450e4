"""What the benchmarks share: a Postgres to measure on, fresh databases, and result files."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from tests.substrate.postgres import LocalPostgres

RESULTS = Path(__file__).resolve().parent / "results"


@contextmanager
def postgres(url: str | None) -> Iterator[str]:
    """The server to measure on: the given URL, or a Debian Postgres 15 started for the run
    (default settings: synchronous_commit on, fsync on)."""
    if url:
        yield url
        return
    server = LocalPostgres.create()
    server.start()
    try:
        yield server.url
    finally:
        server.destroy()


def fresh_database(server_url: str, prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return server_url.rpartition("/")[0] + f"/{name}"


def server_facts(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        facts = {
            name: str(conn.execute(f"SHOW {name}").fetchone()[0])  # type: ignore[index]
            for name in ("server_version", "synchronous_commit", "fsync", "wal_sync_method")
        }
    return facts


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip(),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def save(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path
