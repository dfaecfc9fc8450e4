"""Small manifest builders for the substrate's tests (dicts, applied as JSON by kubectl).

Pods run `python -c <code>`: on the substrate that is the venv's interpreter (images are not
pulled); on kind the image `python:3.11-slim` provides it.
"""

from __future__ import annotations

from typing import Any

IMAGE = "python:3.11-slim"

Json = dict[str, Any]


def python_container(code: str, *, name: str = "main", **extra: Any) -> Json:
    return {"name": name, "image": IMAGE, "command": ["python", "-u", "-c", code], **extra}


def pod(name: str, *containers: Json, restart_policy: str = "Never", **spec: Any) -> Json:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"restartPolicy": restart_policy, "containers": list(containers), **spec},
    }


def deployment(name: str, container: Json, *, replicas: int = 1, **spec: Any) -> Json:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [container], "terminationGracePeriodSeconds": 5, **spec},
            },
        },
    }


def job(name: str, container: Json, *, backoff_limit: int = 0) -> Json:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": backoff_limit,
            "template": {
                "metadata": {"labels": {"job": name}},
                "spec": {"restartPolicy": "Never", "containers": [container]},
            },
        },
    }


#: A process that prints a line and then idles until killed.
SLEEPER = "import time; print('started', flush=True)\nwhile True: time.sleep(0.5)"


def condition(obj: Json | None, kind: str) -> str | None:
    """The status ("True"/"False"/"Unknown") of a condition on an object, or None."""
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return str(c.get("status"))
    return None


def container_state(pod_obj: Json | None, container: str | None = None) -> Json:
    """The `state` of a pod's (first or named) container status, or {}."""
    statuses = ((pod_obj or {}).get("status") or {}).get("containerStatuses") or []
    for status in statuses:
        if container is None or status.get("name") == container:
            return dict(status.get("state") or {})
    return {}


def container_status(pod_obj: Json | None, container: str | None = None) -> Json:
    statuses = ((pod_obj or {}).get("status") or {}).get("containerStatuses") or []
    for status in statuses:
        if container is None or status.get("name") == container:
            return dict(status)
    return {}
