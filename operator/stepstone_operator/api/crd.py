"""Turn the pydantic models into CustomResourceDefinitions.

Pydantic writes JSON Schema; the API server wants a *structural* OpenAPI v3 schema. This
module inlines ``$ref``s, turns ``X | None`` into ``nullable``, ``int | str`` into
``x-kubernetes-int-or-string``, drops what structural schemas forbid (``title``,
``additionalProperties: false``: unknown fields are refused by kubectl's strict field
validation instead), and adds the CEL rules that make fields immutable.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

from stepstone_operator.api._base import GROUP, VERSION
from stepstone_operator.api.workflow import RESERVED_ENV, WorkflowSpec, WorkflowStatus
from stepstone_operator.api.workflowevent import WorkflowEventSpec, WorkflowEventStatus
from stepstone_operator.api.workflowrun import NAME_MAX, WorkflowRunSpec, WorkflowRunStatus

Schema = dict[str, Any]


def _resolve(node: Any, defs: dict[str, Schema]) -> Any:
    if isinstance(node, list):
        return [_resolve(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = copy.deepcopy(defs[node["$ref"].split("/")[-1]])
        extra = {k: v for k, v in node.items() if k != "$ref"}
        merged = {**_resolve(target, defs), **_resolve(extra, defs)}
        return merged
    return {k: _resolve(v, defs) for k, v in node.items() if k != "$defs"}


def _structural(node: Any) -> Any:
    if isinstance(node, list):
        return [_structural(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    any_of = node.pop("anyOf", None)
    if any_of is not None:
        kinds = [a for a in any_of if a.get("type") != "null"]
        nullable = len(kinds) < len(any_of)
        if {a.get("type") for a in kinds} == {"integer", "string"}:
            node["x-kubernetes-int-or-string"] = True
        elif len(kinds) == 1:
            node = {**kinds[0], **node}
        else:
            raise ValueError(f"cannot express anyOf {any_of} in a structural schema")
        if nullable:
            node["nullable"] = True
    node.pop("title", None)
    if node.get("additionalProperties") is False:
        node.pop("additionalProperties")
    if node.get("additionalProperties") is True:
        # "any value" in JSON Schema; a structural schema says it this way
        node.pop("additionalProperties")
        node["x-kubernetes-preserve-unknown-fields"] = True
    if node.get("default", 0) is None:
        node.pop("default")
    if "enum" in node and "type" not in node:
        node["type"] = "string"
    return {k: _structural(v) for k, v in node.items()}


def schema_of(model: type[BaseModel]) -> Schema:
    raw = model.model_json_schema(by_alias=True, mode="serialization")
    defs = raw.get("$defs", {})
    resolved: Schema = _structural(_resolve(raw, defs))
    if model.__doc__:
        resolved.setdefault("description", " ".join(model.__doc__.split()))
    return resolved


def _rule(rule: str, message: str, **extra: str) -> dict[str, str]:
    return {"rule": rule, "message": message, **extra}


def _workflowrun_spec() -> Schema:
    spec = schema_of(WorkflowRunSpec)
    props = spec["properties"]
    props["workflowRef"]["x-kubernetes-validations"] = [
        _rule(
            "self == oldSelf",
            "spec.workflowRef is immutable; fork the run onto another "
            "Workflow instead (spec.forks or a new WorkflowRun with spec.forkFrom)",
        ),
    ]
    props["forkFrom"]["x-kubernetes-validations"] = [
        _rule("self == oldSelf", "spec.forkFrom is immutable"),
    ]
    props["retry"]["x-kubernetes-validations"] = [
        _rule("self >= oldSelf", "spec.retry can only be raised (raise it to resume a Failed run)"),
    ]
    props["forks"]["x-kubernetes-validations"] = [
        _rule(
            "self.all(f, self.exists_one(g, g.name == f.name))", "spec.forks names must be unique"
        ),
    ]
    # An object with unknown fields can be compared by CEL only when typed as an object.
    props["input"].pop("additionalProperties", None)
    props["input"]["x-kubernetes-validations"] = [
        _rule(
            "self == oldSelf",
            "spec.input is immutable; create a new WorkflowRun for other input (or fork this one)",
        ),
    ]
    spec["x-kubernetes-validations"] = [
        _rule(
            "has(self.input) == has(oldSelf.input)",
            "spec.input is immutable; create a new WorkflowRun for other input",
            fieldPath=".input",
        ),
        _rule(
            "has(self.forkFrom) == has(oldSelf.forkFrom)",
            "spec.forkFrom is immutable: it can be neither added nor removed",
            fieldPath=".forkFrom",
        ),
    ]
    return spec


def _root(spec: Schema, status: Schema, description: str) -> Schema:
    return {
        "type": "object",
        "description": description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }


def _crd(
    *,
    kind: str,
    plural: str,
    short_names: list[str],
    schema: Schema,
    columns: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short_names,
                "categories": ["stepstone"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


def _col(name: str, path: str, kind: str = "string", **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": kind, "jsonPath": path, **extra}


def _workflow_spec() -> Schema:
    spec = schema_of(WorkflowSpec)
    reserved = ", ".join(f"'{name}'" for name in RESERVED_ENV)
    spec["properties"]["env"]["x-kubernetes-validations"] = [
        _rule(
            f"self.all(e, !(e.name in [{reserved}]))",
            f"spec.env may not set {', '.join(RESERVED_ENV)}: the operator sets them in "
            "every runner pod (the database comes from spec.database.secretRef)",
        ),
    ]
    return spec


def workflow_crd() -> dict[str, Any]:
    schema = _root(
        _workflow_spec(),
        schema_of(WorkflowStatus),
        "A Workflow names the image and the @workflow entrypoint that WorkflowRuns execute, "
        "and how their runner pods are run and recovered.",
    )
    return _crd(
        kind="Workflow",
        plural="workflows",
        short_names=["sswf"],
        schema=schema,
        columns=[
            _col("Image", ".spec.image"),
            _col("Entrypoint", ".spec.entrypoint"),
            _col("Age", ".metadata.creationTimestamp", "date"),
        ],
    )


def workflowrun_crd() -> dict[str, Any]:
    schema = _root(
        _workflowrun_spec(),
        schema_of(WorkflowRunStatus),
        "A WorkflowRun is one durable execution of a Workflow. Steer it through its spec: "
        "state (Running, Cancelled, Terminated), retry, forks.",
    )
    schema["x-kubernetes-validations"] = [
        _rule(
            f"self.metadata.name.size() <= {NAME_MAX}",
            f"WorkflowRun names are at most {NAME_MAX} characters (its pods are named "
            "<name>-<attempt>)",
        ),
        _rule(
            "!has(self.spec.forkFrom) || self.spec.forkFrom.run != self.metadata.name",
            "spec.forkFrom.run names this WorkflowRun itself; fork another run",
        ),
    ]
    return _crd(
        kind="WorkflowRun",
        plural="workflowruns",
        short_names=["wfrun", "sswfr"],
        schema=schema,
        columns=[
            _col("Phase", ".status.phase"),
            _col("Step", ".status.currentStep.number", "integer"),
            _col("Step Name", ".status.currentStep.name", priority=1),
            _col("Done", ".status.completedSteps", "integer"),
            _col("Attempt", ".status.attempt", "integer"),
            _col("Recoveries", ".status.recoveries", "integer"),
            _col("Workflow", ".spec.workflowRef.name", priority=1),
            _col("Age", ".metadata.creationTimestamp", "date"),
        ],
    )


def workflowevent_crd() -> dict[str, Any]:
    spec = schema_of(WorkflowEventSpec)
    spec["properties"]["payload"].pop("additionalProperties", None)
    spec["x-kubernetes-validations"] = [
        _rule("self == oldSelf", "a WorkflowEvent's spec is immutable; create another event"),
    ]
    schema = _root(
        spec,
        schema_of(WorkflowEventStatus),
        "A WorkflowEvent delivers an event to a WorkflowRun's wait_for_event, exactly once.",
    )
    return _crd(
        kind="WorkflowEvent",
        plural="workflowevents",
        short_names=["wfevent"],
        schema=schema,
        columns=[
            _col("Run", ".spec.runRef.name"),
            _col("Event", ".spec.event"),
            _col("Delivered", ".status.delivered", "boolean"),
            _col("Step", ".status.consumedByStep", "integer"),
            _col("Age", ".metadata.creationTimestamp", "date"),
        ],
    )


def all_crds() -> list[dict[str, Any]]:
    return [workflow_crd(), workflowrun_crd(), workflowevent_crd()]
