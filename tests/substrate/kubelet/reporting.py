"""Reporting pod status to the API: only when it changed, without clobbering others' changes.

The patch is a JSON merge patch of pods/status carrying the pod's resourceVersion, so it fails
with 409 instead of overwriting a condition another controller just added (the taint eviction
controller's DisruptionTarget, the node controller's Ready=False); on conflict the pod is
read again and the status recomputed. A status equal to the last one sent is not sent again,
but is compared with the server's copy every STATUS_RECHECK_SECONDS, so a change made by
someone else (Ready=False while the node was silent) is put right.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.substrate.kubeapi import ApiError, JsonDict, KubeClient
from tests.substrate.kubelet import runtime as rt
from tests.substrate.kubelet import status as st
from tests.substrate.kubelet.jsonlog import JsonLog
from tests.substrate.kubelet.podstate import PodState

STATUS_RECHECK_SECONDS = 5.0


class StatusReporter:
    def __init__(self, *, api: KubeClient, log: JsonLog, remember: Callable[[JsonDict], object]):
        self._api = api
        self._log = log
        #: Called with every newer copy of a pod this reporter sees (the syncer's cache).
        self._remember = remember

    def report(
        self,
        state: PodState,
        init_views: list[st.ContainerView],
        views: list[st.ContainerView],
        *,
        terminal: bool,
        terminating: bool = False,
        reason: str | None = None,
        message: str | None = None,
        extra_conditions: list[JsonDict] | None = None,
    ) -> None:
        def desired_for(pod: JsonDict) -> JsonDict:
            if extra_conditions:
                existing = (pod.get("status") or {}).get("conditions") or []
                types = {c["type"] for c in extra_conditions}
                kept = [c for c in existing if c.get("type") not in types]
                added = [{**c, "lastTransitionTime": rt.now_rfc3339()} for c in extra_conditions]
                pod = {**pod, "status": {**(pod.get("status") or {}), "conditions": kept + added}}
            return st.pod_status(
                pod,
                init_views,
                views,
                now=rt.now_rfc3339(),
                start_time=state.start_time,
                sandbox_ready=state.sandbox_ready,
                terminal=terminal,
                terminating=terminating,
                reason=reason,
                message=message,
            )

        pod = state.pod
        desired = desired_for(pod)
        now = time.monotonic()
        unchanged = state.last_sent is not None and not st.status_differs(state.last_sent, desired)
        if unchanged and now - state.last_checked < STATUS_RECHECK_SECONDS:
            return
        state.last_checked = now
        if not st.status_differs(pod.get("status") or {}, desired):
            state.last_sent = desired
            return
        path = f"/api/v1/namespaces/{state.namespace}/pods/{state.name}"
        for attempt in range(3):
            body = {
                "metadata": {"resourceVersion": pod["metadata"].get("resourceVersion")},
                "status": desired,
            }
            try:
                updated = self._api.patch(f"{path}/status", body)
            except ApiError as exc:
                if exc.not_found:
                    state.gone = True
                    return
                if not exc.conflict or attempt == 2:
                    raise
                pod = self._api.get(path)
                self._remember(pod)
                desired = desired_for(pod)
                continue
            self._remember(updated)
            state.last_sent = desired
            self._log.info(
                "pod.status",
                pod=state.key,
                phase=desired["phase"],
                containers={
                    c["name"]: next(iter(c["state"]), "") for c in desired["containerStatuses"]
                },
            )
            return
