"""An order pipeline of five steps with counted side effects, and variants of it."""

from __future__ import annotations

import time

import stepstone
from tests.workflows import effects

STEPS = ("validate_order", "reserve_stock", "charge_card", "ship", "notify")


def _body(tag: str, order_id: int, block_at: str | None, block_seconds: float) -> dict[str, object]:
    effects.record(tag)
    info = stepstone.current_run()
    if block_at == tag and info is not None and info.attempt == 1:  # block the first attempt only
        deadline = time.monotonic() + block_seconds
        while time.monotonic() < deadline:
            stepstone.heartbeat()  # a long step that listens for cancellation
            time.sleep(0.05)
    return {"step": tag, "order_id": order_id}


@stepstone.step
def validate_order(order_id: int, block_at: str | None, block_seconds: float) -> dict[str, object]:
    return _body("validate_order", order_id, block_at, block_seconds)


@stepstone.step
def reserve_stock(order_id: int, block_at: str | None, block_seconds: float) -> dict[str, object]:
    return _body("reserve_stock", order_id, block_at, block_seconds)


@stepstone.step
def charge_card(order_id: int, block_at: str | None, block_seconds: float) -> dict[str, object]:
    return _body("charge_card", order_id, block_at, block_seconds)


@stepstone.step(name="charge_card_v2")
def charge_card_v2(order_id: int, block_at: str | None, block_seconds: float) -> dict[str, object]:
    return _body("charge_card_v2", order_id, block_at, block_seconds)


@stepstone.step
def ship(order_id: int, block_at: str | None, block_seconds: float) -> dict[str, object]:
    return _body("ship", order_id, block_at, block_seconds)


@stepstone.step
def notify(order_id: int, block_at: str | None, block_seconds: float) -> dict[str, object]:
    return _body("notify", order_id, block_at, block_seconds)


@stepstone.step
def release_stock(order_id: int) -> str:
    effects.record("release_stock")
    return f"released {order_id}"


@stepstone.workflow
def pipeline(
    order_id: int, block_at: str | None = None, block_seconds: float = 60.0
) -> dict[str, object]:
    """Five steps; ``block_at`` makes that step run long (listening for cancellation)."""
    done = []
    try:
        for fn in (validate_order, reserve_stock, charge_card, ship, notify):
            done.append(fn(order_id, block_at, block_seconds)["step"])
    except stepstone.Cancelled:
        release_stock(order_id)  # cleanup: recorded even though the run was cancelled
        raise
    return {"order_id": order_id, "steps": done}


@stepstone.workflow
def pipeline_v2(
    order_id: int, block_at: str | None = None, block_seconds: float = 60.0
) -> dict[str, object]:
    """Step 3 renamed: forks of ``pipeline`` onto it reuse steps 1-2 only."""
    done = []
    for fn in (validate_order, reserve_stock, charge_card_v2, ship, notify):
        done.append(fn(order_id, block_at, block_seconds)["step"])
    return {"order_id": order_id, "steps": done, "version": 2}


@stepstone.workflow
def pipeline_swapped(
    order_id: int, block_at: str | None = None, block_seconds: float = 60.0
) -> dict[str, object]:
    """Steps 2 and 3 swapped: replaying a ``pipeline`` record must fail at step 2."""
    done = []
    for fn in (validate_order, charge_card, reserve_stock, ship, notify):
        done.append(fn(order_id, block_at, block_seconds)["step"])
    return {"order_id": order_id, "steps": done}
