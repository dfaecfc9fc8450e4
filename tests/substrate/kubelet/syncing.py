"""Pod syncing: bring one pod's processes in line with its spec, then report its status.

Each call of `PodSyncer.sync(uid)` is one idempotent, non-blocking step, run again on every
watch event for the pod and every `sync_interval` (the kubelet's "pod worker"). A step reads
the runtime's files (`runtime.py`), decides and acts (start a container via `starting.py`,
restart it after back-off, kill it for its memory limit, SIGTERM then SIGKILL it when the pod
is deleted), then reports the status (`status.py`, `reporting.py`). Waiting is done with
deadlines, never by sleeping, so one pod's grace period does not hold up another pod.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import threading
import time
from collections.abc import Callable

from tests.substrate.kubeapi import ApiError, JsonDict, KubeClient
from tests.substrate.kubelet import runtime as rt
from tests.substrate.kubelet import status as st
from tests.substrate.kubelet import volumes as vol
from tests.substrate.kubelet.jsonlog import JsonLog
from tests.substrate.kubelet.podstate import (
    BAD_IMAGE_PREFIX,
    BAD_IMAGE_TAG,
    STOPPED_BY_KUBELET_FILE,
    TERMINATING_FILE,
    PodState,
    bad_image,
    container_names,
    container_specs,
    log_tail,
    parse_time,
    resource_version,
)
from tests.substrate.kubelet.reporting import StatusReporter
from tests.substrate.kubelet.settings import KubeletSettings
from tests.substrate.kubelet.starting import ContainerStarter

#: How long after SIGKILL a still-running container is killed again.
KILL_RETRY_SECONDS = 3.0

Views = tuple[list[st.ContainerView], list[st.ContainerView]]


class PodSyncer:
    """Owns every pod bound to this kubelet's nodes. `sync` may run on many threads at once,
    but never twice at once for the same pod (the dispatcher guarantees it)."""

    def __init__(
        self,
        *,
        api: KubeClient,
        runtime: rt.Runtime,
        settings: KubeletSettings,
        log: JsonLog,
        is_silenced: Callable[[str], bool],
        starter: ContainerStarter,
    ):
        self._api = api
        self._runtime = runtime
        self._settings = settings
        self._log = log
        self._is_silenced = is_silenced
        self._starter = starter
        self._reporter = StatusReporter(api=api, log=log, remember=self.update)
        self._pods: dict[str, PodState] = {}
        self._lock = threading.Lock()

    # ----- the pod cache, fed by the watchers -----

    def update(self, pod: JsonDict) -> str:
        """Record the newest copy of a pod; returns its uid."""
        meta = pod["metadata"]
        uid = str(meta["uid"])
        with self._lock:
            state = self._pods.get(uid)
            if state is None:
                paths = rt.PodPaths.of(
                    self._settings.root_dir, meta["namespace"], meta["name"], uid
                )
                self._pods[uid] = PodState(
                    uid=uid,
                    namespace=meta["namespace"],
                    name=meta["name"],
                    node=(pod.get("spec") or {}).get("nodeName", ""),
                    paths=paths,
                    pod=pod,
                    start_time=(pod.get("status") or {}).get("startTime") or rt.now_rfc3339(),
                )
            elif resource_version(pod) >= resource_version(state.pod):
                state.pod = pod
        return uid

    def mark_gone(self, uid: str) -> None:
        with self._lock:
            state = self._pods.get(uid)
            if state is not None:
                state.gone = True

    def known(self, node: str | None = None) -> list[str]:
        with self._lock:
            return [u for u, s in self._pods.items() if node is None or s.node == node]

    def find(self, namespace: str, name: str) -> PodState | None:
        with self._lock:
            for state in self._pods.values():
                if state.namespace == namespace and state.name == name and not state.gone:
                    return state
        return None

    # ----- queries and faults, for the control endpoint and the kubelet API -----

    def attempts(self, state: PodState, container: str) -> list[rt.Attempt]:
        indexes = self._runtime.attempt_indexes(state.paths, container)
        return [self._runtime.observe(state.paths, container, i) for i in indexes]

    def describe(self, state: PodState) -> JsonDict:
        containers = {}
        for name in container_names(state.pod):
            attempts = self.attempts(state, name)
            last = attempts[-1] if attempts else None
            containers[name] = {
                "attempt": last.index if last else None,
                "phase": last.phase if last else "waiting",
                "pid": last.pid if last else None,
                "exit_code": last.exit_code if last else None,
                "log_path": str(last.log_path) if last else None,
                "log_paths": [str(a.log_path) for a in attempts],
            }
        return {
            "namespace": state.namespace,
            "name": state.name,
            "uid": state.uid,
            "node": state.node,
            "pod_dir": str(state.paths.pod_dir),
            "log_dir": str(state.paths.log_dir),
            "containers": containers,
        }

    def describe_all(self) -> list[JsonDict]:
        with self._lock:
            states = [s for s in self._pods.values() if not s.gone]
        return [self.describe(s) for s in states]

    def signal_container(self, state: PodState, container: str | None, sig: int) -> list[int]:
        """Send `sig` to the main process of the pod's (or one) running container(s)."""
        signalled = []
        for name in container_names(state.pod):
            if container is not None and name != container:
                continue
            attempts = self.attempts(state, name)
            if attempts and self._runtime.signal_main(attempts[-1], sig):
                signalled.append(attempts[-1].pid or 0)
        self._log.info(
            "fault.signal", pod=state.key, container=container, signal=sig, pids=signalled
        )
        return signalled

    def stop_by_kubelet(
        self, state: PodState, *, reason: str, message: str, grace_seconds: float
    ) -> None:
        """End the pod as a kubelet does on its own (node-pressure eviction, deadline): stop
        the processes and leave the pod Failed with `reason`; the pod is not deleted."""
        state.paths.pod_dir.mkdir(parents=True, exist_ok=True)
        rt.write_json(
            state.paths.pod_dir / STOPPED_BY_KUBELET_FILE,
            {"reason": reason, "message": message, "grace": grace_seconds},
        )
        self._log.info("pod.stop_by_kubelet", pod=state.key, reason=reason, grace=grace_seconds)

    # ----- the sync step -----

    def sync(self, uid: str) -> None:
        with self._lock:
            state = self._pods.get(uid)
        if state is None or self._is_silenced(state.node):
            return
        if state.gone:
            self._finalize(state, reason="pod no longer exists in the API")
            return
        pod = state.pod
        deadline = (pod.get("spec") or {}).get("activeDeadlineSeconds")
        stopped = rt.read_json(state.paths.pod_dir / STOPPED_BY_KUBELET_FILE)
        overdue = deadline is not None and time.time() > parse_time(state.start_time) + deadline
        if overdue and stopped is None:
            message = "Pod was active on the node longer than the specified deadline"
            grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
            self.stop_by_kubelet(
                state, reason="DeadlineExceeded", message=message, grace_seconds=grace
            )
            stopped = rt.read_json(state.paths.pod_dir / STOPPED_BY_KUBELET_FILE)
        server_phase = (pod.get("status") or {}).get("phase")
        deleting = bool((pod.get("metadata") or {}).get("deletionTimestamp"))
        if deleting or stopped or server_phase in st.TERMINAL_PHASES:
            self._sync_terminating(state, stopped)
            return
        init_views, views, failed_for_good = self._sync_containers(state)
        if failed_for_good:  # an init container failed under restartPolicy Never
            self._stop_all(state)
        self._reporter.report(state, init_views, views, terminal=False)

    def _terminated(
        self, state: PodState, container: JsonDict, attempt: rt.Attempt
    ) -> st.Terminated:
        message = attempt.message
        if (
            not message
            and attempt.exit_code
            and container.get("terminationMessagePolicy") == "FallbackToLogsOnError"
        ):
            if attempt.directory not in state.termination_messages:
                state.termination_messages[attempt.directory] = log_tail(attempt.log_path)
            message = state.termination_messages[attempt.directory]
        return st.Terminated(
            exit_code=attempt.exit_code if attempt.exit_code is not None else 128,
            reason=attempt.reason or "Error",
            finished_at=attempt.finished_at or rt.now_rfc3339(),
            container_id=attempt.container_id,
            started_at=attempt.started_at,
            message=message,
        )

    def _restart_delay(self, restarts: int) -> float:
        base, cap = self._settings.restart_backoff_base, self._settings.restart_backoff_max
        return float(min(cap, base * (2 ** min(restarts, 20))))

    def _image_error(self, state: PodState, name: str, image: str) -> st.Waiting:
        first = name not in state.image_pull_reported
        state.image_pull_reported.add(name)
        message = (
            f'failed to pull image "{image}": the substrate kubelet fails images named '
            f"{BAD_IMAGE_PREFIX}* or *{BAD_IMAGE_TAG} on purpose"
        )
        if first:
            return st.Waiting("ErrImagePull", message)
        return st.Waiting("ImagePullBackOff", f'Back-off pulling image "{image}": {message}')

    def _view(
        self,
        state: PodState,
        container: JsonDict,
        *,
        may_start: bool,
        restart: Callable[[int], bool],
    ) -> st.ContainerView:
        """Observe one container, act on it (start, restart, OOM kill), return its view."""
        name = container.get("name", "")
        image = str(container.get("image") or "")
        attempts = self._runtime.attempt_indexes(state.paths, name)
        current = self._runtime.observe(state.paths, name, attempts[-1]) if attempts else None
        previous = (
            self._runtime.observe(state.paths, name, attempts[-2]) if len(attempts) > 1 else None
        )
        last = self._terminated(state, container, previous) if previous else None
        restarts = max(0, len(attempts) - 1)

        def view(state_: st.State, last_: st.Terminated | None = last) -> st.ContainerView:
            return st.ContainerView(name, image, state_, last_, restarts)

        if current is None:
            if bad_image(image):
                return view(self._image_error(state, name, image))
            if not may_start:
                return view(st.Waiting("PodInitializing"))
            if not self._starter.ensure_volumes(state):
                error = state.config_error
                return view(st.Waiting("ContainerCreating", error.message if error else ""))
            error = self._starter.launch(state, container, 0)
            if error is not None:
                return view(st.Waiting(error.reason, error.message))
            return view(st.Waiting("ContainerCreating"))

        if current.running:
            limit = ((container.get("resources") or {}).get("limits") or {}).get("memory")
            if limit is not None:
                rss = self._runtime.memory_rss(current)
                if rss > vol.parse_quantity(limit):
                    self._log.info(
                        "container.oom_kill", pod=state.key, container=name, rss=rss, limit=limit
                    )
                    self._runtime.kill_for_oom(current)
            return view(st.Running(current.started_at or rt.now_rfc3339(), current.container_id))
        if not current.exited:
            return view(st.Waiting("ContainerCreating"))

        ended = self._terminated(state, container, current)
        if not restart(ended.exit_code):
            return view(ended)
        delay = self._restart_delay(restarts)
        if time.time() < parse_time(current.finished_at) + delay:
            message = (
                f"back-off {delay:g}s restarting failed container={name} "
                f"pod={state.name}_{state.namespace}({state.uid})"
            )
            return view(st.Waiting("CrashLoopBackOff", message), ended)
        if not self._starter.ensure_volumes(state):  # e.g. after a kubelet restart
            return view(st.Waiting("ContainerCreating"), ended)
        error = self._starter.launch(state, container, current.index + 1)
        if error is not None:
            return view(st.Waiting(error.reason, error.message), ended)
        return st.ContainerView(name, image, st.Waiting("ContainerCreating"), ended, restarts + 1)

    def _sync_containers(
        self, state: PodState
    ) -> tuple[list[st.ContainerView], list[st.ContainerView], bool]:
        """One step for a live pod; returns init views, regular views, and failed-for-good."""
        init_specs, specs = container_specs(state.pod)
        policy = (state.pod.get("spec") or {}).get("restartPolicy") or "Always"

        def restart_regular(code: int) -> bool:
            return policy == "Always" or (policy == "OnFailure" and code != 0)

        def restart_init(code: int) -> bool:
            return code != 0 and policy != "Never"

        init_views: list[st.ContainerView] = []
        ready = True
        failed_for_good = False
        for container in init_specs:
            view = self._view(state, container, may_start=ready, restart=restart_init)
            init_views.append(view)
            done = isinstance(view.state, st.Terminated) and view.state.exit_code == 0
            if isinstance(view.state, st.Terminated) and not done:
                failed_for_good = True
            ready = ready and done
        views = [
            self._view(state, c, may_start=ready and not failed_for_good, restart=restart_regular)
            for c in specs
        ]
        return init_views, views, failed_for_good

    def _stop_all(self, state: PodState) -> None:
        for name in container_names(state.pod):
            for attempt in self.attempts(state, name):
                if not attempt.exited:
                    self._runtime.kill(attempt)

    def _grace(self, state: PodState, stopped: JsonDict | None) -> float:
        if stopped is not None:
            return float(stopped.get("grace") or 0)
        meta = state.pod.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            return float(meta.get("deletionGracePeriodSeconds") or 0)
        return 0.0

    def _sync_terminating(self, state: PodState, stopped: JsonDict | None) -> None:
        """Deleted, stopped by the kubelet, or finished: stop every process (SIGTERM, the grace
        period, SIGKILL), report the final status, and for a deleted pod delete it for good."""
        live = [
            attempt
            for name in container_names(state.pod)
            for attempt in self.attempts(state, name)[-1:]
            if not attempt.exited
        ]
        if live:
            self._terminate(state, live, self._grace(state, stopped))
            init_views, views = self._observe_only(state)
            self._reporter.report(state, init_views, views, terminal=False, terminating=True)
            return

        init_views, views = self._observe_only(state, stopped=True)
        deleting = bool((state.pod.get("metadata") or {}).get("deletionTimestamp"))
        reason = message = None
        extra: list[JsonDict] = []
        if stopped is not None:
            reason, message = str(stopped.get("reason")), str(stopped.get("message") or "")
            if reason == "Evicted":
                extra.append(
                    {
                        "type": "DisruptionTarget",
                        "status": "True",
                        "reason": "TerminationByKubelet",
                        "message": message,
                    }
                )
        self._reporter.report(
            state,
            init_views,
            views,
            terminal=True,
            terminating=deleting,
            reason=reason,
            message=message,
            extra_conditions=extra,
        )
        if deleting:
            try:
                self._api.delete(
                    f"/api/v1/namespaces/{state.namespace}/pods/{state.name}",
                    {
                        "apiVersion": "v1",
                        "kind": "DeleteOptions",
                        "gracePeriodSeconds": 0,
                        "preconditions": {"uid": state.uid},
                    },
                )
            except ApiError as exc:
                if not (exc.not_found or exc.conflict):
                    raise
            self._log.info("pod.deleted", pod=state.key)
            self._finalize(state, reason="deleted")

    def _terminate(self, state: PodState, live: list[rt.Attempt], grace: float) -> None:
        """SIGTERM once, SIGKILL at the deadline (moved earlier if the grace period shrinks,
        as `kubectl delete --grace-period=1` on a terminating pod does)."""
        marker = state.paths.pod_dir / TERMINATING_FILE
        term = rt.read_json(marker)
        now = time.time()
        if term is None:
            term = {"deadline": now + grace, "killed_at": None}
            for attempt in live:
                self._runtime.signal(attempt, signal.SIGTERM)
            self._log.info("pod.terminate", pod=state.key, grace=grace, containers=len(live))
        elif now + grace < term["deadline"]:
            term["deadline"] = now + grace
            self._log.info("pod.grace_shortened", pod=state.key, grace=grace)
        killed_at = term.get("killed_at")
        if now >= term["deadline"] and (killed_at is None or now > killed_at + KILL_RETRY_SECONDS):
            for attempt in live:
                self._runtime.kill(attempt)
            term["killed_at"] = now
            self._log.info("pod.kill", pod=state.key, containers=len(live))
        state.paths.pod_dir.mkdir(parents=True, exist_ok=True)
        rt.write_json(marker, term)

    def _observe_only(self, state: PodState, *, stopped: bool = False) -> Views:
        """Views without acting. With `stopped`, never-started containers show as terminated."""
        init_specs, specs = container_specs(state.pod)

        def observe(container: JsonDict) -> st.ContainerView:
            name = container.get("name", "")
            image = str(container.get("image") or "")
            attempts = self.attempts(state, name)
            restarts = max(0, len(attempts) - 1)
            last = self._terminated(state, container, attempts[-2]) if len(attempts) > 1 else None
            if not attempts:
                if not stopped:
                    return st.ContainerView(name, image, st.Waiting("ContainerCreating"))
                state.stopped_at = state.stopped_at or rt.now_rfc3339()
                never = st.Terminated(
                    exit_code=137,
                    reason="ContainerStatusUnknown",
                    finished_at=state.stopped_at,
                    container_id="",
                    message="The container could not be located when the pod was terminated",
                )
                return st.ContainerView(name, image, never)
            current = attempts[-1]
            if current.running:
                started = current.started_at or rt.now_rfc3339()
                running = st.Running(started, current.container_id)
                return st.ContainerView(name, image, running, last, restarts)
            if current.exited:
                ended = self._terminated(state, container, current)
                return st.ContainerView(name, image, ended, last, restarts)
            return st.ContainerView(name, image, st.Waiting("ContainerCreating"), last, restarts)

        return [observe(c) for c in init_specs], [observe(c) for c in specs]

    def _finalize(self, state: PodState, *, reason: str) -> None:
        """Kill what is left, remove the pod's state (its logs stay), forget the pod."""
        self._stop_all(state)
        with contextlib.suppress(OSError):
            shutil.rmtree(state.paths.pod_dir)
        with self._lock:
            self._pods.pop(state.uid, None)
        self._log.info("pod.forgotten", pod=state.key, uid=state.uid, reason=reason)

    def remove_leftovers(self, live_uids: set[str]) -> None:
        """At start: kill containers of pods that vanished while no kubelet was watching."""
        pods_dir = self._settings.root_dir / "pods"
        if not pods_dir.is_dir():
            return
        for pod_dir in pods_dir.iterdir():
            if pod_dir.name in live_uids:
                continue
            killed = rt.kill_pod_processes(self._settings.root_dir, only={pod_dir.name})
            with contextlib.suppress(OSError):
                shutil.rmtree(pod_dir)
            self._log.info("pod.leftover_removed", uid=pod_dir.name, killed=killed)
