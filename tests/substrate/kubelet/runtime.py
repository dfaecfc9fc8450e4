"""The container runtime: container attempts as shim processes and files on disk.

Why files: everything the kubelet knows about a container attempt is on disk under
`<root>/pods/<uid>/containers/<name>/<attempt>/` (written by the shim, see `_shim.py`), so a
restarted kubelet sees its running containers again and their exit codes when they end.

    spec.json      what to run (argv, env, cwd, log path, bind mounts)
    shim.json      the shim's pid and start time (written by the kubelet)
    started.json   the container's pid and startedAt (written by the shim)
    exit.json      exitCode, finishedAt, and reason/message for start errors (by the shim)
    oom            marker: the kubelet killed it for exceeding its memory limit

Logs live apart from the pod's state, as on a real node (/var/log/pods), so they outlive it:
`<root>/logs/<namespace>_<pod>_<uid>/<container>/<attempt>.log`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

SHIM = Path(__file__).with_name("_shim.py")
#: How long an attempt may stay without a shim.json before it counts as never started.
LAUNCH_GRACE_SECONDS = 30.0


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class LaunchSpec:
    """What one container attempt runs."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    mounts: list[Mount] = field(default_factory=list)


@dataclass(frozen=True)
class Attempt:
    """The observed state of one container attempt."""

    index: int
    directory: Path
    log_path: Path
    container_id: str
    #: "creating" (shim starting), "running" or "exited".
    phase: str
    shim_pid: int | None = None
    pid: int | None = None
    started_at: str | None = None
    finished_at: str | None = None
    exit_code: int | None = None
    #: For exited attempts: OOMKilled, StartError, ContainerStatusUnknown, Completed or Error.
    reason: str | None = None
    message: str | None = None

    @property
    def running(self) -> bool:
        return self.phase == "running"

    @property
    def exited(self) -> bool:
        return self.phase == "exited"


@dataclass(frozen=True)
class PodPaths:
    """Where one pod's state and logs live."""

    pod_dir: Path
    log_dir: Path

    @staticmethod
    def of(root: Path, namespace: str, name: str, uid: str) -> PodPaths:
        return PodPaths(root / "pods" / uid, root / "logs" / f"{namespace}_{name}_{uid}")

    @property
    def volumes(self) -> Path:
        return self.pod_dir / "volumes"

    def container_dir(self, container: str) -> Path:
        return self.pod_dir / "containers" / container

    def attempt_dir(self, container: str, index: int) -> Path:
        return self.container_dir(container) / str(index)

    def log_path(self, container: str, index: int) -> Path:
        return self.log_dir / container / f"{index}.log"


def _age(path: Path) -> float:
    """Seconds since `path` (a file, or a directory's entries) changed; inf if missing."""
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return float("inf")


