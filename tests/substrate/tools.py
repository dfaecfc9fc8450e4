"""Finding the control plane's binaries (built from Go modules by hack/build-cluster-tools.sh).

Why separate: the fixtures must decide quickly, without building, whether the binaries exist
(and otherwise skip saying exactly what is missing), while `make cluster-up` may build them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "hack" / "build-cluster-tools.sh"
BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "helm",
)
#: Points at a directory with all of BINARIES, instead of the build cache.
TOOLS_BIN_ENV = "STEPSTONE_TOOLS_BIN"


class ToolsMissingError(RuntimeError):
    """The binaries are not there; the message says which, where, and how to build them."""


def _missing(bin_dir: Path) -> list[str]:
    return [b for b in BINARIES if not os.access(bin_dir / b, os.X_OK)]


def find_tools(*, build: bool = False) -> Path:
    """The directory holding etcd, kube-*, kubectl and helm.

    Without `build`, raises ToolsMissingError if any is missing; with it, builds them (minutes).
    """
    override = os.environ.get(TOOLS_BIN_ENV)
    if override:
        missing = _missing(Path(override))
        if missing:
            raise ToolsMissingError(f"{TOOLS_BIN_ENV}={override} lacks {', '.join(missing)}")
        return Path(override)
    if not BUILD_SCRIPT.exists():
        raise ToolsMissingError(f"{BUILD_SCRIPT} not found")
    check = subprocess.run(
        [str(BUILD_SCRIPT), "--check"], capture_output=True, text=True, check=False
    )
    lines = check.stdout.strip().splitlines()
    if check.returncode == 0 and lines:
        return Path(lines[-1])
    bin_dir = Path(lines[-1]) if lines else Path("?")
    missing = _missing(bin_dir)
    go = shutil.which("go")
    if not build:
        hint = "run `make tools` (a cold build takes about 6 minutes on 2 cores)"
        if go is None:
            hint = "the Go toolchain (>= 1.24) is not on PATH, so `make tools` cannot build them"
        raise ToolsMissingError(f"not built in {bin_dir}: {', '.join(missing)}; {hint}")
    if go is None:
        raise ToolsMissingError(
            f"cannot build {', '.join(missing)}: the Go toolchain (>= 1.24) is not on PATH"
        )
    built = subprocess.run([str(BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True, check=False)
    lines = built.stdout.strip().splitlines()
    if built.returncode != 0 or not lines:
        raise ToolsMissingError(f"{BUILD_SCRIPT} failed (exit {built.returncode}); see its output")
    return Path(lines[-1])
