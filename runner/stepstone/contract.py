"""The contract between the runner (in a pod) and the operator that starts it.

Environment variable names, pod labels and runner exit codes live here and nowhere else, so the
operator (``stepstone_operator``) and the runner (``python -m stepstone runner``) cannot drift
apart. This module imports nothing from the rest of the package: the operator may import it
without pulling in the engine.
"""

from __future__ import annotations

from enum import IntEnum

# -- environment of a runner pod ------------------------------------------------------------
ENV_RUN_ID = "STEPSTONE_RUN_ID"
"""The run to execute (the Postgres ``runs.run_id``)."""
ENV_ATTEMPT = "STEPSTONE_ATTEMPT"
"""The attempt (fencing epoch) the operator raised before creating this pod."""
ENV_DATABASE_URL = "STEPSTONE_DATABASE_URL"
"""SQLAlchemy/libpq URL of the stepstone database; comes from a Secret in a cluster."""
ENV_POD_NAME = "STEPSTONE_POD_NAME"
"""The pod's own name (downward API), recorded as the run's current runner."""
ENV_HEARTBEAT_SECONDS = "STEPSTONE_HEARTBEAT_SECONDS"
"""How often the runner renews its lease and publishes progress (default 1 s)."""
ENV_SUSPEND_AFTER_SECONDS = "STEPSTONE_SUSPEND_AFTER_SECONDS"
"""Sleeps or waits longer than this end the pod (exit SUSPENDED) instead of holding it."""
ENV_LOG_FORMAT = "STEPSTONE_LOG_FORMAT"
"""``json`` (default in pods) or ``text``."""
ENV_LOG_LEVEL = "STEPSTONE_LOG_LEVEL"

# -- labels and annotations on runner pods --------------------------------------------------
GROUP = "stepstone.io"
LABEL_RUN = f"{GROUP}/run"
LABEL_RUN_UID = f"{GROUP}/run-uid"
LABEL_ATTEMPT = f"{GROUP}/attempt"
LABEL_WORKFLOW = f"{GROUP}/workflow"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
COMPONENT_RUNNER = "runner"
MANAGED_BY = "stepstone"
CONTAINER_NAME = "runner"


CHILD_NAME_MAX = 48
"""A cluster child's WorkflowRun is named <parent name, cut to this>-c<step>."""


def child_run_id(parent_run_id: str, step: int) -> str:
    """The run id of the child a parent starts at ``step``: deterministic, so a parent that
    crashes and replays finds the child it started instead of starting another. In a cluster
    (``<namespace>/<name>@<uid>`` ids) it also names the child's WorkflowRun."""
    namespace, slash, rest = parent_run_id.partition("/")
    name, at, uid = rest.partition("@")
    if slash and at and namespace and name and uid and "/" not in rest:
        return f"{namespace}/{name[:CHILD_NAME_MAX].rstrip('-.')}-c{step}@{uid}c{step}"
    return f"{parent_run_id}/child-{step}"


class ExitCode(IntEnum):
    """How a runner process ended; the operator maps these onto the run's phase.

    Codes avoid 1 and 2 (Python's own crash and usage codes) and 128+n (signals), so an
    unexpected crash or a kill can never be mistaken for a decision the runner made.
    """

    SUCCEEDED = 0
    """The workflow returned; its result is recorded."""
    FAILED = 10
    """The workflow raised (after its steps' retries); the error is recorded. Not pod loss."""
    CANCELLED = 11
    """A cancel request was honoured; cleanup ran; the run is recorded as cancelled."""
    SUSPENDED = 12
    """The run sleeps or waits for an event; the wake time is recorded; start a pod later."""
    FENCED = 13
    """This attempt is no longer current (a newer epoch exists); nothing was recorded."""
    INTERRUPTED = 14
    """SIGTERM without a cancel request (pod deleted, node drained): the step in flight was
    abandoned unrecorded and a new attempt will replay it."""
    CONFIG_ERROR = 15
    """The runner could not start: missing environment, database unreachable, or a schema
    version it does not understand. Nothing about the run was recorded."""
