"""The stepstone operator as a local process, for integration tests and ``make cluster-up``:
start it against a kubeconfig and a database, kill it, restart it, read its log."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.substrate.postgres import free_port
from tests.substrate.tools import REPO


@dataclass
class OperatorProcess:
    kubeconfig: Path
    database_url: str
    log: Path
    extra_args: tuple[str, ...] = ()
    metrics_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "stepstone_operator",
            "--database-url",
            self.database_url,
            "--metrics-port",
            str(self.metrics_port),
            "--liveness-port",
            "0",
            "--log-format",
            "json",
            *self.extra_args,
        ]

    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PYTHONPATH": str(REPO)}

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            self.argv(),
            env=self.env(),
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: the operator gets no chance to clean up (the worst case)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> None:
        self.kill()
        self.start()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""
