"""The runner pod of one attempt: a pure function of the run, the attempt and the pinned
Workflow spec. Names are deterministic (``<run>-<attempt>``) so a repeated create is harmless.

Security (design.md): non-root, read-only root filesystem, no privilege escalation, every
capability dropped, seccomp RuntimeDefault, and no service-account token.
"""

from __future__ import annotations

import hashlib
from typing import Any

from stepstone import contract
from stepstone_operator.api import API_VERSION, WorkflowSpec

RUNNER_UID = 10001


def pod_name(run: str, attempt: int) -> str:
    return f"{run}-{attempt}"


def label_value(value: str) -> str:
    """A valid label value (63 characters, alphanumeric at both ends) naming ``value``: long
    names are cut and given a short hash, so two long names stay apart."""
    if len(value) <= 63:
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()[:8]
    return f"{value[:54].rstrip('-_.')}-{digest}"


def labels(run: str, run_uid: str, attempt: int, workflow: str) -> dict[str, str]:
    return {
        contract.LABEL_RUN: run,
        contract.LABEL_RUN_UID: run_uid,
        contract.LABEL_ATTEMPT: str(attempt),
        contract.LABEL_WORKFLOW: label_value(workflow),
        contract.LABEL_COMPONENT: contract.COMPONENT_RUNNER,
        contract.LABEL_MANAGED_BY: contract.MANAGED_BY,
    }


def runner_pod(
    *,
    namespace: str,
    run: str,
    run_uid: str,
    run_id: str,
    attempt: int,
    workflow: str,
    spec: WorkflowSpec,
    heartbeat_seconds: float,
    log_format: str,
    service_account: str | None = None,
) -> dict[str, Any]:
    # the Workflow's env first: the operator's own values come after and win (the CRD also
    # refuses the reserved names)
    env: list[dict[str, Any]] = [e.wire() for e in spec.env]
    env += [
        {"name": contract.ENV_RUN_ID, "value": run_id},
        {"name": contract.ENV_ATTEMPT, "value": str(attempt)},
        {
            "name": contract.ENV_POD_NAME,
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
        },
        {
            "name": contract.ENV_DATABASE_URL,
            "valueFrom": {
                "secretKeyRef": {
                    "name": spec.database.secret_ref.name,
                    "key": spec.database.secret_ref.key,
                }
            },
        },
        {"name": contract.ENV_HEARTBEAT_SECONDS, "value": f"{heartbeat_seconds:g}"},
        {"name": contract.ENV_SUSPEND_AFTER_SECONDS, "value": str(spec.suspend_after_seconds)},
        {"name": contract.ENV_LOG_FORMAT, "value": log_format},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]
    container: dict[str, Any] = {
        "name": contract.CONTAINER_NAME,
        "image": spec.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-m", "stepstone", "runner"],
        "env": env,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    if spec.resources is not None:
        container["resources"] = spec.resources.wire()
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": spec.cancel_grace_period_seconds,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUNNER_UID,
            "runAsGroup": RUNNER_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}],
    }
    if spec.service_account_name or service_account:
        pod_spec["serviceAccountName"] = spec.service_account_name or service_account
    if spec.node_selector:
        pod_spec["nodeSelector"] = dict(spec.node_selector)
    if spec.tolerations:
        pod_spec["tolerations"] = list(spec.tolerations)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name(run, attempt),
            "namespace": namespace,
            "labels": labels(run, run_uid, attempt, workflow),
            "annotations": {"stepstone.io/run-id": run_id},
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "WorkflowRun",
                    "name": run,
                    "uid": run_uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": pod_spec,
    }
