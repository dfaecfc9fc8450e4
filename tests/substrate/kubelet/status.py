"""Pod status as a kubelet reports it: a pure function of what the kubelet observed.

Why pure: phases, container states and conditions have many cases (restarts, back-off,
init containers, deletion, eviction); keeping them free of I/O makes them readable against
the real kubelet's `getPhase` and `generateAPIPodStatus`, and comparable without a cluster.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

JsonDict = dict[str, Any]

#: Conditions this kubelet owns; any other condition on the pod is left as it is.
OWNED_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready")
TERMINAL_PHASES = ("Succeeded", "Failed")


@dataclass(frozen=True)
class Running:
    started_at: str
    container_id: str


@dataclass(frozen=True)
class Waiting:
    reason: str
    message: str = ""


@dataclass(frozen=True)
class Terminated:
    exit_code: int
    reason: str
    finished_at: str
    container_id: str
    started_at: str | None = None
    message: str | None = None

    def to_api(self) -> JsonDict:
        state: JsonDict = {
            "exitCode": self.exit_code,
            "reason": self.reason,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "containerID": self.container_id,
        }
        if self.message:
            state["message"] = self.message
        return state


State = Running | Waiting | Terminated


@dataclass(frozen=True)
class ContainerView:
    """One container as the kubelet sees it now."""

    name: str
    image: str
    state: State
    last_state: Terminated | None = None
    restart_count: int = 0

    @property
    def ready(self) -> bool:
        return isinstance(self.state, Running)

    def to_api(self, *, terminating: bool) -> JsonDict:
        status: JsonDict = {
            "name": self.name,
            "image": self.image,
            "imageID": "",
            "ready": self.ready and not terminating,
            "restartCount": self.restart_count,
            "started": isinstance(self.state, Running),
            "lastState": {"terminated": self.last_state.to_api()} if self.last_state else {},
        }
        if isinstance(self.state, Running):
            status["state"] = {"running": {"startedAt": self.state.started_at}}
            status["containerID"] = self.state.container_id
        elif isinstance(self.state, Terminated):
            status["state"] = {"terminated": self.state.to_api()}
            status["containerID"] = self.state.container_id
        else:
            waiting = {"reason": self.state.reason}
            if self.state.message:
                waiting["message"] = self.state.message
            status["state"] = {"waiting": waiting}
        if isinstance(self.state, Running | Terminated) or self.last_state:
            status["imageID"] = f"substrate-image://{self.image}"
        return status


def _succeeded(view: ContainerView) -> bool:
    return isinstance(view.state, Terminated) and view.state.exit_code == 0


def pod_phase(
    restart_policy: str,
    init: Sequence[ContainerView],
    regular: Sequence[ContainerView],
    *,
    terminal: bool,
) -> str:
    """The pod phase, as the kubelet's getPhase computes it.

    `terminal`: the pod is finished (deleted and stopped, evicted, or failed for good), so the
    answer is Succeeded or Failed, never Running again.
    """
    if terminal:
        return "Succeeded" if regular and all(_succeeded(v) for v in regular) else "Failed"
    for view in init:
        if _succeeded(view):
            continue
        failed = isinstance(view.state, Terminated) and view.state.exit_code != 0
        if failed and restart_policy == "Never":
            return "Failed"
        return "Pending"
    running = waiting = stopped = succeeded = 0
    for view in regular:
        if isinstance(view.state, Running):
            running += 1
        elif isinstance(view.state, Terminated):
            stopped += 1
            succeeded += int(view.state.exit_code == 0)
        elif view.last_state is not None:
            stopped += 1  # waiting to restart after an exit
        else:
            waiting += 1
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if stopped:
        if restart_policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        if restart_policy == "Never":
            return "Failed"
        return "Running"
    return "Pending"


def _condition(kind: str, ok: bool, reason: str = "", message: str = "") -> JsonDict:
    condition: JsonDict = {"type": kind, "status": "True" if ok else "False"}
    if reason:
        condition["reason"] = reason
    if message:
        condition["message"] = message
    return condition


def _merge_conditions(
    existing: Sequence[JsonDict], owned: Sequence[JsonDict], now: str, generation: int | None
) -> list[JsonDict]:
    """Owned conditions replace ours; lastTransitionTime only moves when status changes."""
    by_type = {c.get("type"): c for c in existing}
    merged = [c for c in existing if c.get("type") not in OWNED_CONDITIONS]
    for condition in owned:
        previous = by_type.get(condition["type"])
        unchanged = previous is not None and previous.get("status") == condition["status"]
        transition = previous.get("lastTransitionTime") if unchanged and previous else now
        entry = {**condition, "lastProbeTime": None, "lastTransitionTime": transition}
        if generation is not None:
            entry["observedGeneration"] = generation
        merged.append(entry)
    return merged


def pod_status(
    pod: JsonDict,
    init: Sequence[ContainerView],
    regular: Sequence[ContainerView],
    *,
    now: str,
    start_time: str,
    host_ip: str = "127.0.0.1",
    sandbox_ready: bool = True,
    terminal: bool = False,
    terminating: bool = False,
    reason: str | None = None,
    message: str | None = None,
) -> JsonDict:
    """The status fields this kubelet owns, ready for a merge patch of pods/status."""
    spec = pod.get("spec") or {}
    existing = (pod.get("status") or {}).get("conditions") or []
    restart_policy = spec.get("restartPolicy") or "Always"
    phase = pod_phase(restart_policy, init, regular, terminal=terminal)
    finished = phase in TERMINAL_PHASES

    init_done = all(_succeeded(v) for v in init)
    not_ready = [v.name for v in regular if not v.ready]
    containers_ready = not not_ready and not terminating and not finished
    gates = [g.get("conditionType") for g in spec.get("readinessGates") or []]
    by_type = {c.get("type"): c for c in existing}
    gates_ok = all(by_type.get(g, {}).get("status") == "True" for g in gates)

    if finished:
        not_ready_reason = "PodCompleted"
        not_ready_message = ""
    else:
        not_ready_reason = "ContainersNotReady"
        not_ready_message = f"containers with unready status: [{' '.join(not_ready)}]"
    owned = [
        _condition("PodReadyToStartContainers", sandbox_ready and not finished),
        _condition(
            "Initialized",
            init_done or finished,
            "" if init_done or finished else "ContainersNotInitialized",
            ""
            if init_done or finished
            else "containers with incomplete status: ["
            + " ".join(v.name for v in init if not _succeeded(v))
            + "]",
        ),
        _condition(
            "ContainersReady",
            containers_ready,
            "" if containers_ready else not_ready_reason,
            "" if containers_ready else not_ready_message,
        ),
        _condition(
            "Ready",
            containers_ready and gates_ok,
            ""
            if containers_ready and gates_ok
            else (not_ready_reason if not containers_ready else "ReadinessGatesNotReady"),
            ""
            if containers_ready and gates_ok
            else (not_ready_message if not containers_ready else "readiness gates not ready"),
        ),
    ]
    status: JsonDict = {
        "phase": phase,
        "conditions": _merge_conditions(
            existing, owned, now, (pod.get("metadata") or {}).get("generation")
        ),
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": host_ip,
        "podIPs": [{"ip": host_ip}],
        "startTime": start_time,
        "containerStatuses": [v.to_api(terminating=terminating) for v in regular],
        "reason": reason,
        "message": message,
    }
    if init:
        status["initContainerStatuses"] = [v.to_api(terminating=terminating) for v in init]
    generation = (pod.get("metadata") or {}).get("generation")
    if generation is not None:
        status["observedGeneration"] = generation
    return status


def _comparable(status: JsonDict) -> JsonDict:
    conditions = sorted(
        (
            (c.get("type"), c.get("status"), c.get("reason") or "", c.get("message") or "")
            for c in status.get("conditions") or []
        ),
        key=lambda c: str(c[0]),
    )
    return {
        "phase": status.get("phase"),
        "conditions": conditions,
        "hostIP": status.get("hostIP"),
        "podIP": status.get("podIP"),
        "startTime": status.get("startTime"),
        "containerStatuses": status.get("containerStatuses") or [],
        "initContainerStatuses": status.get("initContainerStatuses") or [],
        "reason": status.get("reason") or None,
        "message": status.get("message") or None,
    }


def status_differs(current: JsonDict, desired: JsonDict) -> bool:
    """Whether the pod's current status differs from `desired` in anything this kubelet sets."""
    return _comparable(current) != _comparable(desired)
