"""Small workflows for the SDK's behaviours: retries, timeouts, errors, async, events, sleep."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import stepstone
from tests.workflows import effects


class PaymentDeclinedError(Exception):
    pass


@stepstone.step(retries=3, backoff=0.01, backoff_factor=2.0, max_backoff=0.05)
def flaky(fail_times: int) -> int:
    effects.record("flaky")
    info = stepstone.current_run()
    assert info is not None and info.step_attempt is not None
    if info.step_attempt <= fail_times:
        raise ConnectionError(f"attempt {info.step_attempt} failed")
    return info.step_attempt


@stepstone.workflow
def retrying(fail_times: int) -> int:
    return flaky(fail_times)


@stepstone.step(retries=5, backoff=0.01, non_retryable=(PaymentDeclinedError,))
def declines() -> None:
    effects.record("declines")
    raise PaymentDeclinedError("card declined")


@stepstone.workflow
def declined() -> str:
    try:
        declines()
    except PaymentDeclinedError as exc:
        return f"caught {exc}"
    return "not reached"


@stepstone.step(retries=5, backoff=0.01)
def gives_up() -> None:
    effects.record("gives_up")
    raise stepstone.StepError("account closed", non_retryable=True)


@stepstone.workflow
def giving_up() -> None:
    gives_up()


@stepstone.step(timeout=0.2, retries=1, backoff=0.01)
def too_slow() -> None:
    effects.record("too_slow")
    time.sleep(5)


@stepstone.workflow
def timing_out() -> None:
    too_slow()


@stepstone.step
def returns_object() -> Any:
    effects.record("returns_object")
    return object()


@stepstone.workflow
def bad_output() -> Any:
    return returns_object()


@stepstone.step
def identity(value: Any) -> Any:
    return value


@stepstone.workflow
def echo(value: Any = None) -> Any:
    return identity(value)


@stepstone.workflow
def info_probe() -> dict[str, Any]:
    @stepstone.step(name="probe")
    def probe() -> dict[str, Any]:
        info = stepstone.current_run()
        assert info is not None
        return {
            "run_id": info.run_id,
            "step": info.step,
            "attempt": info.attempt,
            "key": info.idempotency_key,
            "name": info.step_name,
        }

    first = probe()
    second = probe()
    return {"first": first, "second": second}


@stepstone.step
def outer() -> int:
    return inner() + 1


@stepstone.step
def inner() -> int:
    return 41


@stepstone.workflow
def nested() -> int:
    return outer()


@stepstone.workflow
def many(n: int) -> int:
    total = 0
    for i in range(n):
        total += identity(i)
    return total


@stepstone.step
async def async_double(x: int) -> int:
    effects.record("async_double")
    await asyncio.sleep(0)
    return 2 * x


@stepstone.step
async def async_block(seconds: float) -> str:
    effects.record("async_block")
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        effects.record("async_block_cancelled")
        raise
    return "done"


@stepstone.workflow
async def async_flow(x: int, block: float = 0.0) -> int:
    a = await async_double(x)
    b = identity(a)  # a sync step inside an async workflow
    if block:
        await async_block(block)
    c = await async_double(b)
    return c


@stepstone.step
def mark(tag: str) -> str:
    effects.record(tag)
    return tag


@stepstone.workflow
def sleeper(seconds: float) -> str:
    mark("before_sleep")
    stepstone.sleep(seconds)
    return mark("after_sleep")


@stepstone.workflow
def approval(timeout: float | None = None) -> Any:
    mark("before_wait")
    try:
        decision = stepstone.wait_for_event("approval", timeout=timeout)
    except stepstone.EventTimeoutError as exc:
        return {"timeout": str(exc)}
    mark("after_wait")
    return decision


@stepstone.workflow
def two_approvals() -> list[Any]:
    return [stepstone.wait_for_event("approval"), stepstone.wait_for_event("approval")]


@stepstone.step
def stubborn_step(seconds: float) -> str:
    effects.record("stubborn")
    try:
        time.sleep(seconds)  # never calls heartbeat(): only SIGTERM reaches it
    except stepstone.Cancelled:
        effects.record("stubborn_saw_cancel")
        raise
    return "done"


@stepstone.workflow
def stubborn(seconds: float = 60.0) -> str:
    mark("first")
    try:
        return stubborn_step(seconds)
    except stepstone.Cancelled:
        mark("cleanup")
        raise


@stepstone.step
def fails_first_time() -> str:
    effects.record("fails_first_time")
    if effects.count_for_current_run("fails_first_time") == 1:
        raise stepstone.StepError("upstream outage", non_retryable=True)
    return "recovered"


@stepstone.workflow
def recovers_on_retry() -> list[str]:
    return [mark("before"), fails_first_time(), mark("after")]


@stepstone.workflow
def swallow_all() -> str:
    try:
        mark("x")
    except Exception:  # a careless workflow: must not hide a non-determinism error
        return "swallowed"
    return "ran"


@stepstone.step
def hog(megabytes: int) -> str:
    """Exceeds a memory limit on the run's first attempt only."""
    effects.record("hog")
    info = stepstone.current_run()
    if info is not None and info.attempt == 1:
        blocks = [bytearray(1024 * 1024) for _ in range(megabytes)]
        time.sleep(30)  # hold it until the kubelet's OOM killer acts
        return str(len(blocks))
    return "fits"


@stepstone.workflow
def memory_hungry(megabytes: int = 400) -> list[str]:
    return [mark("before"), hog(megabytes), mark("after")]


@stepstone.step
def explode() -> None:
    raise RuntimeError("the workflow's own bug")


@stepstone.workflow
def buggy() -> None:
    mark("before")
    explode()


@stepstone.step
def slow(i: int, seconds: float) -> int:
    effects.record(f"slow-{i}")
    time.sleep(seconds)
    return i


@stepstone.workflow
def slow_steps(count: int = 4, seconds: float = 1.5) -> int:
    return sum(slow(i, seconds) for i in range(count))


@stepstone.step
def long_cleanup(seconds: float) -> str:
    effects.record("long_cleanup")
    time.sleep(seconds)
    return "cleaned"


@stepstone.workflow
def slow_to_cancel(seconds: float = 120.0) -> str:
    """Cancelled, it runs a cleanup step that takes `seconds`."""
    try:
        return stubborn_step(seconds)
    except stepstone.Cancelled:
        long_cleanup(seconds)
        raise
