"""The README's commands, run as written (tests/e2e/docblocks.py finds them by their markers).

`setup` runs `make demo` for real and checks `make test` is a target (this test runs inside
it); `local-cli` runs the CLI tour on a fresh embedded Postgres; `local-cluster` brings up
`make cluster-up`'s cluster, runs the examples with kubectl and the CLI, and takes it down.
The kind quickstart (`readme-kind`) is run by the kind suite (tests/e2e/test_kind.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e import docblocks
from tests.substrate.tools import REPO

VENV_BIN = str(Path(sys.executable).parent)


def _env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("STEPSTONE_DATABASE_URL", "KUBECONFIG", "PYTHONPATH")
    }
    env["PATH"] = os.pathsep.join([VENV_BIN, env.get("PATH", "")])
    env["STEPSTONE_DATA_DIR"] = str(tmp_path / "stepstone-data")
    return env


def test_setup_commands(tmp_path: Path) -> None:
    result = docblocks.run_script(
        "setup", env=_env(tmp_path), replace={"make test": "make -n test"}
    )
    assert "steps 1-3 are replayed" in result.stdout
    assert "(3 replayed, 2 executed)" in result.stdout
    assert "pytest" in result.stdout  # `make -n test` printed its recipe


def test_local_cli_tour(tmp_path: Path) -> None:
    result = docblocks.run_script("local-cli", env=_env(tmp_path))
    out = result.stdout
    assert "succeeded in" in out and "(0 replayed, 5 executed)" in out
    assert "fork of order-42 from step 3 (2 steps reused)" in out
    assert "refunded 2500 cents on order 7, approved by ana" in out
    assert "run hello-1: cancelled" in out
    status = json.loads(out[out.rindex('{\n  "run_id": "hello-1"') :].split("\n}\n")[0] + "\n}")
    assert status["status"] == "succeeded" and status["output"] == "hello, world"


@pytest.mark.cluster
def test_local_cluster_tour(tmp_path: Path) -> None:
    if (REPO / ".cluster" / "cluster.json").exists():
        pytest.skip("a `make cluster-up` cluster is running in this checkout; not touching it")
    env = _env(tmp_path)
    try:
        result = docblocks.run_script("local-cluster", env=env, timeout=900)
    finally:  # the block ends with `make cluster-down`; make sure of it if it failed midway
        subprocess.run(
            ["make", "cluster-down"],
            cwd=REPO,
            env=env,
            capture_output=True,
            timeout=120,
            check=False,
        )
    out = result.stdout
    assert "cluster up in" in out
    assert out.count("condition met") == 3
    assert "refunded 2500 cents on order 7, approved by ana" in out
    assert "validate_order" in out and "send_receipt" in out  # the steps table
