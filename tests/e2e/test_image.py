"""The image's recipe: the wheel the Dockerfile's build stage makes from exactly the files the
.dockerignore lets into the build context (checked everywhere), and the image itself, both
roles, as the non-root user on a read-only root filesystem (needs Docker: the kind suite).
"""

from __future__ import annotations

import fnmatch
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.e2e.conftest import docker_problem
from tests.substrate.tools import REPO

#: What the Dockerfile's build stage copies from the context.
BUILD_INPUTS = ("pyproject.toml", "README.md", "runner", "operator")


def _allowed(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore semantics, enough for our allowlist: the last match wins."""
    allowed = True
    for pattern in patterns:
        negated = pattern.startswith("!")
        glob = pattern.lstrip("!").rstrip("/")
        parts = Path(path).parts
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if glob.startswith("**/"):
            hit = any(fnmatch.fnmatch(part, glob[3:]) for part in parts)
        else:
            hit = any(fnmatch.fnmatch(prefix, glob) for prefix in prefixes)
        if hit:
            allowed = negated
    return allowed


def _context(tmp: Path) -> Path:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    context = tmp / "context"
    for source in REPO.rglob("*"):
        rel = source.relative_to(REPO).as_posix()
        if rel.split("/")[0] in {".git", ".venv", ".cluster"} or not source.is_file():
            continue
        if _allowed(rel, patterns):
            (context / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, context / rel)
    return context


def test_the_docker_context_holds_what_the_build_needs_and_no_more(tmp_path: Path) -> None:
    context = _context(tmp_path)
    top = {p.name for p in context.iterdir()}
    assert top == {*BUILD_INPUTS, "examples", "tests"}, top
    assert not list(context.rglob("__pycache__"))
    assert (context / "examples" / "shop" / "workflows.py").exists()
    assert {p.name for p in (context / "tests").rglob("*.py")} == {"__init__.py", "flows.py"}


def test_the_build_stage_makes_a_wheel_with_both_roles(tmp_path: Path) -> None:
    context = _context(tmp_path)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "w"), "."],
        cwd=context,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    [wheel] = (tmp_path / "w").glob("stepstone-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "stepstone/__main__.py",
        "stepstone/runner.py",
        "stepstone_operator/__main__.py",
        "stepstone/store/migrations/0001_initial.sql",
    ):
        assert needed in names, needed
    sql = {n for n in names if n.endswith(".sql")}
    assert sql == {
        f"stepstone/store/migrations/{p.name}"
        for p in (REPO / "runner/stepstone/store/migrations").glob("*.sql")
    }
    meta = next(n for n in names if n.endswith("entry_points.txt"))
    assert "stepstone = stepstone.cli:main" in zipfile.ZipFile(wheel).read(meta).decode()


@pytest.mark.e2e
@pytest.mark.timeout(1800)
def test_the_image_runs_both_roles_as_uid_10001_read_only() -> None:
    problem = docker_problem()
    if problem:
        pytest.skip(problem)
    tag = "stepstone:e2e-image"
    build = subprocess.run(
        ["docker", "build", "-t", tag, "."], cwd=REPO, capture_output=True, text=True,
        timeout=1500, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-3000:]
    run = ["docker", "run", "--rm", "--read-only", "--tmpfs", "/tmp", tag]
    for argv in (
        ["id", "-u"],
        ["python", "-m", "stepstone_operator", "--help"],
        ["python", "-m", "stepstone", "--help"],
        ["stepstone", "db", "--help"],
    ):
        result = subprocess.run(
            [*run, *argv], capture_output=True, text=True, timeout=120, check=False
        )
        assert result.returncode == 0, (argv, result.stderr)
        if argv == ["id", "-u"]:
            assert result.stdout.strip() == "10001"
