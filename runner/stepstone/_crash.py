"""Named crash points: the durability tests kill the process at exactly these moments.

``STEPSTONE_CRASH_AT=after_step_body:3`` makes the runner SIGKILL itself right after step 3's
function returned and before its outcome is recorded (the worst moment for exactly-once).
The points are read once by the entrypoint into ``ExecuteOptions``; with none set the check
costs one attribute test.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping

ENV = "STEPSTONE_CRASH_AT"
POINTS = ("before_step", "after_step_body", "after_record", "before_finish")


def parse(spec: str | None) -> frozenset[tuple[str, int]]:
    """``"after_step_body:3,before_step:5"`` -> {("after_step_body", 3), ("before_step", 5)}."""
    if not spec:
        return frozenset()
    points = set()
    for item in spec.split(","):
        name, _, step = item.strip().partition(":")
        if name not in POINTS:
            raise ValueError(f"unknown crash point {name!r}; known: {', '.join(POINTS)}")
        points.add((name, int(step or 0)))
    return frozenset(points)


def from_env(env: Mapping[str, str]) -> frozenset[tuple[str, int]]:
    return parse(env.get(ENV))


def hit(points: frozenset[tuple[str, int]], name: str, step: int) -> None:
    if (name, step) in points:
        os.kill(os.getpid(), signal.SIGKILL)
