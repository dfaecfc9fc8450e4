"""Structured logs: one JSON object per line, with an event name and key/value fields.

Why: the kubelet runs for a whole test session behind many tests; when one fails, its log is
searched with grep or jq for a pod or a node (`"pod": "ns/name"`), not read line by line.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
import threading
from pathlib import Path
from typing import Any, TextIO


class JsonLog:
    """`log.info("container started", pod="ns/name", pid=42)` writes one JSON line."""

    def __init__(self, stream: TextIO, *, component: str, debug: bool = False):
        self._stream = stream
        self._component = component
        self._debug = debug
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path | None, *, component: str, debug: bool = False) -> JsonLog:
        """Log to `path` (appending, line-buffered) or to stderr when None."""
        if path is None:
            return cls(sys.stderr, component=component, debug=debug)
        path.parent.mkdir(parents=True, exist_ok=True)
        return cls(path.open("a", buffering=1), component=component, debug=debug)

    def _emit(self, level: str, event: str, fields: dict[str, Any]) -> None:
        record = {
            "ts": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
            "level": level,
            "component": self._component,
            "event": event,
            **fields,
        }
        line = json.dumps(record, default=str)
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()

    def debug(self, event: str, **fields: Any) -> None:
        if self._debug:
            self._emit("debug", event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._emit("info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._emit("warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._emit("error", event, fields)

    def exception(self, event: str, *, exc: BaseException, **fields: Any) -> None:
        """An error with the exception's type and message (and its traceback, compactly)."""
        import traceback

        trace = "".join(traceback.format_exception(exc)).strip().splitlines()[-12:]
        self._emit(
            "error", event, {"error": f"{type(exc).__name__}: {exc}", "trace": trace, **fields}
        )


def quiet_libraries() -> None:
    """urllib3 warns on every retry; the kubelet reports failures itself."""
    logging.getLogger("urllib3").setLevel(logging.ERROR)
