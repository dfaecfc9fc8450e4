"""SIGTERM for a runner: a cancel delivered into the running step, or the pod going away.

Kubernetes sends SIGTERM both when we cancel a run (the operator records the cancel request,
then deletes the pod with the run's cancel grace period) and when a pod is lost for other
reasons (deleted, evicted, node drained). The handler asks Postgres which it is:

- cancel requested: ``Cancelled`` is raised into the step's code if a sync step body is
  running (it may clean up in ``except``/``finally``), otherwise the run stops at its next
  boundary or wait;
- no cancel request: the process exits at once with ``INTERRUPTED``; the step in flight stays
  unrecorded and the next attempt (already being created) replays and reruns it.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType

from stepstone import _state
from stepstone.contract import ExitCode
from stepstone.errors import Cancelled

log = logging.getLogger("stepstone.runner")


def install() -> None:
    """Install the SIGTERM handler (main thread only; a no-op elsewhere)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    state = _state.active()
    if state is None:
        log.info("SIGTERM with no run executing; exiting")
        logging.shutdown()
        os._exit(128 + signum)
    try:
        cancel = state.cancel.is_set() or state.store.cancel_requested_once(state.run_id)
    except Exception as exc:
        log.warning("could not check for a cancel request", extra={"error": str(exc)})
        cancel = False
    if not cancel:
        step = state.progress().current_step
        log.warning(
            "SIGTERM without a cancel request: the pod is going away; exiting, the next "
            "attempt replays and reruns the step in flight",
            extra={"run_id": state.run_id, "attempt": state.epoch, "step": step},
        )
        logging.shutdown()
        os._exit(ExitCode.INTERRUPTED)
    log.info("SIGTERM: cancel requested", extra={"run_id": state.run_id})
    state.request_cancel()
    if state.sync_body is not None and not state.cancel_delivered:
        state.cancel_delivered = True
        raise Cancelled(f"run {state.run_id} was cancelled; step {state.sync_body} interrupted")
