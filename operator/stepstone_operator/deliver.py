"""Deliver WorkflowEvents into their runs: store each in Postgres once (its dedup key is the
object's uid or its spec.key), then keep its status in step with what the run did with it."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from stepstone.store import Store
from stepstone_operator.api import API_VERSION, WorkflowEventSpec
from stepstone_operator.cache import Cache
from stepstone_operator.kube import Kube
from stepstone_operator.status import iso
from stepstone_operator.views import effective_run_id

log = logging.getLogger("stepstone.operator")

EventKey = tuple[str, str, str]


def _condition(status: str, reason: str, message: str, now: datetime) -> dict[str, Any]:
    return {
        "type": "Delivered",
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": iso(now),
    }


class EventDeliverer:
    def __init__(
        self, *, kube: Kube, store: Store, cache: Cache, clock: Callable[[], datetime]
    ) -> None:
        self.kube = kube
        self.store = store
        self.cache = cache
        self.clock = clock

    def reconcile(self, key: EventKey) -> float | None:
        _, namespace, name = key
        body = self.cache.event((namespace, name))
        if body is None:
            return None
        status = dict(body.get("status") or {})
        now = self.clock()
        try:
            spec = WorkflowEventSpec.model_validate(body.get("spec") or {})
        except ValidationError as exc:
            self._status(
                body,
                {**status, "conditions": [_condition("False", "SpecInvalid", str(exc)[:500], now)]},
            )
            return None
        run = self.cache.run((namespace, spec.run_ref.name))
        if run is None:
            self._status(
                body,
                {
                    **status,
                    "conditions": [
                        _condition(
                            "False",
                            "RunNotFound",
                            f"WorkflowRun {spec.run_ref.name!r} not found in "
                            f"namespace {namespace}; the event is delivered as soon as it exists",
                            now,
                        )
                    ],
                },
            )
            return 10.0
        run_id = effective_run_id(run)
        dedup = f"wfevent:{spec.key or body['metadata']['uid']}"
        if not status.get("delivered"):
            if self.store.get_run(run_id) is None:
                return 2.0  # the run has not started; the event waits for it
            new, record = self.store.send_event(
                run_id, spec.event, json.dumps(spec.payload), dedup_key=dedup
            )
            note = (
                f"stored for run {run_id}; the next wait_for_event({spec.event!r}) receives it"
                if not record.status.terminal
                else f"stored, but run {run_id} has ended ({record.status}): nothing will "
                "receive it unless the run is resumed"
            )
            if not new:
                note = "an event with the same key was delivered already; this one is not"
            status.update(
                delivered=True,
                deliveredAt=iso(now),
                runId=run_id,
                conditions=[_condition("True", "Delivered", note, now)],
            )
            self._own(body, run)
            self._status(body, status)
            log.info("event delivered", extra={"run": run_id, "event": spec.event, "new": new})
        consumed = self.store.consumed_step(run_id, dedup)
        if consumed != status.get("consumedByStep"):
            status["consumedByStep"] = consumed
            self._status(body, status)
        if consumed is None:
            current = self.store.get_run(run_id)
            if current is not None and not current.status.terminal:
                return 5.0
        return None

    def _status(self, body: dict[str, Any], status: dict[str, Any]) -> None:
        meta = body["metadata"]
        self.kube.patch_event(meta["namespace"], meta["name"], {"status": status}, status=True)
        self.cache.put_event({**body, "status": status})

    def _own(self, body: dict[str, Any], run: dict[str, Any]) -> None:
        """Owned by its run, the event goes when the run is deleted."""
        meta = body["metadata"]
        owner = {
            "apiVersion": API_VERSION,
            "kind": "WorkflowRun",
            "name": run["metadata"]["name"],
            "uid": run["metadata"]["uid"],
        }
        self.kube.patch_event(
            meta["namespace"],
            meta["name"],
            {"metadata": {"ownerReferences": [owner]}},
            status=False,
        )
