"""The stepstone.io/v1alpha1 resources: Workflow and WorkflowRun."""

from stepstone_operator.api._base import API_VERSION, GROUP, VERSION, Condition
from stepstone_operator.api.workflow import Recovery, WorkflowSpec, WorkflowStatus
from stepstone_operator.api.workflowevent import WorkflowEventSpec, WorkflowEventStatus
from stepstone_operator.api.workflowrun import (
    NAME_MAX,
    DesiredState,
    Failure,
    ForkFrom,
    ForkRequest,
    Phase,
    Pinned,
    RunError,
    StepRef,
    WorkflowRunSpec,
    WorkflowRunStatus,
)

__all__ = [
    "API_VERSION",
    "GROUP",
    "NAME_MAX",
    "VERSION",
    "Condition",
    "DesiredState",
    "Failure",
    "ForkFrom",
    "ForkRequest",
    "Phase",
    "Pinned",
    "Recovery",
    "RunError",
    "StepRef",
    "WorkflowEventSpec",
    "WorkflowEventStatus",
    "WorkflowRunSpec",
    "WorkflowRunStatus",
    "WorkflowSpec",
    "WorkflowStatus",
]
