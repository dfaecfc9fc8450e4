"""Why a runner pod is lost, or None while it is healthy: a pure function of what the
watches and the database show, tested with tables of cases and a fixed clock.

Reasons: PodDeleted, Evicted, OOMKilled, NodeLost, Unschedulable, ImagePullError,
Unresponsive, RunnerCrashed, RunnerError. Workflow code raising is never pod loss: the runner
records it and exits 10, and the run is Failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from stepstone.contract import ExitCode
from stepstone_operator.api import Recovery
from stepstone_operator.views import NodeView, PodView

_IMAGE_ERRORS = ("ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName")
_CONFIG_ERRORS = ("CreateContainerConfigError", "CreateContainerError", "RunContainerError")
_DISRUPTIONS = {
    "EvictionByEvictionAPI": "Evicted",
    "PreemptionByScheduler": "Evicted",
    "TerminationByKubelet": "Evicted",
    "DeletionByTaintManager": "NodeLost",
    "DeletionByPodGC": "NodeLost",
}


@dataclass(frozen=True)
class Loss:
    reason: str
    message: str
    pod_name: str | None
    exit_code: int | None = None


def _age(now: datetime, since: datetime | None) -> float:
    return (now - since).total_seconds() if since else 0.0


def classify(
    pod: PodView,
    *,
    node: NodeView | None,
    last_sign_of_life: datetime | None,
    now: datetime,
    recovery: Recovery,
) -> Loss | None:
    """Is this pod (the run's current attempt) lost, and why?"""
    if pod.deleting:
        reason = _DISRUPTIONS.get(pod.disruption or "")
        if reason is None:
            reason = "NodeLost" if node is not None and node.ready is False else "PodDeleted"
        return Loss(reason, _deleting_message(pod, reason), pod.name)
    term = pod.terminated
    if term is not None or pod.phase in ("Failed", "Succeeded"):
        return _ended(pod, term.exit_code if term else None, term)
    if pod.phase == "Pending" or pod.started_at is None:
        return _not_started(pod, now, recovery)
    quiet = _age(now, last_sign_of_life or pod.started_at)
    if quiet > recovery.heartbeat_timeout_seconds:
        if node is not None and node.ready is False:
            return Loss(
                "NodeLost",
                f"node {node.name} is not ready and the runner has been silent for {quiet:.0f} s",
                pod.name,
            )
        return Loss(
            "Unresponsive",
            f"runner heartbeat silent for {quiet:.0f} s (limit "
            f"{recovery.heartbeat_timeout_seconds} s)",
            pod.name,
        )
    return None


def _deleting_message(pod: PodView, reason: str) -> str:
    text = {
        "Evicted": "pod evicted",
        "NodeLost": f"node {pod.node} lost; pod removed",
        "PodDeleted": "pod deleted",
    }[reason]
    if pod.disruption:
        text += f" ({pod.disruption})"
    return text


def _ended(pod: PodView, code: int | None, term: object) -> Loss:
    reason = getattr(term, "reason", None)
    message = getattr(term, "message", None) or ""
    if reason == "OOMKilled":
        return Loss("OOMKilled", "runner exceeded its memory limit", pod.name, code)
    if code == ExitCode.CONFIG_ERROR:
        return Loss(
            "RunnerError",
            message or "runner could not start (exit 15): see the log",
            pod.name,
            code,
        )
    if code == ExitCode.INTERRUPTED:
        return Loss(
            "PodDeleted", "runner stopped by SIGTERM without a cancel request", pod.name, code
        )
    known = {c.value: c.name for c in ExitCode}
    what = f"exit {code}" + (f" ({known[code]})" if code in known else "")
    if code is not None and code >= 128:
        what += f", killed by signal {code - 128}"
    return Loss(
        "RunnerCrashed", f"runner ended with {what} but the run is still active", pod.name, code
    )


def _not_started(pod: PodView, now: datetime, recovery: Recovery) -> Loss | None:
    waited = _age(now, pod.created_at)
    limit = recovery.start_timeout_seconds
    if pod.waiting_reason == "InvalidImageName":
        return Loss("ImagePullError", pod.waiting_message or "invalid image name", pod.name)
    if waited <= limit:
        return None
    if pod.waiting_reason in _IMAGE_ERRORS:
        return Loss(
            "ImagePullError",
            f"{pod.waiting_reason}: {pod.waiting_message or ''} (for {waited:.0f} s)".strip(),
            pod.name,
        )
    if pod.waiting_reason in _CONFIG_ERRORS:
        return Loss("RunnerError", f"{pod.waiting_reason}: {pod.waiting_message or ''}", pod.name)
    if pod.unschedulable:
        return Loss("Unschedulable", f"{pod.unschedulable} (for {waited:.0f} s)", pod.name)
    return Loss(
        "Unschedulable",
        f"pod not running after {waited:.0f} s ({pod.waiting_reason or pod.phase})",
        pod.name,
    )
