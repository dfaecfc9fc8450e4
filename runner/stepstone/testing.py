"""Workflows and helpers for testing stepstone installations, shipped with the SDK.

``stepstone.testing:hello`` is a one-step workflow every stepstone image can run, so a fresh
installation can be checked without any user code (the Helm chart's ``helm test`` runs it).
"""

from __future__ import annotations

from stepstone._workflows import step, workflow


@step(name="greet")
def _greet(name: str) -> str:
    return f"hello, {name}"


@workflow
def hello(name: str = "world") -> str:
    """Return a greeting from one recorded step."""
    return _greet(name)