def _process_alive(pid: int, create_time: float | None) -> bool:
    try:
        process = psutil.Process(pid)
        if create_time is not None and abs(process.create_time() - create_time) > 0.5:
            return False
        return bool(process.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


class Runtime:
    """Starts, observes, signals and measures container attempts. Thread-safe."""

    def __init__(self, *, python: Path):
        self._python = python
        self._shims: dict[int, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    def reap(self) -> None:
        """Collect exited shims that this kubelet started (so they do not stay zombies)."""
        with self._lock:
            for pid, process in list(self._shims.items()):
                if process.poll() is not None:
                    del self._shims[pid]

    @staticmethod
    def attempt_indexes(paths: PodPaths, container: str) -> list[int]:
        try:
            entries = os.listdir(paths.container_dir(container))
        except OSError:
            return []
        return sorted(int(e) for e in entries if e.isdigit())

    def observe(self, paths: PodPaths, container: str, index: int) -> Attempt:
        """Read an attempt's files; an attempt whose shim vanished is recorded as lost."""
        self.reap()
        directory = paths.attempt_dir(container, index)
        container_id = "substrate://" + hashlib.sha256(str(directory).encode()).hexdigest()
        base: dict[str, Any] = {
            "index": index,
            "directory": directory,
            "log_path": paths.log_path(container, index),
            "container_id": container_id,
        }
        exit_info = read_json(directory / "exit.json")
        started = read_json(directory / "started.json") or {}
        shim = read_json(directory / "shim.json") or {}
        common = {
            **base,
            "shim_pid": shim.get("pid"),
            "pid": started.get("pid"),
            "started_at": started.get("startedAt"),
        }
        if exit_info is None:
            if not shim:
                # Being launched right now (spec written, shim.json not yet), or left behind
                # by a kubelet that died in between: give a launch LAUNCH_GRACE_SECONDS.
                if _age(directory) < LAUNCH_GRACE_SECONDS:
                    return Attempt(**common, phase="creating")
                exit_info = {"exitCode": 128, "reason": "StartError", "message": "never started"}
            elif _process_alive(int(shim["pid"]), shim.get("createTime")):
                return Attempt(**common, phase="running" if started else "creating")
            else:
                exit_info = {
                    "exitCode": 137,
                    "reason": "ContainerStatusUnknown",
                    "message": "The container could not be located when the pod was terminated",
                }
            if started.get("pid"):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(int(started["pid"]), signal.SIGKILL)
            exit_info["finishedAt"] = now_rfc3339()
            write_json(directory / "exit.json", exit_info)
        code = int(exit_info.get("exitCode", 128))
        reason = exit_info.get("reason")
        if reason is None:
            if (directory / "oom").exists():
                reason = "OOMKilled"
            else:
                reason = "Completed" if code == 0 else "Error"
        return Attempt(
            **common,
            phase="exited",
            finished_at=exit_info.get("finishedAt"),
            exit_code=code,
            reason=reason,
            message=exit_info.get("message"),
        )

    def launch(self, paths: PodPaths, container: str, index: int, spec: LaunchSpec) -> None:
        """Start attempt `index` of a container through a new shim."""
        directory = paths.attempt_dir(container, index)
        directory.mkdir(parents=True, exist_ok=True)
        log_path = paths.log_path(container, index)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.touch()
        write_json(
            directory / "spec.json",
            {
                "argv": spec.argv,
                "env": spec.env,
                "cwd": spec.cwd,
                "log_path": str(log_path),
                "state_dir": str(directory),
                "mounts": [m.__dict__ for m in spec.mounts],
                # the container's python is the kubelet's: keep its import path visible
                "keep": [p for p in sys.path if p and os.path.isdir(p)],
            },
        )
        (directory / "spec.json").chmod(0o600)  # it holds Secret values
        with (directory / "shim.err").open("ab") as err:
            process = subprocess.Popen(
                [str(self._python), "-I", "-S", str(SHIM), str(directory / "spec.json")],
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            )
        with self._lock:
            self._shims[process.pid] = process
        try:
            create_time: float | None = psutil.Process(process.pid).create_time()
        except psutil.Error:
            create_time = None
        write_json(directory / "shim.json", {"pid": process.pid, "createTime": create_time})

    @staticmethod
    def signal(attempt: Attempt, sig: int) -> bool:
        """Send `sig` to the attempt's process group (the container). False if it is gone."""
        if not attempt.running or attempt.pid is None:
            return False
        try:
            os.killpg(attempt.pid, sig)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    @staticmethod
    def signal_main(attempt: Attempt, sig: int) -> bool:
        """Send `sig` to the container's main process only (a fault injection)."""
        if not attempt.running or attempt.pid is None:
            return False
        try:
            os.kill(attempt.pid, sig)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    @staticmethod
    def kill(attempt: Attempt) -> None:
        """SIGKILL the whole container: its group and everything under its shim."""
        Runtime.signal(attempt, signal.SIGKILL)
        if attempt.shim_pid is None:
            return
        try:
            for child in psutil.Process(attempt.shim_pid).children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    child.kill()
        except psutil.Error:
            pass

    @staticmethod
    def memory_rss(attempt: Attempt) -> int:
        """Resident memory of every process of the container (the shim itself excluded)."""
        if attempt.shim_pid is None:
            return 0
        total = 0
        try:
            for child in psutil.Process(attempt.shim_pid).children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    total += child.memory_info().rss
        except psutil.Error:
            return 0
        return total

    @staticmethod
    def kill_for_oom(attempt: Attempt) -> None:
        (attempt.directory / "oom").touch()
        Runtime.kill(attempt)


def kill_pod_processes(root: Path, *, only: set[str] | None = None) -> int:
    """SIGKILL every container of every pod under `root` (or of the pod uids in `only`).

    Used by `make cluster-down` and the fixture's teardown (the kubelet does not kill its
    containers when it stops, like a real one), and by a kubelet at start for pods that no
    longer exist. Returns how many containers were still running.
    """
    runtime = Runtime(python=Path(sys.executable))
    killed = 0
    pods = root / "pods"
    if not pods.is_dir():
        return 0
    for pod_dir in pods.iterdir():
        if only is not None and pod_dir.name not in only:
            continue
        for container_dir in (pod_dir / "containers").glob("*"):
            for attempt_dir in container_dir.glob("*"):
                started = read_json(attempt_dir / "started.json") or {}
                shim = read_json(attempt_dir / "shim.json") or {}
                if (attempt_dir / "exit.json").exists() or not shim.get("pid"):
                    continue
                if not _process_alive(int(shim["pid"]), shim.get("createTime")):
                    continue
                killed += 1
                attempt = Attempt(
                    index=int(attempt_dir.name) if attempt_dir.name.isdigit() else 0,
                    directory=attempt_dir,
                    log_path=attempt_dir,
                    container_id="",
                    phase="running",
                    shim_pid=int(shim["pid"]),
                    pid=started.get("pid"),
                )
                runtime.kill(attempt)
    return killed
