"""The operator's machinery: the work queue, its worker threads, the database watcher and the
periodic resync. kopf's watch handlers feed it (``handlers``); ``Reconciler`` does the work.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

from stepstone.store import Store
from stepstone_operator.cache import Body, Cache, Key, key_of
from stepstone_operator.config import OperatorConfig
from stepstone_operator.dbwatch import DbWatcher
from stepstone_operator.deliver import EventDeliverer, EventKey
from stepstone_operator.kube import Kube
from stepstone_operator.metrics import Metrics
from stepstone_operator.reconcile import Reconciler
from stepstone_operator.views import effective_run_id
from stepstone_operator.workqueue import WorkQueue

log = logging.getLogger("stepstone.operator")

ERROR_BACKOFF = (0.5, 1, 2, 5, 10, 30)
SYNC_SETTLE_SECONDS = 5.0


class Controller:
    def __init__(
        self, *, config: OperatorConfig, store: Store, kube: Kube, metrics: Metrics
    ) -> None:
        self.config = config
        self.store = store
        self.kube = kube
        self.metrics = metrics
        self.cache = Cache()
        self.queue: WorkQueue[Key | EventKey] = WorkQueue()
        self.reconciler = Reconciler(
            kube=kube, store=store, cache=self.cache, config=config, metrics=metrics
        )
        self.deliverer = EventDeliverer(
            kube=kube, store=store, cache=self.cache, clock=self.reconciler.clock
        )
        self._errors: Counter[Key | EventKey] = Counter()
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._started = time.monotonic()
        self.watcher = DbWatcher(
            store=store,
            cache=self.cache,
            enqueue=self.queue.add,
            metrics=metrics,
            interval=config.db_poll_seconds,
            namespaces=config.namespaces,
            synced=self.synced,
        )

    def synced(self) -> bool:
        """Have the watches had time to list everything since the start?"""
        return time.monotonic() - self._started > SYNC_SETTLE_SECONDS

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        for i in range(self.config.workers):
            t = threading.Thread(target=self._work, name=f"stepstone-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        resync = threading.Thread(target=self._resync, name="stepstone-resync", daemon=True)
        resync.start()
        self._threads.append(resync)
        self.watcher.start()
        log.info("controller started", extra={"workers": self.config.workers})

    def stop(self) -> None:
        self._stop.set()
        self.queue.close()
        self.watcher.stop()
        for t in self._threads:
            t.join(timeout=5)

    def healthy(self) -> bool:
        return all(t.is_alive() for t in self._threads)

    def _work(self) -> None:
        while (key := self.queue.get()) is not None:
            try:
                if len(key) == 3:
                    again = self.deliverer.reconcile(key)
                else:
                    again = self.reconciler.reconcile(key)
            except Exception:
                self.metrics.reconcile_errors.inc()
                self._errors[key] += 1
                delay = ERROR_BACKOFF[min(self._errors[key], len(ERROR_BACKOFF)) - 1]
                log.exception(
                    "reconcile failed; retrying", extra={"run": "/".join(key), "retry_in": delay}
                )
                self.queue.add_after(key, delay)
            else:
                self._errors.pop(key, None)
                if again is not None:
                    self.queue.add_after(key, again)
            finally:
                self.queue.done(key)
                self.metrics.queue_depth.set(len(self.queue))

    def _resync(self) -> None:
        while not self._stop.wait(self.config.resync_seconds):
            for key in self.cache.run_keys():
                self.queue.add(key)
            self._count_phases()

    def _count_phases(self) -> None:
        counts: Counter[str] = Counter()
        for key in self.cache.run_keys():
            body = self.cache.run(key) or {}
            counts[(body.get("status") or {}).get("phase") or "Pending"] += 1
        for phase in (
            "Pending",
            "Running",
            "Sleeping",
            "Waiting",
            "Cancelling",
            "Cancelled",
            "Terminated",
            "Succeeded",
            "Failed",
        ):
            self.metrics.runs.labels(phase).set(counts.get(phase, 0))

    # -- watch events (from kopf) -------------------------------------------------------
    def on_run(self, kind: str | None, body: Body) -> None:
        key = key_of(body)
        if kind == "DELETED":
            self.cache.drop_run(key)
            self.reconciler.forget(key)
            run_id = effective_run_id(body)
            run = self.store.get_run(run_id)
            if run is not None and not run.status.terminal:
                log.info("WorkflowRun deleted; terminating its run", extra={"run": run_id})
                self.store.terminate(run_id)
            return
        self.cache.put_run(body)
        self.queue.add(key)
        for event in self.cache.events_for_run(key):
            self.queue.add(("WorkflowEvent", *event))

    def on_event_object(self, kind: str | None, body: Body) -> None:
        key = key_of(body)
        if kind == "DELETED":
            self.cache.drop_event(key)
            return
        self.cache.put_event(body)
        self.queue.add(("WorkflowEvent", *key))

    def on_workflow(self, kind: str | None, body: Body) -> None:
        key = key_of(body)
        if kind == "DELETED":
            self.cache.drop_workflow(key)
        else:
            self.cache.put_workflow(body)
        for run_key in self.cache.runs_of_workflow(key):
            self.queue.add(run_key)

    def on_pod(self, kind: str | None, body: Body) -> None:
        if kind == "DELETED":
            self.cache.forget_pod(body)
        else:
            self.cache.remember_pod(body)
        uid = body.get("metadata", {}).get("labels", {}).get("stepstone.io/run-uid")
        key = self.cache.run_key_by_uid(uid) if uid else None
        if key is not None:
            self.queue.add(key)

    def on_node(self, kind: str | None, body: Body) -> None:
        name = body["metadata"]["name"]
        if kind == "DELETED":
            self.cache.drop_node(name)
        else:
            self.cache.put_node(body)
        for uid in self.cache.runs_on_node(name):
            key = self.cache.run_key_by_uid(uid)
            if key is not None:
                self.queue.add(key)
