"""Background processes of the local cluster: start, probe, record, stop.

Why: `make cluster-up` must return while etcd, the apiserver and friends keep running, and
`make cluster-down` (another process, later) must find and stop exactly those processes. So
every service is started in its own session with its output in `logs/<name>.log`, and a record
(`run/<name>.json`: pid, the process's start time, argv, env) lets any later process check it
is still the same process (not a recycled pid) and stop or restart it.

Adding a service (Postgres, the operator) is one `ServiceSpec` with a readiness probe.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil

_PR_SET_PDEATHSIG = 1


class ServiceError(RuntimeError):
    """A service exited or did not become ready in time. The message carries its log's tail."""


@dataclass(frozen=True)
class ServiceSpec:
    """How to run one service and how to tell that it is ready."""

    name: str
    argv: tuple[str, ...]
    #: Added to (and overriding) the starting process's environment.
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    ready: Callable[[], bool] | None = None
    ready_timeout: float = 60.0
    #: How long `stop` waits after SIGTERM before SIGKILL.
    stop_timeout: float = 10.0


@dataclass(frozen=True)
class ServiceRecord:
    """A started service, as recorded in `run/<name>.json`."""

    name: str
    pid: int
    create_time: float
    argv: tuple[str, ...]
    env: dict[str, str]
    cwd: str | None
    log: str
    order: int
    stop_timeout: float

    def alive(self) -> bool:
        """Whether the recorded process still runs (and is not a recycled pid)."""
        try:
            process = psutil.Process(self.pid)
            return bool(
                abs(process.create_time() - self.create_time) < 0.5
                and process.status() != psutil.STATUS_ZOMBIE
            )
        except psutil.Error:
            return False


def _die_with_parent() -> None:
    """preexec_fn: SIGKILL this child when the starting process dies (pytest crashed)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def log_tail(path: Path, lines: int = 30) -> str:
    """The last `lines` lines of a log file, for error messages."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            text = f.read().decode(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


class Supervisor:
    """Starts services in the background and keeps their records under `run_dir`.

    With `die_with_parent`, services get SIGKILL when the process that started them dies
    (the pytest fixture uses it; `make cluster-up` cannot, since make exits).
    """

    def __init__(self, run_dir: Path, log_dir: Path, *, die_with_parent: bool = False):
        self.run_dir = run_dir
        self.log_dir = log_dir
        self.die_with_parent = die_with_parent
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    def _record_path(self, name: str) -> Path:
        return self.run_dir / f"{name}.json"

    def records(self) -> list[ServiceRecord]:
        """Every recorded service, in start order."""
        found = []
        for path in self.run_dir.glob("*.json"):
            try:
                data = json.loads(path.read_text())
                data["argv"] = tuple(data["argv"])
                found.append(ServiceRecord(**data))
            except (OSError, ValueError, TypeError):
                continue
        return sorted(found, key=lambda r: r.order)

    def record(self, name: str) -> ServiceRecord | None:
        return next((r for r in self.records() if r.name == name), None)

    def start(self, spec: ServiceSpec) -> ServiceRecord:
        """Start `spec` detached (own session, output to its log) and record it."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{spec.name}.log"
        env = {**os.environ, **spec.env}
        order = max((r.order for r in self.records()), default=0) + 1
        with log.open("ab") as out:
            out.write(f"--- starting {spec.name}: {' '.join(spec.argv)}\n".encode())
            out.flush()
            process = subprocess.Popen(
                spec.argv,
                env=env,
                cwd=spec.cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # prctl must run in the child; services are started from one thread only.
                preexec_fn=_die_with_parent if self.die_with_parent else None,  # noqa: PLW1509
            )
        self._children[spec.name] = process
        record = ServiceRecord(
            name=spec.name,
            pid=process.pid,
            create_time=psutil.Process(process.pid).create_time(),
            argv=spec.argv,
            env=dict(spec.env),
            cwd=str(spec.cwd) if spec.cwd else None,
            log=str(log),
            order=order,
            stop_timeout=spec.stop_timeout,
        )
        tmp = self._record_path(spec.name).with_suffix(".tmp")
        tmp.write_text(json.dumps(record.__dict__, indent=1))
        tmp.replace(self._record_path(spec.name))
        return record

    def wait_ready(self, spec: ServiceSpec, record: ServiceRecord) -> None:
        """Poll the readiness probe; fail at once with the log's tail if the process exits."""
        if spec.ready is None:
            return
        deadline = time.monotonic() + spec.ready_timeout
        last_error = ""
        while time.monotonic() < deadline:
            if not record.alive():
                raise ServiceError(
                    f"{spec.name} exited during start-up; tail of {record.log}:\n"
                    + log_tail(Path(record.log))
                )
            try:
                if spec.ready():
                    return
            except Exception as exc:  # a probe's failure only means "not yet"
                last_error = f"{type(exc).__name__}: {exc}"
            time.sleep(0.2)
        raise ServiceError(
            f"{spec.name} not ready after {spec.ready_timeout:g} s ({last_error}); "
            f"tail of {record.log}:\n" + log_tail(Path(record.log))
        )

    def stop(self, name: str) -> None:
        """SIGTERM the service's process group, SIGKILL it after its stop timeout."""
        record = self.record(name)
        if record is None:
            return
        if record.alive():
            _terminate_group(record.pid, record.stop_timeout)
        child = self._children.pop(name, None)
        if child is not None:
            child.poll()  # reap it, so it does not linger as a zombie of the fixture
        self._record_path(name).unlink(missing_ok=True)

    def stop_all(self) -> None:
        """Stop every recorded service, last started first."""
        for record in reversed(self.records()):
            self.stop(record.name)

    def restart(self, name: str, *, ready: Callable[[], bool] | None = None) -> ServiceRecord:
        """Stop a service (if running) and start it again with its recorded argv and env."""
        record = self.record(name)
        if record is None:
            raise ServiceError(f"no record of a service named {name!r} in {self.run_dir}")
        self.stop(name)
        spec = ServiceSpec(
            name=record.name,
            argv=record.argv,
            env=record.env,
            cwd=Path(record.cwd) if record.cwd else None,
            ready=ready,
            stop_timeout=record.stop_timeout,
        )
        new = self.start(spec)
        self.wait_ready(spec, new)
        return new

    def kill(self, name: str) -> None:
        """SIGKILL the service's main process only (a crash), keeping its record."""
        record = self.record(name)
        if record is not None and record.alive():
            os.kill(record.pid, signal.SIGKILL)
            _wait_gone(record.pid, 5.0)
        child = self._children.get(name)
        if child is not None:
            child.poll()


def _wait_gone(pid: int, timeout: float) -> bool:
    try:
        psutil.Process(pid).wait(timeout)
    except psutil.TimeoutExpired:
        return False
    except psutil.Error:
        pass
    return True


def _terminate_group(pid: int, timeout: float) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if not _wait_gone(pid, timeout):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        _wait_gone(pid, 5.0)
