"""Workflows for the end-to-end scenarios, small and free of test-only dependencies.

They run in runner pods of a chart-installed operator: on kind from the image built by
tests/e2e/Dockerfile, on the local control plane from this checkout. A step can block on the
run's first pod attempt only, so a scenario can act (delete the pod, cancel) while a step is in
flight and the next attempt runs straight through.
"""

from __future__ import annotations

import time

import stepstone

BLOCK_SECONDS = 300.0


@stepstone.step
def work(number: int, block: bool) -> dict[str, int]:
    """Step `number` of the pipeline; blocks (listening for cancellation) when asked to."""
    info = stepstone.current_run()
    if block and info is not None and info.attempt == 1:
        deadline = time.monotonic() + BLOCK_SECONDS
        while time.monotonic() < deadline:
            stepstone.heartbeat()  # a cancel reaches the step here
            time.sleep(0.05)
    return {"step": number, "attempt": info.attempt if info else 0}


@stepstone.workflow
def pipeline(steps: int = 3, block_at: int = 0) -> dict[str, object]:
    """`steps` steps; step `block_at` (1-based, 0 for none) blocks on the first attempt."""
    results = [work(n, n == block_at) for n in range(1, steps + 1)]
    return {"steps": steps, "attempts": [r["attempt"] for r in results]}
