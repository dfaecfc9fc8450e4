"""What the watches have seen: WorkflowRuns, Workflows, runner pods and nodes, by key.

Reconciles read from here instead of asking the API server each time (200 runs reconciled
every second would otherwise be hundreds of requests a second). Writes the operator makes are
put here at once (``remember_pod``), so a reconcile that follows never acts on a view older
than its own last action.
"""

from __future__ import annotations

import threading
from typing import Any

from stepstone.contract import LABEL_RUN_UID

Body = dict[str, Any]
Key = tuple[str, str]


def key_of(body: Body) -> Key:
    meta = body.get("metadata", {})
    return meta.get("namespace", ""), meta.get("name", "")


class Cache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[Key, Body] = {}
        self._workflows: dict[Key, Body] = {}
        self._pods: dict[str, dict[str, Body]] = {}  # run uid -> pod name -> pod
        self._nodes: dict[str, Body] = {}
        self._events: dict[Key, Body] = {}

    # -- runs ---------------------------------------------------------------------------
    def put_run(self, body: Body) -> None:
        with self._lock:
            self._runs[key_of(body)] = body

    def drop_run(self, key: Key) -> None:
        with self._lock:
            self._runs.pop(key, None)

    def run(self, key: Key) -> Body | None:
        with self._lock:
            return self._runs.get(key)

    def run_keys(self) -> list[Key]:
        with self._lock:
            return list(self._runs)

    def runs_of_workflow(self, key: Key) -> list[Key]:
        namespace, name = key
        with self._lock:
            return [
                k
                for k, body in self._runs.items()
                if k[0] == namespace
                and body.get("spec", {}).get("workflowRef", {}).get("name") == name
            ]

    # -- workflows ----------------------------------------------------------------------
    def put_workflow(self, body: Body) -> None:
        with self._lock:
            self._workflows[key_of(body)] = body

    def drop_workflow(self, key: Key) -> None:
        with self._lock:
            self._workflows.pop(key, None)

    def workflow(self, key: Key) -> Body | None:
        with self._lock:
            return self._workflows.get(key)

    # -- pods ---------------------------------------------------------------------------
    def remember_pod(self, body: Body) -> None:
        uid = body.get("metadata", {}).get("labels", {}).get(LABEL_RUN_UID)
        if not uid:
            return
        with self._lock:
            self._pods.setdefault(uid, {})[body["metadata"]["name"]] = body

    def forget_pod(self, body: Body) -> None:
        uid = body.get("metadata", {}).get("labels", {}).get(LABEL_RUN_UID)
        with self._lock:
            pods = self._pods.get(uid or "", {})
            pods.pop(body["metadata"]["name"], None)
            if not pods:
                self._pods.pop(uid or "", None)

    def pods(self, run_uid: str) -> list[Body]:
        with self._lock:
            return list(self._pods.get(run_uid, {}).values())

    def runs_on_node(self, node: str) -> set[str]:
        with self._lock:
            return {
                uid
                for uid, pods in self._pods.items()
                for pod in pods.values()
                if pod.get("spec", {}).get("nodeName") == node
            }

    # -- workflow events ----------------------------------------------------------------
    def put_event(self, body: Body) -> None:
        with self._lock:
            self._events[key_of(body)] = body

    def drop_event(self, key: Key) -> None:
        with self._lock:
            self._events.pop(key, None)

    def event(self, key: Key) -> Body | None:
        with self._lock:
            return self._events.get(key)

    def events_for_run(self, key: Key) -> list[Key]:
        namespace, name = key
        with self._lock:
            return [
                k
                for k, body in self._events.items()
                if k[0] == namespace
                and (body.get("spec") or {}).get("runRef", {}).get("name") == name
            ]

    # -- nodes --------------------------------------------------------------------------
    def put_node(self, body: Body) -> None:
        with self._lock:
            self._nodes[body["metadata"]["name"]] = body

    def drop_node(self, name: str) -> None:
        with self._lock:
            self._nodes.pop(name, None)

    def node(self, name: str) -> Body | None:
        with self._lock:
            return self._nodes.get(name)

    def run_key_by_uid(self, uid: str) -> Key | None:
        with self._lock:
            for key, body in self._runs.items():
                if body["metadata"]["uid"] == uid:
                    return key
        return None
