"""An order pipeline: five steps, each a call to some outside system.

Run it locally (from the repository root)::

    PYTHONPATH=examples stepstone run shop.workflows:order_pipeline --input '{"order_id": 42}'
"""

from __future__ import annotations

import time

import stepstone

WORK_SECONDS = 0.6  # each step "talks to" an outside system for a moment


def _work() -> None:
    deadline = time.monotonic() + WORK_SECONDS
    while time.monotonic() < deadline:
        stepstone.heartbeat()  # a cancel reaches the step here
        time.sleep(0.05)


@stepstone.step
def validate_order(order_id: int) -> dict[str, object]:
    _work()
    return {"order_id": order_id, "items": ["book", "lamp"], "total_cents": 4_990}


@stepstone.step(retries=3, backoff=0.5)
def reserve_stock(order: dict[str, object]) -> str:
    _work()
    return f"reservation-{order['order_id']}"


@stepstone.step(retries=5, backoff=1.0, max_backoff=30.0)
def charge_card(order: dict[str, object]) -> str:
    info = stepstone.current_run()
    # A real payment API gets this key, so a charge retried after a crash happens once.
    key = info.idempotency_key if info else "local"
    _work()
    return f"charge {order['total_cents']} cents, idempotency key {key}"


@stepstone.step
def ship(order: dict[str, object], reservation: str) -> str:
    _work()
    return f"parcel for {reservation}"


@stepstone.step
def send_receipt(order: dict[str, object], charge: str) -> str:
    _work()
    return f"receipt sent for order {order['order_id']}"


@stepstone.workflow
def order_pipeline(order_id: int) -> dict[str, object]:
    order = validate_order(order_id)
    reservation = reserve_stock(order)
    charge = charge_card(order)
    parcel = ship(order, reservation)
    receipt = send_receipt(order, charge)
    return {"order_id": order_id, "charge": charge, "parcel": parcel, "receipt": receipt}


@stepstone.workflow
def hello(name: str = "world") -> str:
    """The smallest workflow: one step."""
    return greet(name)


@stepstone.step
def greet(name: str) -> str:
    return f"hello, {name}"


@stepstone.step
def check_refund(order_id: int, cents: int) -> dict[str, object]:
    _work()
    return {"order_id": order_id, "cents": cents, "eligible": cents <= 10_000}


@stepstone.step
def issue_refund(order_id: int, cents: int, approved_by: str) -> str:
    _work()
    return f"refunded {cents} cents on order {order_id}, approved by {approved_by}"


@stepstone.workflow
def refund(order_id: int, cents: int = 2_500) -> dict[str, object]:
    """Waits (durably, holding no pod) for an `approval` event before refunding."""
    check = check_refund(order_id, cents)
    if not check["eligible"]:
        return {"order_id": order_id, "refunded": False}
    try:
        approval = stepstone.wait_for_event("approval", timeout=7 * 24 * 3600)
    except stepstone.EventTimeoutError:
        return {"order_id": order_id, "refunded": False, "reason": "no approval in a week"}
    receipt = issue_refund(order_id, cents, str(approval.get("approved_by", "someone")))
    return {"order_id": order_id, "refunded": True, "receipt": receipt}
