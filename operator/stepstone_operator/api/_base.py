"""Pieces shared by the resource types: the camelCase model base, conditions, references.

The pydantic models in this package are the single source of the CRD schemas: field types,
defaults, bounds and descriptions (what ``kubectl explain`` shows) are written here once, and
``stepstone_operator.crdgen`` turns them into ``crds/*.yaml`` and the chart's CRD templates.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "stepstone.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


class ApiModel(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields are refused by the API
    server (structural schema), so the models ignore nothing silently."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    def wire(self) -> dict[str, Any]:
        """The object as the API server stores it (aliases, no unset optional fields)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class LocalObjectReference(ApiModel):
    """A reference to an object in the same namespace."""

    name: str = Field(
        min_length=1,
        max_length=253,
        description="Name of the object, in the same namespace.",
    )


class SecretKeyReference(ApiModel):
    """A key of a Secret in the same namespace."""

    name: str = Field(
        default="stepstone-database",
        min_length=1,
        max_length=253,
        description="Name of a Secret in the run's namespace.",
    )
    key: str = Field(default="url", min_length=1, description="Key in the Secret's data.")


class Condition(ApiModel):
    """The metav1.Condition shape."""

    type: str = Field(description="Kind of condition, e.g. Accepted or Succeeded.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(description="One CamelCase word for machines.")
    message: str = Field(default="", description="What happened and what to do, for humans.")
    last_transition_time: str = Field(
        description="When status last changed (RFC 3339).",
        json_schema_extra={"format": "date-time"},
    )
    observed_generation: int | None = Field(
        default=None, description="The .metadata.generation the condition was set for."
    )
