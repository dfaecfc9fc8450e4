"""Container shim: runs one attempt of one container and records how it ended.

Why a shim (like containerd-shim): the kubelet must survive its own restart without losing
its containers, and only a process's parent can learn its exit status. So each container
attempt is started by this small parent, which:

1. optionally enters a private mount namespace and bind-mounts the pod's volumes at their
   mountPath (so /var/run/secrets/kubernetes.io/serviceaccount exists for this process only);
2. starts the command in its own session (process group = the container), output to the log;
3. writes `started.json` (pid, startedAt), waits for the main process, then SIGKILLs whatever
   is left of the container (its process group, and orphans it adopted as child subreaper,
   which is what a container runtime's cgroup kill does), and writes `exit.json`.

The kubelet reads those files; it never needs to be the container's parent. This file is run
as a script with `python -I -S`, so it uses the standard library only and ignores the pod's
PYTHON* variables. `--probe-mounts` checks whether mount namespaces work here.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import errno
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, NoReturn

CLONE_NEWNS = 0x00020000
MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
PR_SET_CHILD_SUBREAPER = 36

_libc = ctypes.CDLL(None, use_errno=True)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _write_json(path: str, data: dict[str, Any]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def _private_mount_namespace() -> None:
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _check(_libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "make / private")


def _bind(source: str, target: str, read_only: bool) -> None:
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.exists(target):
            with open(target, "a"):
                pass
    src, dst = source.encode(), target.encode()
    _check(_libc.mount(src, dst, None, MS_BIND | MS_REC, None), f"bind {source} at {target}")
    if read_only:
        flags = MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC
        _check(_libc.mount(src, dst, None, flags, None), f"remount {target} read-only")


def _needed_paths(spec: dict[str, Any]) -> list[str]:
    """Host folders the container and this shim must still see once volumes are mounted: the
    PATH and PYTHONPATH entries, the kubelet's own import path (the venv and an editable
    install's source roots, which the container's python shares), the working directory, and
    the shim's own state and log folders. Nested folders collapse into their top-most one."""
    env = spec["env"]
    paths = [
        *env.get("PATH", "").split(os.pathsep),
        *env.get("PYTHONPATH", "").split(os.pathsep),
        *spec.get("keep", []),
        spec["cwd"],
        spec["state_dir"],
        os.path.dirname(spec["log_path"]),
    ]
    found = sorted({os.path.abspath(p) for p in paths if p and os.path.isdir(p)})
    top: list[str] = []
    for path in found:
        if not any(path == t or path.startswith(t.rstrip("/") + "/") for t in top):
            top.append(path)
    return top


def _mount_keeping(source: str, target: str, read_only: bool, needed: list[str]) -> None:
    """Bind `source` at `target`; host folders needed below `target` (an emptyDir over /tmp
    would hide a checkout under /tmp) are bound back inside it, from handles opened before
    the mount shadowed them."""
    prefix = os.path.abspath(target).rstrip("/") + "/"
    below = [p for p in needed if p == prefix.rstrip("/") or p.startswith(prefix)]
    handles = {p: os.open(p, os.O_PATH | os.O_DIRECTORY) for p in below}
    try:
        _bind(source, target, read_only)
        for path, fd in handles.items():
            _bind(f"/proc/self/fd/{fd}", path, False)
    finally:
        for fd in handles.values():
            os.close(fd)


def probe_mounts() -> int:
    """Exit 0 if a private mount namespace with a bind mount works in this sandbox."""
    try:
        _private_mount_namespace()
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            with open(os.path.join(a, "probe"), "w") as f:
                f.write("ok")
            _bind(a, b, read_only=True)
            with open(os.path.join(b, "probe")) as f:
                ok = f.read() == "ok"
            _libc.umount2(b.encode(), 0)
        return 0 if ok else 1
    except OSError as exc:
        print(exc, file=sys.stderr)
        return 1


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name (field 2) may contain spaces; the fields after its ')' are fixed.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            found.append(int(entry))
    return found


def _kill_leftovers(main_pid: int) -> None:
    """SIGKILL the rest of the container: its process group and any adopted orphans."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(main_pid, signal.SIGKILL)
    for _ in range(50):
        children = _children_of(os.getpid())
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        while True:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                break
        time.sleep(0.02)


def _exit_code(status: int) -> tuple[int, int | None]:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return 128 + sig, sig
    return os.waitstatus_to_exitcode(status), None


def run(spec_path: str) -> int:
    with open(spec_path) as f:
        spec = json.load(f)
    state_dir: str = spec["state_dir"]
    exit_file = os.path.join(state_dir, "exit.json")

    def fail(message: str) -> NoReturn:
        _write_json(
            exit_file,
            {"exitCode": 128, "reason": "StartError", "message": message, "finishedAt": _now()},
        )
        sys.exit(0)

    _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    try:
        if spec["mounts"]:
            _private_mount_namespace()
            needed = _needed_paths(spec)
            for mount in spec["mounts"]:
                _mount_keeping(
                    mount["source"], mount["target"], bool(mount.get("read_only")), needed
                )
        os.makedirs(spec["cwd"], exist_ok=True)
    except OSError as exc:
        fail(f"failed to set up the container: {exc}")

    argv: list[str] = spec["argv"]
    with open(spec["log_path"], "ab") as log:
        try:
            child = subprocess.Popen(
                argv,
                env=spec["env"],
                cwd=spec["cwd"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                fail(f'exec: "{argv[0]}": executable file not found in $PATH')
            fail(f'exec: "{argv[0]}": {exc.strerror}')
    _write_json(os.path.join(state_dir, "started.json"), {"pid": child.pid, "startedAt": _now()})
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_IGN)

    status = None
    while status is None:
        try:
            pid, waited = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        if pid == child.pid:
            status = waited
    finished_at = _now()
    _kill_leftovers(child.pid)
    code, killed_by = _exit_code(status) if status is not None else (137, None)
    child.returncode = code  # reaped above; keep Popen from waiting on it again
    _write_json(exit_file, {"exitCode": code, "signal": killed_by, "finishedAt": finished_at})
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--probe-mounts"]:
        sys.exit(probe_mounts())
    sys.exit(run(sys.argv[1]))
