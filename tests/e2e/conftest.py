"""The kind suite's cluster: images built with Docker, a kind cluster, the chart installed the
way docs/install.md's quickstart says (the quickstart block itself is what runs).

Skips, saying why, where there is no Docker engine, no kind, or no kubectl/helm; with
STEPSTONE_E2E_REQUIRED=1 (CI sets it) those are failures instead, so a broken runner cannot
pass by skipping. Knobs: STEPSTONE_E2E_CLUSTER (kind cluster name, default stepstone-e2e),
STEPSTONE_E2E_KEEP=1 (leave the cluster up afterwards, for a look).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e import docblocks
from tests.substrate.handle import ClusterHandle
from tests.substrate.kubeapi import read_kubeconfig
from tests.substrate.tools import REPO, ToolsMissingError, find_tools

E2E_BIN = Path.home() / ".cache" / "stepstone" / "e2e-bin"
FLOWS_IMAGE = "stepstone/e2e-flows:dev"
NAMESPACE = "stepstone"


def _unavailable(reason: str) -> None:
    if os.environ.get("STEPSTONE_E2E_REQUIRED") == "1":
        pytest.fail(f"the kind suite is required here (STEPSTONE_E2E_REQUIRED=1): {reason}")
    pytest.skip(reason)


def docker_problem() -> str | None:
    """Why Docker cannot build and run images here, or None when it can."""
    if shutil.which("docker") is None:
        return "no Docker engine: the docker CLI is not installed"
    try:
        info = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "no Docker engine: `docker info` did not answer within 30 s"
    if info.returncode != 0:
        detail = (info.stderr.strip().splitlines() or ["no output"])[-1]
        return f"no Docker engine: `docker info` failed ({detail})"
    return None


def _find(tool: str) -> Path | None:
    for candidate in (shutil.which(tool), E2E_BIN / tool):
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate)
    try:
        substrate = find_tools() / tool
    except ToolsMissingError:
        return None
    return substrate if os.access(substrate, os.X_OK) else None


def tool_dir(scratch: Path) -> Path:
    """A bin dir with kind, kubectl and helm (from PATH, `make e2e-tools`, or the substrate's
    build), so that ClusterHandle and the docs' commands find them by name."""
    problem = docker_problem()
    if problem:
        _unavailable(problem)
    bin_dir = scratch / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    hints = {"kind": "run `make e2e-tools`", "kubectl": "install kubectl", "helm": "install helm"}
    for tool, hint in hints.items():
        found = _find(tool)
        if found is None:
            _unavailable(f"{tool} not found: {hint}")
        link = bin_dir / tool
        if not link.exists():
            link.symlink_to(found)
    return bin_dir


def _run(argv: list[str], env: dict[str, str], timeout: float = 900) -> None:
    result = subprocess.run(
        argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {result.returncode}:\n{result.stderr}")


@pytest.fixture(scope="session")
def kind_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The quickstart, run: images built, a kind cluster, the chart installed, `helm test`
    passed, the examples succeeded. Yields the shell environment of the docs' commands."""
    scratch = tmp_path_factory.mktemp("kind")
    bin_dir = tool_dir(scratch)
    name = os.environ.get("STEPSTONE_E2E_CLUSTER", "stepstone-e2e")
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")]),
        # kind writes the cluster's credentials here, not into the user's ~/.kube/config.
        "KUBECONFIG": str(scratch / "kubeconfig"),
    }
    subprocess.run(["kind", "delete", "cluster", "--name", name], env=env, check=False)
    try:
        docblocks.run(
            "kind-quickstart",
            env=env,
            replace={"--name stepstone": f"--name {name}"},
            helm_args=["--timeout", "10m"],
            timeout=1200,
        )
        _run(["docker", "build", "-t", FLOWS_IMAGE, "-f", "tests/e2e/Dockerfile", "."], env)
        _run(["kind", "load", "docker-image", FLOWS_IMAGE, "--name", name], env)
        yield env
    finally:
        if os.environ.get("STEPSTONE_E2E_KEEP") != "1":
            subprocess.run(["kind", "delete", "cluster", "--name", name], env=env, check=False)


@pytest.fixture(scope="session")
def kind_cluster(
    kind_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> ClusterHandle:
    kubeconfig = Path(kind_env["KUBECONFIG"])
    bin_dir = Path(kind_env["PATH"].split(os.pathsep)[0])
    return ClusterHandle(
        kubeconfig=kubeconfig,
        bin_dir=bin_dir,
        api_url=read_kubeconfig(kubeconfig).server,
        state_dir=tmp_path_factory.mktemp("kind-handle"),
    )
