"""JSON in and out of Postgres, and exceptions as data.

Everything stepstone stores (inputs, step outputs, event payloads, results) is JSON, so a run
can be read with ``psql`` or ``kubectl`` and resumed by another version of the code. A step's
caller always receives the decoded JSON form of what it returned, on the first execution as on
replay, so the two paths cannot differ (a tuple comes back as a list either way).
"""

from __future__ import annotations

import importlib
import json
import traceback
from collections.abc import Callable
from typing import Any

from stepstone.errors import SerializationError, StepError, StepFailed

_TRACEBACK_LIMIT = 8_000


def dumps(value: Any, *, what: str | Callable[[], str]) -> str:
    """Encode strictly (no NaN, no arbitrary objects); say what failed and how to fix it.
    ``what`` may be a function, so the hot path builds its description only on failure."""
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        what = what() if callable(what) else what
        raise SerializationError(
            f"{what} is not JSON-serialisable ({exc}); use dict (str keys), list, str, int, "
            "float, bool or None, e.g. convert dataclasses with dataclasses.asdict()"
        ) from exc


def loads(text: str) -> Any:
    return json.loads(text)


def type_name(exc: BaseException) -> str:
    cls = type(exc)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


def encode_error(exc: BaseException) -> dict[str, Any]:
    tb = "".join(traceback.format_exception(exc))
    error: dict[str, Any] = {
        "type": type_name(exc),
        "message": str(exc),
        "traceback": tb[-_TRACEBACK_LIMIT:],
    }
    if isinstance(exc, StepError):
        error["non_retryable"] = exc.non_retryable
    return error


def error_json(exc: BaseException) -> str:
    return dumps(encode_error(exc), what="error")


def rebuild_error(error: dict[str, Any]) -> Exception:
    """The recorded error as an exception of its original type when that type can be rebuilt
    from a message, so ``except SomeError`` in workflow code behaves the same on replay."""
    name = str(error.get("type", "Exception"))
    message = str(error.get("message", ""))
    module, _, qualname = name.rpartition(".")
    try:
        owner: Any = importlib.import_module(module or "builtins")
        for part in qualname.split("."):
            owner = getattr(owner, part)
        if isinstance(owner, type) and issubclass(owner, Exception):
            return owner(message)
    except Exception:
        pass
    return StepFailed(name, message)
