"""Watch Postgres for what Kubernetes cannot tell us: a run's progress, its parking and
wake-ups, an event that made it runnable, its ending; and runs whose WorkflowRun is gone.

Polls one query (``Store.progress``) every ``db_poll_seconds`` and enqueues the runs whose
fingerprint changed, so status follows the runner within about a second without a reconcile
of every run every second.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from stepstone.store import RunProgress, RunStatus, Store
from stepstone_operator.cache import Cache, Key
from stepstone_operator.metrics import Metrics
from stepstone_operator.views import effective_run_id, key_for_run_id

log = logging.getLogger("stepstone.operator")

ORPHAN_GRACE = 3
"""Polls a run must be missing from the watches before it counts as orphaned."""


class DbWatcher:
    def __init__(
        self,
        *,
        store: Store,
        cache: Cache,
        enqueue: Callable[[Key], None],
        metrics: Metrics,
        interval: float,
        namespaces: tuple[str, ...],
        synced: Callable[[], bool],
    ) -> None:
        self.store = store
        self.cache = cache
        self.enqueue = enqueue
        self.metrics = metrics
        self.interval = interval
        self.namespaces = set(namespaces)
        self.synced = synced
        self._seen: dict[str, RunProgress] = {}
        self._missing: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="stepstone-dbwatch", daemon=True)
        self._since: datetime | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except Exception:  # the watcher must outlive a database restart
                log.exception("database poll failed; retrying")

    def poll(self) -> None:
        rows = self.store.progress(changed_since=self._since)
        if rows:
            newest = max(r.updated_at for r in rows)
            self._since = newest - timedelta(seconds=5)
        seen: dict[str, RunProgress] = {}
        for row in rows:
            key = key_for_run_id(row.run_id)
            if key is None or (self.namespaces and key[0] not in self.namespaces):
                continue  # a local run, or another operator's namespace
            before = self._seen.get(row.run_id)
            seen[row.run_id] = row
            if before is not None and row.completed_steps > before.completed_steps:
                self.metrics.steps.inc(row.completed_steps - before.completed_steps)
            body = self.cache.run(key)
            if body is None or effective_run_id(body) != row.run_id:
                self._orphan(row.run_id, row.status)
                continue
            self._missing.pop(row.run_id, None)
            if before is None or before.fingerprint != row.fingerprint:
                self.enqueue(key)
        # runs neither active nor changed lately drop out; one that changes again is new
        self._seen = seen
        self._missing = {k: n for k, n in self._missing.items() if k in seen}

    def _orphan(self, run_id: str, status: RunStatus) -> None:
        """A run whose WorkflowRun was deleted (perhaps while the operator was down) is
        terminated, so no runner of it can record anything more."""
        if status.terminal or not self.synced():
            return
        count = self._missing.get(run_id, 0) + 1
        self._missing[run_id] = count
        if count >= ORPHAN_GRACE:
            log.warning("WorkflowRun is gone; terminating its run", extra={"run": run_id})
            self.store.terminate(run_id)
            self._missing.pop(run_id, None)
