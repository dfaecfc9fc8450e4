"""A throwaway Postgres 15 server from Debian's packages, for tests, benchmarks and the local
cluster.

Why not the embedded wheel: tests and benchmarks must run on the same Postgres that production
users run (Debian's server with its default durability settings), and chaos tests need to stop
and restart it. As root, the server runs as the ``postgres`` system user (Postgres refuses
root), so its folder lives under /tmp where that user can reach it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

PG_BIN = Path(os.environ.get("STEPSTONE_PG_BIN", "/usr/lib/postgresql/15/bin"))


class PostgresUnavailableError(RuntimeError):
    """The Postgres server binaries are not installed."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _as_postgres(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


@dataclass
class LocalPostgres:
    """``start()`` creates the cluster on first use; ``url`` is a superuser URL over TCP."""

    root: Path
    port: int

    @classmethod
    def create(cls, root: Path | None = None, port: int | None = None) -> LocalPostgres:
        if not (PG_BIN / "postgres").exists():
            raise PostgresUnavailableError(
                f"no Postgres server in {PG_BIN}; install Debian's postgresql-15 "
                "(make test does) or set STEPSTONE_PG_BIN"
            )
        root = root or Path(tempfile.mkdtemp(prefix="stepstone-pg-"))
        return cls(root=root, port=port or free_port())

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url_for(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _chown(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            self.root.chmod(0o755)

    def init(self) -> None:
        """Create the cluster's data folder on first use."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._chown()
        if not (self.data / "PG_VERSION").exists():
            initdb = [str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust"]
            subprocess.run(
                _as_postgres([*initdb, "-U", "postgres", "--no-sync"]),
                check=True,
                capture_output=True,
            )

    def _settings(self) -> list[str]:
        return [
            *("-p", str(self.port), "-k", str(self.root)),
            *("-c", "listen_addresses=127.0.0.1", "-c", "max_connections=300"),
            *("-c", "shared_buffers=128MB"),
        ]

    def server_argv(self) -> list[str]:
        """The server in the foreground, for a supervisor (``make cluster-up``)."""
        return _as_postgres([str(PG_BIN / "postgres"), "-D", str(self.data), *self._settings()])

    def start(self) -> str:
        self.init()
        pg_ctl = [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log)]
        subprocess.run(
            _as_postgres([*pg_ctl, "-o", " ".join(self._settings()), "-w", "-t", "60", "start"]),
            check=True,
            capture_output=True,
        )
        return self.url

    def running(self) -> bool:
        result = subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "status"]),
            capture_output=True,
            check=False,
        )
        return result.returncode == 0

    def stop(self, mode: str = "fast") -> None:
        if self.data.exists() and self.running():
            subprocess.run(
                _as_postgres(
                    [
                        str(PG_BIN / "pg_ctl"),
                        "-D",
                        str(self.data),
                        "-m",
                        mode,
                        "-w",
                        "-t",
                        "60",
                        "stop",
                    ]
                ),
                check=True,
                capture_output=True,
            )

    def restart(self) -> None:
        self.stop()
        self.start()

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
