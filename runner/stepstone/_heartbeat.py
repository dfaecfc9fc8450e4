"""The runner's lease: a thread that renews ``heartbeat_at``, publishes progress and listens
for cancel requests, once per ``heartbeat_seconds``.

The operator declares a runner Unresponsive when its lease lapses; the per-step hot path stays
one statement because progress and cancel polling ride on this thread instead.
"""

from __future__ import annotations

import logging
import os
import threading

from stepstone._state import RunState
from stepstone.contract import ExitCode
from stepstone.errors import DatabaseUnavailableError, Fenced

log = logging.getLogger("stepstone.runner")


class Heartbeat:
    def __init__(self, state: RunState) -> None:
        self._state = state
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="stepstone-heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        state = self._state
        interval = state.options.heartbeat_seconds
        while not self._stop.wait(interval):
            try:
                reply = state.store.heartbeat(state.run_id, state.epoch, state.progress())
            except Fenced as exc:
                log.warning(
                    "attempt fenced: a newer attempt of this run exists; stopping",
                    extra={"run_id": state.run_id, "attempt": state.epoch, "reason": str(exc)},
                )
                state.mark_fenced()
                if state.options.exit_on_fence:
                    logging.shutdown()
                    os._exit(ExitCode.FENCED)
                return
            except DatabaseUnavailableError as exc:
                log.warning("heartbeat failed", extra={"run_id": state.run_id, "error": str(exc)})
                continue
            except Exception:  # the lease must not die silently; log and keep beating
                log.exception("heartbeat error", extra={"run_id": state.run_id})
                continue
            if reply.cancel_requested and not state.cancel.is_set():
                log.info("cancel requested", extra={"run_id": state.run_id})
                state.request_cancel()
