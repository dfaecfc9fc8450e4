"""Every Kubernetes API call the operator makes lives in this module.

The official synchronous client, called from the worker threads; kopf only watches. Errors
that mean "already so" (404 on delete, 409 on create) are success here, so callers stay
idempotent without special cases.
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from stepstone.contract import CONTAINER_NAME, LABEL_RUN_UID
from stepstone_operator.api import GROUP, VERSION

log = logging.getLogger("stepstone.operator")

Body = dict[str, Any]


class KubeError(Exception):
    """The API server refused a request; ``status`` is its HTTP code."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _error(exc: ApiException) -> KubeError:
    """The API server's own message (its Status object), not the raw response."""
    message = str(exc.body or exc.reason)
    with contextlib.suppress(TypeError, ValueError, KeyError):
        message = str(json.loads(message)["message"])
    return KubeError(int(exc.status or 0), message)


class Kube:
    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)

    @classmethod
    def connect(cls, *, pool: int = 8) -> Kube:
        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()
        configuration = client.Configuration.get_default_copy()
        configuration.connection_pool_maxsize = pool
        return cls(client.ApiClient(configuration))

    def close(self) -> None:
        self.api.close()

    def _plain(self, obj: Any) -> Body:
        result: Body = self.api.sanitize_for_serialization(obj)
        return result

    # -- pods -----------------------------------------------------------------------------
    def create_pod(self, namespace: str, manifest: Body) -> Body:
        try:
            body: Any = manifest
            return self._plain(self.core.create_namespaced_pod(namespace, body))
        except ApiException as exc:
            if exc.status == 409:
                return self.get_pod(namespace, manifest["metadata"]["name"]) or manifest
            raise _error(exc) from exc

    def get_pod(self, namespace: str, name: str) -> Body | None:
        try:
            return self._plain(self.core.read_namespaced_pod(name, namespace))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise _error(exc) from exc

    def run_pods(self, namespace: str, run_uid: str) -> list[Body]:
        try:
            pods = self.core.list_namespaced_pod(
                namespace, label_selector=f"{LABEL_RUN_UID}={run_uid}"
            )
        except ApiException as exc:
            raise _error(exc) from exc
        return [self._plain(p) for p in pods.items]

    def delete_pod(self, namespace: str, name: str, grace_seconds: int | None) -> None:
        body = client.V1DeleteOptions(grace_period_seconds=grace_seconds)
        try:
            self.core.delete_namespaced_pod(name, namespace, body=body)
        except ApiException as exc:
            if exc.status != 404:
                raise _error(exc) from exc

    def log_tail(self, namespace: str, name: str, lines: int) -> str | None:
        """The end of a pod's log, or None when it cannot be read (kept best-effort)."""
        try:
            text: str = self.core.read_namespaced_pod_log(
                name,
                namespace,
                container=CONTAINER_NAME,
                tail_lines=lines,
                _request_timeout=5,
            )
        except Exception as exc:
            log.debug("no log tail", extra={"pod": name, "error": str(exc)})
            return None
        return text[-4000:] if text else None

    # -- workflow runs --------------------------------------------------------------------
    def patch_run_status(self, namespace: str, name: str, patch: Body) -> None:
        try:
            self.custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, "workflowruns", name, {"status": patch}
            )
        except ApiException as exc:
            if exc.status != 404:
                raise _error(exc) from exc

    def patch_run_spec(self, namespace: str, name: str, spec: Body) -> None:
        try:
            self.custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, "workflowruns", name, {"spec": spec}
            )
        except ApiException as exc:
            if exc.status != 404:
                raise _error(exc) from exc

    def patch_event(self, namespace: str, name: str, patch: Body, *, status: bool) -> None:
        """Patch a WorkflowEvent's status, or (``status=False``) its metadata."""
        call = (
            self.custom.patch_namespaced_custom_object_status
            if status
            else self.custom.patch_namespaced_custom_object
        )
        try:
            call(GROUP, VERSION, namespace, "workflowevents", name, patch)
        except ApiException as exc:
            if exc.status != 404:
                raise _error(exc) from exc

    def create_run(self, namespace: str, body: Body) -> Body | None:
        try:
            created: Any = self.custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, "workflowruns", body
            )
            return dict(created)
        except ApiException as exc:
            if exc.status == 409:
                return None
            raise _error(exc) from exc

    def delete_run(self, namespace: str, name: str) -> None:
        try:
            self.custom.delete_namespaced_custom_object(
                GROUP, VERSION, namespace, "workflowruns", name
            )
        except ApiException as exc:
            if exc.status != 404:
                raise _error(exc) from exc

    # -- events ---------------------------------------------------------------------------
    def post_event(
        self, involved: Body, *, reason: str, message: str, warning: bool = False
    ) -> None:
        meta = involved["metadata"]
        now = datetime.now(UTC)
        event = client.CoreV1Event(
            metadata=client.V1ObjectMeta(
                name=f"{meta['name']}.{uuid.uuid4().hex[:12]}", namespace=meta["namespace"]
            ),
            involved_object=client.V1ObjectReference(
                api_version=involved.get("apiVersion"),
                kind=involved.get("kind"),
                name=meta["name"],
                namespace=meta["namespace"],
                uid=meta.get("uid"),
            ),
            reason=reason,
            message=message[:1024],
            type="Warning" if warning else "Normal",
            first_timestamp=now,
            last_timestamp=now,
            count=1,
            source=client.V1EventSource(component="stepstone-operator"),
            reporting_component="stepstone.io/operator",
            reporting_instance="stepstone-operator",
        )
        try:
            self.core.create_namespaced_event(meta["namespace"], event)
        except ApiException as exc:
            log.warning("could not post an event", extra={"reason": reason, "error": exc.reason})
