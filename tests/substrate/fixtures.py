"""The session cluster behind the pytest fixtures: a private one, or one that already runs.

Why here and not in conftest.py: the logic (start on free ports in a temp dir, or reuse the
cluster named by STEPSTONE_KUBECONFIG, and tear down) is also useful to scripts and benches;
conftest.py only adapts it to pytest (skips, scopes).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from tests.substrate.cluster import (
    KUBELET_SERVICE,
    ClusterConfig,
    ClusterInfo,
    start_cluster,
    stop_cluster,
)
from tests.substrate.controlplane import Layout
from tests.substrate.handle import ClusterHandle, KubeletHandle
from tests.substrate.kubeapi import KubeClient, read_kubeconfig
from tests.substrate.kubelet.runtime import kill_pod_processes
from tests.substrate.services import Supervisor
from tests.substrate.tools import find_tools

#: Points at the kubeconfig of a cluster to reuse (e.g. `.cluster/kubeconfig` of
#: `make cluster-up`, or a kind cluster's) instead of starting a private one.
KUBECONFIG_ENV = "STEPSTONE_KUBECONFIG"


def handle_for(info: ClusterInfo, *, die_with_parent: bool = False) -> ClusterHandle:
    """A handle on a cluster started by `start_cluster` (its kubelet controllable).

    `die_with_parent`: a kubelet restarted through the handle dies with this process too.
    """
    state_dir = Path(info.state_dir)
    layout = Layout(state_dir)
    kubeconfig = Path(info.kubeconfig)
    kubelet = KubeletHandle(
        control_url=info.kubelet_control_url,
        root_dir=Path(info.kubelet_root),
        log_file=Path(info.kubelet_log),
        api=KubeClient.from_kubeconfig(kubeconfig),
        supervisor=Supervisor(layout.run, layout.logs, die_with_parent=die_with_parent),
        service=KUBELET_SERVICE,
    )
    return ClusterHandle(
        kubeconfig=kubeconfig,
        bin_dir=Path(info.bin_dir),
        api_url=info.api_url,
        kubelet=kubelet,
        state_dir=state_dir,
    )


@contextmanager
def session_cluster(
    scratch: Path, *, kubelet_args: tuple[str, ...] | None = None
) -> Iterator[ClusterHandle]:
    """Reuse the cluster of $STEPSTONE_KUBECONFIG, or start a private one under `scratch`.

    Raises ToolsMissingError when the binaries are not built (the fixture turns it into a skip).
    """
    external = os.environ.get(KUBECONFIG_ENV)
    if external:
        kubeconfig = Path(external).resolve()
        info = ClusterInfo.load(kubeconfig.parent)
        if info is not None and Path(info.kubeconfig) == kubeconfig:
            yield handle_for(info)
            return
        # Not a substrate cluster (kind, say): kubectl and helm, but no fault injection.
        yield ClusterHandle(
            kubeconfig=kubeconfig,
            bin_dir=find_tools(),
            api_url=read_kubeconfig(kubeconfig).server,
            state_dir=scratch,
        )
        return
    bin_dir = find_tools()
    reap_crashed_sessions(scratch)
    config = ClusterConfig(state_dir=scratch, bin_dir=bin_dir, die_with_parent=True)
    if kubelet_args is not None:
        config = replace(config, kubelet_args=kubelet_args)
    info = start_cluster(config)
    try:
        yield handle_for(info, die_with_parent=True)
    finally:
        stop_cluster(scratch)


SESSIONS_KEPT = 3


def session_scratch() -> Path:
    """Where a private test cluster keeps its state: outside /tmp on purpose, because pods
    commonly mount an emptyDir over /tmp and would hide their own working directory (the
    kubelet's per-pod folders) if the cluster lived there."""
    root = Path(
        os.environ.get("STEPSTONE_TEST_CLUSTERS")
        or Path.home() / ".cache" / "stepstone" / "test-clusters"
    )
    root.mkdir(parents=True, exist_ok=True)
    return root / f"session-{os.getpid()}-{secrets.token_hex(3)}"


def reap_crashed_sessions(scratch: Path) -> None:
    """Kill pod processes left by earlier test sessions that died without tearing down, and
    keep only the newest few session folders (their logs help after a failure).

    The control plane and kubelet of a private cluster die with pytest (PR_SET_PDEATHSIG), but
    pod processes outlive their kubelet on purpose, so a pytest killed with SIGKILL leaves them
    behind.
    """
    dead = []
    for state_dir in scratch.parent.glob("session-*"):
        if state_dir == scratch or not (state_dir / "kubelet").is_dir():
            continue
        record = Supervisor(Layout(state_dir).run, Layout(state_dir).logs).record(KUBELET_SERVICE)
        if record is not None and record.alive():
            continue  # another session, still running
        kill_pod_processes(Layout(state_dir).kubelet_root)
        dead.append(state_dir)
    dead.sort(key=lambda d: d.stat().st_mtime, reverse=True)
    for old in dead[SESSIONS_KEPT:]:
        shutil.rmtree(old, ignore_errors=True)


def namespace_name(test_name: str) -> str:
    """A valid, unique namespace name derived from a test's name (at most 63 characters)."""
    slug = re.sub(r"[^a-z0-9-]+", "-", test_name.lower()).strip("-")
    slug = re.sub(r"^test-?", "", slug)[:50].strip("-") or "t"
    return f"{slug}-{secrets.token_hex(3)}"
