"""Parents and children: child workflows started by a step, waited for by another."""

from __future__ import annotations

import time

import stepstone
from tests.workflows import effects


@stepstone.step
def note(tag: str) -> str:
    effects.record(tag)
    return tag


@stepstone.step
def child_work(x: int, seconds: float) -> int:
    effects.record("child_work")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        stepstone.heartbeat()
        time.sleep(0.05)
    if x < 0:
        raise ValueError("negative input")
    return x * 10


@stepstone.workflow
def child(x: int, seconds: float = 0.0) -> int:
    return child_work(x, seconds)


@stepstone.workflow
def parent(x: int = 4, seconds: float = 0.0) -> dict[str, object]:
    note("parent_before")
    handle = stepstone.start_child(child, {"x": x, "seconds": seconds})
    try:
        result = handle.result()
    except stepstone.ChildRunError as exc:
        return {"child": handle.run_id, "error": str(exc)}
    note("parent_after")
    return {"child": handle.run_id, "result": result}
