"""kopf's part: watch WorkflowRuns, Workflows, runner pods and nodes, and hand every event to
the controller. Handlers are a few lines each on purpose; no business logic lives here, and no
handler writes annotations or finalizers (only low-level event handlers are used).
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from stepstone import contract
from stepstone.store import Store
from stepstone_operator.api import GROUP, VERSION
from stepstone_operator.config import OperatorConfig
from stepstone_operator.controller import Controller
from stepstone_operator.kube import Kube
from stepstone_operator.metrics import Metrics

log = logging.getLogger("stepstone.operator")

RUNNER_LABELS = {
    contract.LABEL_COMPONENT: contract.COMPONENT_RUNNER,
    contract.LABEL_MANAGED_BY: contract.MANAGED_BY,
}


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> dict[str, Any]:
    """Register the handlers; returns a holder whose ``controller`` exists once started."""
    holder: dict[str, Any] = {}

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # in-cluster service account, else $KUBECONFIG: as the kubernetes client resolves them
        return kopf.login_via_client(**kwargs)

    @kopf.on.startup(registry=registry)
    def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.peering.standalone = True
        # Namespaced RBAC cannot list namespaces or CRDs cluster-wide: without this, kopf
        # retries those scans for about a minute before it serves anything.
        settings.scanning.disabled = bool(config.namespaces)
        settings.posting.level = logging.WARNING
        settings.watching.server_timeout = 300
        settings.networking.request_timeout = 60
        store = Store.connect(
            config.database_url, app="stepstone-operator", pool_size=config.workers + 2
        )
        if config.migrate:
            applied = store.migrate()
            log.info("schema migrated", extra={"applied": applied})
        store.verify()
        metrics = Metrics()
        if config.metrics_port:
            metrics.serve(config.metrics_port)
        controller = Controller(
            config=config, store=store, kube=Kube.connect(pool=config.workers + 2), metrics=metrics
        )
        controller.start()
        holder["controller"] = controller

    @kopf.on.cleanup(registry=registry)
    def cleanup(**_: Any) -> None:
        controller: Controller | None = holder.get("controller")
        if controller is not None:
            controller.stop()
            controller.store.close()
            controller.kube.close()

    @kopf.on.probe(id="controller", registry=registry)
    def probe(**_: Any) -> bool:
        controller: Controller | None = holder.get("controller")
        if controller is None or not controller.healthy():
            raise kopf.PermanentError("controller threads are not running")
        return True

    @kopf.on.event(GROUP, VERSION, "workflowruns", registry=registry)
    def on_run(**kwargs: Any) -> None:
        holder["controller"].on_run(kwargs["type"], dict(kwargs["body"]))

    @kopf.on.event(GROUP, VERSION, "workflows", registry=registry)
    def on_workflow(**kwargs: Any) -> None:
        holder["controller"].on_workflow(kwargs["type"], dict(kwargs["body"]))

    @kopf.on.event(GROUP, VERSION, "workflowevents", registry=registry)
    def on_workflow_event(**kwargs: Any) -> None:
        holder["controller"].on_event_object(kwargs["type"], dict(kwargs["body"]))

    @kopf.on.event("", "v1", "pods", labels=RUNNER_LABELS, registry=registry)
    def on_pod(**kwargs: Any) -> None:
        holder["controller"].on_pod(kwargs["type"], dict(kwargs["body"]))

    if config.watch_nodes:

        @kopf.on.event("", "v1", "nodes", registry=registry)
        def on_node(**kwargs: Any) -> None:
            holder["controller"].on_node(kwargs["type"], dict(kwargs["body"]))

    return holder
