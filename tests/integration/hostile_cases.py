"""The table behind tests/integration/test_hostile_inputs.py: malformed and malicious manifests
and patches, each with what a user must be told.

Three kinds of rows, one test function each:

- ``Rejected``: a manifest the API server (or kubectl, before it) refuses; the error names what
  to fix and nothing is created.
- ``RefusedChange``: a patch of an existing object the API server refuses (CEL transition
  rules, enums, bounds); the object keeps its spec and generation.
- ``Outcome``: a manifest the API server accepts, whose problem only shows when it runs; the
  operator must surface it as a condition (or run it correctly, for malicious-looking input),
  and keep it that way.

A row with ``gap`` set is a product gap: its test is ``xfail(strict=True)`` with that reason,
so the suite passes, the gap stays visible, and fixing it makes the test fail until the mark
is removed. ``flaps`` marks the same for an outcome that is reached but does not hold.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from tests.integration.conftest import run_manifest, workflow_manifest

Json = dict[str, Any]
API_VERSION = "stepstone.io/v1alpha1"

ANY: Any = object()
"""No expectation about status.result."""

# -- names shared by the table and the test module ------------------------------------------

ORDERS = "orders"
"""A valid Workflow (five counted steps) the baseline runs and many rows use."""
ECHO = "echo"
"""A valid Workflow returning its ``value`` input: malicious-looking input must round-trip."""
STEADY = "steady"
"""A valid run that finished before the hostile batch: patches are aimed at it, none may land."""
STEADY_FORK = "steady-fork"
"""A valid fork of STEADY from step 3, finished before the batch (its forkFrom is attacked)."""
FINISHED = "finished"
"""A valid finished run that verbs which do not apply to it are sent to."""
GHOST_RUN = "ghost-run"
"""No WorkflowRun has this name."""
MISSING_SECRET = "missing-db-secret"
BAD_IMAGE = "invalid.example/hostile/no-such-image:1"
LONG_WORKFLOW = "w" * 62 + "-v2"
"""A valid Workflow name (65 characters) whose first 63 end with '-'."""

SHELL = "$(touch /tmp/pwned); `id`; rm -rf / && echo 'x' \"y\" | sh; ${IFS}cat</etc/passwd"
UNICODE = "ünïcödé 日本語 🚀 \u202egnp.exe \u200b zero-width, RTL override, astral plane"
NESTED_OK = 100
NESTED_TOO_DEEP_FOR_PYTHON = 500
NESTED_TOO_DEEP_FOR_KUBECTL = 10_001


def nested_json(depth: int) -> str:
    """``{"n": {"n": ... {}}}`` as JSON text (Python's json module recurses; this does not)."""
    return '{"n":' * depth + "{}" + "}" * depth


def nested(depth: int) -> Any:
    value: Any = {}
    for _ in range(depth):
        value = {"n": value}
    return value


# -- manifests --------------------------------------------------------------------------------


def run(name: str, **spec: Any) -> Json:
    """A WorkflowRun of ORDERS with these spec fields (None removes a field)."""
    body: Json = {"workflowRef": {"name": ORDERS}, "input": {"order_id": 1}, **spec}
    return {
        "apiVersion": API_VERSION,
        "kind": "WorkflowRun",
        "metadata": {"name": name},
        "spec": {k: v for k, v in body.items() if v is not None},
    }


def workflow(name: str, **spec: Any) -> Json:
    """A minimal Workflow with these spec fields (None removes a field)."""
    body: Json = {"image": "stepstone:dev", "entrypoint": "tests.workflows.misc:echo", **spec}
    return {
        "apiVersion": API_VERSION,
        "kind": "Workflow",
        "metadata": {"name": name},
        "spec": {k: v for k, v in body.items() if v is not None},
    }


def event(name: str, **spec: Any) -> Json:
    """A WorkflowEvent for GHOST_RUN with these spec fields (None removes a field)."""
    body: Json = {"runRef": {"name": GHOST_RUN}, "event": "approval", "payload": {}, **spec}
    return {
        "apiVersion": API_VERSION,
        "kind": "WorkflowEvent",
        "metadata": {"name": name},
        "spec": {k: v for k, v in body.items() if v is not None},
    }


def hostile_workflows(db_url: str) -> list[Json]:
    """Workflows the API server accepts but that cannot run as written."""
    fail_fast = {"maxAttempts": 0, "startTimeoutSeconds": 5}
    return [
        workflow_manifest(
            "strict",
            "tests.workflows.orders:pipeline",
            db_url,
            inputSchema={
                "type": "object",
                "required": ["order_id"],
                "properties": {"order_id": {"type": "integer", "minimum": 1}},
            },
        ),
        workflow_manifest(
            "broken-schema", "tests.workflows.orders:pipeline", db_url, inputSchema={"type": 12}
        ),
        workflow_manifest(
            "no-image", "tests.workflows.misc:echo", db_url, image=BAD_IMAGE, recovery=fail_fast
        ),
        workflow_manifest("no-module", "tests.workflows.does_not_exist:flow", db_url),
        workflow_manifest("no-function", "tests.workflows.misc:no_such_function", db_url),
        workflow_manifest("not-a-workflow", "os:system", db_url),
        workflow_manifest(
            "no-secret",
            "tests.workflows.misc:echo",
            db_url,
            database={"secretRef": {"name": MISSING_SECRET}},
            recovery=fail_fast,
        ),
        workflow_manifest(
            "bad-toleration",
            "tests.workflows.misc:echo",
            db_url,
            tolerations=[{"key": "k", "operator": "Sometimes", "effect": "NoSchedule"}],
            recovery=fail_fast,
        ),
        workflow_manifest(LONG_WORKFLOW, "tests.workflows.misc:echo", db_url),
    ]


# -- rejected manifests -----------------------------------------------------------------------


@dataclass(frozen=True)
class Rejected:
    id: str
    kind: str
    name: str
    text: str
    """The manifest as sent (JSON text)."""
    says: tuple[str, ...]
    """Substrings of the error a user reads."""
    verb: Literal["apply", "create"] = "apply"
    gap: str | None = None


def rejected(
    id: str,
    manifest: Json,
    *says: str,
    verb: Literal["apply", "create"] = "apply",
    gap: str | None = None,
) -> Rejected:
    kind = manifest["kind"].lower()
    return Rejected(id, kind, manifest["metadata"]["name"], json.dumps(manifest), says, verb, gap)


def _run_text(name: str, input_json: str) -> str:
    return (
        f'{{"apiVersion": "{API_VERSION}", "kind": "WorkflowRun", "metadata": {{"name": "{name}"}},'
        f' "spec": {{"workflowRef": {{"name": "{ECHO}"}}, "input": {{"value": {input_json}}}}}}}'
    )


REJECTED: tuple[Rejected, ...] = (
    # WorkflowRun: wrong types
    rejected(
        "run-retry-string",
        run("r-retry", retry="one"),
        'spec.retry in body must be of type integer: "string"',
    ),
    rejected(
        "run-input-array",
        run("r-input", input=[1, 2]),
        'spec.input in body must be of type object: "array"',
    ),
    rejected(
        "run-input-string",
        run("r-input", input="order 42"),
        'spec.input in body must be of type object: "string"',
    ),
    rejected(
        "run-state-number", run("r-state", state=5), "spec.state in body must be of type string"
    ),
    # WorkflowRun: values out of range
    rejected(
        "run-state-unknown",
        run("r-state", state="Paused"),
        'spec.state: Unsupported value: "Paused": supported values: "Running", "Cancelled", '
        '"Terminated"',
    ),
    rejected(
        "run-retry-negative",
        run("r-retry", retry=-1),
        "spec.retry in body should be greater than or equal to 0",
    ),
    rejected(
        "run-ttl-negative",
        run("r-ttl", ttlSecondsAfterFinished=-5),
        "spec.ttlSecondsAfterFinished in body should be greater than or equal to 0",
    ),
    rejected(
        "run-fork-from-step-0",
        run("r-fork", forkFrom={"run": STEADY, "step": 0}),
        "spec.forkFrom.step in body should be greater than or equal to 1",
    ),
    rejected(
        "run-forks-from-step-0",
        run("r-forks", forks=[{"name": "r-forks-b", "fromStep": 0}]),
        "spec.forks[0].fromStep in body should be greater than or equal to 1",
    ),
    rejected(
        "run-fork-name-invalid",
        run("r-forks", forks=[{"name": "Bad_Name", "fromStep": 1}]),
        "spec.forks[0].name in body should match",
    ),
    rejected(
        "run-fork-name-too-long",
        run("r-forks", forks=[{"name": "f" * 56, "fromStep": 1}]),
        "spec.forks[0].name: Too long: may not be more than 55",
    ),
    rejected(
        "run-fork-names-duplicate",
        run("r-forks", forks=[{"name": "twin", "fromStep": 1}, {"name": "twin", "fromStep": 2}]),
        "spec.forks names must be unique",
    ),
    # WorkflowRun: names, required and unknown fields
    rejected(
        "run-name-56-characters",
        run("n" * 56),
        "WorkflowRun names are at most 55 characters (its pods are named <name>-<attempt>)",
    ),
    rejected(
        "run-name-not-dns",
        run("Order_42"),
        'metadata.name: Invalid value: "Order_42": a lowercase RFC 1123 subdomain',
    ),
    rejected(
        "run-no-spec",
        {k: v for k, v in run("r-nospec").items() if k != "spec"},
        "spec: Required value",
    ),
    rejected(
        "run-no-workflow-ref", run("r-noref", workflowRef=None), "spec.workflowRef: Required value"
    ),
    rejected(
        "run-workflow-ref-empty",
        run("r-emptyref", workflowRef={"name": ""}),
        "spec.workflowRef.name in body should be at least 1 chars long",
    ),
    rejected(
        "run-unknown-field",
        run("r-unknown", priority="high"),
        'strict decoding error: unknown field "spec.priority"',
    ),
    # WorkflowRun: huge and deep input
    rejected(
        "run-input-300k-by-apply",
        run("r-300k", input={"value": "q" * 300_000}),
        "metadata.annotations: Too long: may not be more than 262144 bytes",
    ),
    rejected(
        "run-input-1600k-by-create",
        run("r-1600k", input={"value": "q" * 1_600_000}),
        "etcdserver: request is too large",
        verb="create",
    ),
    Rejected(
        "run-input-nested-10001",
        "workflowrun",
        "r-deep",
        _run_text("r-deep", nested_json(NESTED_TOO_DEEP_FOR_KUBECTL)),
        ("exceeded max depth",),
    ),
    # Workflow
    rejected("workflow-no-image", workflow("w-noimage", image=None), "spec.image: Required value"),
    rejected(
        "workflow-image-empty",
        workflow("w-noimage", image=""),
        "spec.image in body should be at least 1 chars long",
    ),
    rejected(
        "workflow-no-entrypoint",
        workflow("w-noentry", entrypoint=None),
        "spec.entrypoint: Required value",
    ),
    rejected(
        "workflow-entrypoint-shell",
        workflow("w-shell", entrypoint="shop.workflows:flow; rm -rf /"),
        'spec.entrypoint: Invalid value: "shop.workflows:flow; rm -rf /": spec.entrypoint in '
        "body should match",
    ),
    rejected(
        "workflow-entrypoint-file-path",
        workflow("w-path", entrypoint="shop/workflows.py:flow"),
        "spec.entrypoint in body should match",
    ),
    rejected(
        "workflow-max-attempts-negative",
        workflow("w-recovery", recovery={"maxAttempts": -1}),
        "spec.recovery.maxAttempts in body should be greater than or equal to 0",
    ),
    rejected(
        "workflow-start-timeout-too-small",
        workflow("w-recovery", recovery={"startTimeoutSeconds": 1}),
        "spec.recovery.startTimeoutSeconds in body should be greater than or equal to 5",
    ),
    rejected(
        "workflow-grace-period-too-long",
        workflow("w-grace", cancelGracePeriodSeconds=99999),
        "spec.cancelGracePeriodSeconds in body should be less than or equal to 3600",
    ),
    rejected(
        "workflow-deadline-zero",
        workflow("w-deadline", activeDeadlineSeconds=0),
        "spec.activeDeadlineSeconds in body should be greater than or equal to 1",
    ),
    rejected(
        "workflow-unknown-nested-field",
        workflow("w-typo", recovery={"retries": 3}),
        'strict decoding error: unknown field "spec.recovery.retries"',
    ),
    rejected(
        "workflow-env-overrides-runner-contract",
        workflow(
            "w-hijack", env=[{"name": "STEPSTONE_RUN_ID", "value": "other-namespace/victim@0"}]
        ),
        "STEPSTONE_RUN_ID",
    ),
    rejected(
        "workflow-resource-quantity-invalid",
        workflow("w-quantity", resources={"limits": {"memory": "lots"}}),
        "spec.resources.limits.memory in body should match",
    ),
    rejected(
        "run-fork-of-itself",
        run_manifest("self-fork", ORDERS, forkFrom={"run": "self-fork", "step": 1}),
        "spec.forkFrom.run names this WorkflowRun itself; fork another run",
    ),
    # WorkflowEvent
    rejected(
        "event-payload-not-object",
        event("e-payload", payload="approve"),
        'spec.payload in body must be of type object: "string"',
    ),
    rejected("event-no-name", event("e-noevent", event=None), "spec.event: Required value"),
    rejected("event-no-run-ref", event("e-noref", runRef=None), "spec.runRef: Required value"),
    rejected(
        "event-key-too-long",
        event("e-key", key="k" * 300),
        "spec.key: Too long: may not be more than 253",
    ),
)


# -- refused changes --------------------------------------------------------------------------


@dataclass(frozen=True)
class RefusedChange:
    id: str
    kind: str
    name: str
    patch: Any
    """A merge patch (dict) or a JSON patch (list)."""
    says: tuple[str, ...]

    @property
    def patch_type(self) -> str:
        return "json" if isinstance(self.patch, list) else "merge"


def refused(id: str, name: str, patch: Any, *says: str, kind: str = "wfrun") -> RefusedChange:
    return RefusedChange(id, kind, name, patch, says)


REFUSED_CHANGES: tuple[RefusedChange, ...] = (
    refused(
        "input-changed",
        STEADY,
        {"spec": {"input": {"order_id": 2}}},
        "spec.input is immutable; create a new WorkflowRun for other input (or fork this one)",
    ),
    refused(
        "input-key-added",
        STEADY,
        {"spec": {"input": {"coupon": "FREE"}}},
        "spec.input is immutable",
    ),
    refused(
        "input-removed",
        STEADY,
        [{"op": "remove", "path": "/spec/input"}],
        "spec.input is immutable; create a new WorkflowRun for other input",
    ),
    refused(
        "workflow-ref-changed",
        STEADY,
        {"spec": {"workflowRef": {"name": ECHO}}},
        "spec.workflowRef is immutable; fork the run onto another Workflow instead",
    ),
    refused(
        "workflow-ref-removed",
        STEADY,
        [{"op": "remove", "path": "/spec/workflowRef"}],
        "spec.workflowRef: Required value",
    ),
    refused(
        "fork-from-added",
        STEADY,
        {"spec": {"forkFrom": {"run": STEADY_FORK, "step": 1}}},
        "spec.forkFrom is immutable: it can be neither added nor removed",
    ),
    refused(
        "fork-from-changed",
        STEADY_FORK,
        {"spec": {"forkFrom": {"run": STEADY, "step": 2}}},
        "spec.forkFrom is immutable",
    ),
    refused(
        "fork-from-removed",
        STEADY_FORK,
        [{"op": "remove", "path": "/spec/forkFrom"}],
        "spec.forkFrom is immutable: it can be neither added nor removed",
    ),
    refused(
        "retry-lowered",
        STEADY,
        {"spec": {"retry": 1}},
        "spec.retry can only be raised (raise it to resume a Failed run)",
    ),
    refused(
        "state-unknown",
        STEADY,
        {"spec": {"state": "Paused"}},
        'spec.state: Unsupported value: "Paused"',
    ),
    refused(
        "state-wrong-case",
        STEADY,
        {"spec": {"state": "cancelled"}},
        'spec.state: Unsupported value: "cancelled": supported values: "Running", "Cancelled"',
    ),
    refused(
        "state-number",
        STEADY,
        {"spec": {"state": 5}},
        "spec.state in body must be of type string",
    ),
    refused(
        "forks-duplicate-names",
        STEADY,
        {"spec": {"forks": [{"name": "twin", "fromStep": 1}, {"name": "twin", "fromStep": 2}]}},
        "spec.forks names must be unique",
    ),
    refused(
        "forks-from-step-0",
        STEADY,
        {"spec": {"forks": [{"name": "steady-zero", "fromStep": 0}]}},
        "spec.forks[0].fromStep in body should be greater than or equal to 1",
    ),
    refused(
        "event-spec-changed",
        "event-for-ghost",
        {"spec": {"payload": {"approved": False}}},
        "a WorkflowEvent's spec is immutable; create another event",
        kind="wfevent",
    ),
)


# -- accepted, surfaced by the operator --------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    id: str
    objects: tuple[Json, ...]
    """Applied with the hostile batch (the Workflows they use are in hostile_workflows)."""
    watch: str
    """The object whose status must tell the user."""
    phase: str | None = None
    condition: tuple[str, str, str] | None = None
    """type, status, reason of the condition that tells."""
    says: tuple[str, ...] = ()
    """Substrings of that condition's message."""
    result: Any = ANY
    result_truncated: bool = False
    kind: Literal["workflowrun", "workflowevent"] = "workflowrun"
    create: bool = False
    """Sent with ``kubectl create``: too big for kubectl apply's last-applied annotation."""
    gap: str | None = None
    flaps: str | None = None


def echo_run(name: str, value: Any) -> Json:
    return run_manifest(name, ECHO, {"value": value})


OUTCOMES: tuple[Outcome, ...] = (
    Outcome(
        "missing-workflow",
        (run_manifest("missing-workflow", "no-such-workflow", {"value": 1}),),
        "missing-workflow",
        phase="Pending",
        condition=("Accepted", "False", "WorkflowNotFound"),
        says=("Workflow 'no-such-workflow' not found in namespace", "fix spec.workflowRef.name"),
    ),
    Outcome(
        "workflow-ref-path-traversal",
        (run_manifest("traversal", "../kube-system/orders"),),
        "traversal",
        phase="Pending",
        condition=("Accepted", "False", "WorkflowNotFound"),
        says=("Workflow '../kube-system/orders' not found",),
    ),
    Outcome(
        "input-fails-input-schema",
        (run_manifest("schema-mismatch", "strict", {"order_id": "forty-two"}),),
        "schema-mismatch",
        phase="Failed",
        condition=("Accepted", "False", "InputInvalid"),
        says=("order_id: 'forty-two' is not of type 'integer'",),
    ),
    Outcome(
        "input-schema-itself-invalid",
        (run_manifest("broken-schema", "broken-schema", {"order_id": 1}),),
        "broken-schema",
        phase="Failed",
        condition=("Accepted", "False", "InputInvalid"),
        says=("the Workflow's inputSchema is not a valid JSON Schema",),
    ),
    Outcome(
        "input-does-not-fit-the-function",
        (run_manifest("input-misfit", ORDERS, {"orderId": 42}),),
        "input-misfit",
        phase="Failed",
        condition=("Succeeded", "False", "InputError"),
        says=("missing a required argument: 'order_id'",),
    ),
    Outcome(
        "fork-of-missing-run",
        (run_manifest("fork-of-ghost", ORDERS, forkFrom={"run": GHOST_RUN, "step": 1}),),
        "fork-of-ghost",
        phase="Pending",
        condition=("Accepted", "False", "ForkSourceNotFound"),
        says=(f"WorkflowRun '{GHOST_RUN}' (spec.forkFrom.run) not found",),
    ),
    Outcome(
        "fork-past-the-source-record",
        (run_manifest("fork-past-end", ORDERS, forkFrom={"run": STEADY, "step": 9}),),
        "fork-past-end",
        phase="Failed",
        condition=("Accepted", "False", "InvalidFork"),
        says=(f"WorkflowRun '{STEADY}' recorded 5 step(s); fork it from step 1 to 6, not 9",),
    ),
    Outcome(
        "fork-onto-missing-workflow",
        (
            run_manifest(
                "forker",
                ORDERS,
                {"order_id": 3},
                forks=[
                    {"name": "forker-b", "fromStep": 2, "workflowRef": {"name": "ghost-workflow"}}
                ],
            ),
        ),
        "forker-b",
        phase="Pending",
        condition=("Accepted", "False", "WorkflowNotFound"),
        says=("Workflow 'ghost-workflow' not found",),
    ),
    Outcome(
        "image-does-not-exist",
        (run_manifest("image-missing", "no-image", {"value": 1}),),
        "image-missing",
        phase="Failed",
        condition=("Succeeded", "False", "ImagePullError"),
        says=(BAD_IMAGE, "recovery.maxAttempts is 0"),
    ),
    Outcome(
        "entrypoint-module-does-not-import",
        (run_manifest("module-missing", "no-module"),),
        "module-missing",
        phase="Failed",
        condition=("Succeeded", "False", "EntrypointError"),
        says=(
            "cannot import module 'tests.workflows.does_not_exist'",
            "ModuleNotFoundError",
        ),
    ),
    Outcome(
        "entrypoint-function-missing",
        (run_manifest("function-missing", "no-function"),),
        "function-missing",
        phase="Failed",
        condition=("Succeeded", "False", "EntrypointError"),
        says=("module 'tests.workflows.misc' has no attribute 'no_such_function'",),
    ),
    Outcome(
        "entrypoint-not-a-workflow",
        (run_manifest("not-a-workflow", "not-a-workflow", {"command": "id"}),),
        "not-a-workflow",
        phase="Failed",
        condition=("Succeeded", "False", "EntrypointError"),
        says=("os:system is not a workflow: decorate it with @stepstone.workflow",),
    ),
    Outcome(
        "runner-secret-missing",
        (run_manifest("secret-missing", "no-secret", {"value": 1}),),
        "secret-missing",
        phase="Failed",
        condition=("Succeeded", "False", "RunnerError"),
        says=(f'secret "{MISSING_SECRET}" not found',),
    ),
    Outcome(
        "runner-pod-rejected-by-the-api-server",
        (run_manifest("bad-toleration", "bad-toleration", {"value": 1}),),
        "bad-toleration",
        phase="Failed",
        condition=("Succeeded", "False", "PodRejected"),
        says=("the API server refused runner pod bad-toleration-1", "Unsupported value"),
    ),
    Outcome(
        "workflow-name-truncated-to-invalid-label",
        (run_manifest("long-workflow", LONG_WORKFLOW, {"value": 65}),),
        "long-workflow",
        phase="Succeeded",
        condition=("Succeeded", "True", "Succeeded"),
        result=65,
    ),
    Outcome(
        "input-with-shell-metacharacters",
        (echo_run("shell-input", SHELL),),
        "shell-input",
        phase="Succeeded",
        condition=("Succeeded", "True", "Succeeded"),
        result=SHELL,
    ),
    Outcome(
        "input-with-unicode-tricks",
        (echo_run("unicode-input", UNICODE),),
        "unicode-input",
        phase="Succeeded",
        condition=("Succeeded", "True", "Succeeded"),
        result=UNICODE,
    ),
    Outcome(
        "input-with-nul-character",
        (echo_run("nul-input", "before\u0000after"),),
        "nul-input",
        phase="Failed",
        condition=("Accepted", "False", "InputInvalid"),
        says=("\\u0000",),
    ),
    Outcome(
        "input-200k-by-apply",
        (echo_run("input-200k", "x" * 200_000),),
        "input-200k",
        phase="Succeeded",
        condition=("Succeeded", "True", "Succeeded"),
        result_truncated=True,
    ),
    Outcome(
        "input-1m-by-create",
        (echo_run("input-1m", "y" * 1_000_000),),
        "input-1m",
        phase="Succeeded",
        condition=("Succeeded", "True", "Succeeded"),
        result_truncated=True,
        create=True,
    ),
    Outcome(
        "input-nested-100-deep",
        (echo_run("nested-100", nested(NESTED_OK)),),
        "nested-100",
        phase="Succeeded",
        condition=("Succeeded", "True", "Succeeded"),
        result=nested(NESTED_OK),
    ),
    Outcome(
        "input-nested-500-deep",
        (echo_run("nested-500", nested(NESTED_TOO_DEEP_FOR_PYTHON)),),
        "nested-500",
        phase="Failed",
        condition=("Accepted", "False", "InputInvalid"),
        says=("nest",),
    ),
    Outcome(
        "run-name-55-characters",
        (echo_run("b" * 55, 55),),
        "b" * 55,
        phase="Succeeded",
        condition=("Succeeded", "True", "Succeeded"),
        result=55,
    ),
    Outcome(
        "event-for-missing-run",
        (event("event-for-ghost", payload={"approved": True}),),
        "event-for-ghost",
        condition=("Delivered", "False", "RunNotFound"),
        says=(
            f"WorkflowRun '{GHOST_RUN}' not found in namespace",
            "delivered as soon as it exists",
        ),
        kind="workflowevent",
    ),
    Outcome(
        "event-for-finished-run",
        (event("late-event", runRef={"name": FINISHED}, payload={"approved": True}),),
        "late-event",
        condition=("Delivered", "True", "Delivered"),
        says=("has ended (succeeded): nothing will receive it unless the run is resumed",),
        kind="workflowevent",
    ),
)
