"""Pure pieces, checked with tables of cases: serialisation, input binding, retry delays,
crash-point parsing, CLI formatting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import stepstone
from stepstone import _crash
from stepstone._calls import StepOptions, _retry_delay
from stepstone._serde import dumps, encode_error
from stepstone._workflows import bind_input, spec_for
from stepstone.cli._format import age, duration, table
from stepstone.errors import InputError, SerializationError, StepError


@stepstone.workflow
def one(order: dict[str, Any]) -> None: ...


@stepstone.workflow
def two(a: int, b: int = 0) -> None: ...


@stepstone.workflow
def none() -> None: ...


@pytest.mark.parametrize(
    ("fn", "value", "expected"),
    [
        (two, {"a": 1}, ((), {"a": 1})),
        (two, [1, 2], ((1, 2), {})),
        (two, 5, ((5,), {})),
        (one, {"id": 1}, (({"id": 1},), {})),  # one parameter: the object whole
        (one, [1], ((1,), {})),  # an array spreads when it fits
        (one, [1, 2], (([1, 2],), {})),  # and is passed whole when it does not
        (none, None, ((), {})),
    ],
)
def test_bind_input(fn: Any, value: Any, expected: Any) -> None:
    assert bind_input(spec_for(fn), value) == expected


@pytest.mark.parametrize(("fn", "value"), [(two, {"c": 1}), (none, {"a": 1}), (two, [1, 2, 3])])
def test_bind_input_explains_mismatches(fn: Any, value: Any) -> None:
    with pytest.raises(InputError, match="does not fit workflow"):
        bind_input(spec_for(fn), value)


@pytest.mark.parametrize("value", [float("nan"), {1, 2}, object(), b"bytes"])
def test_dumps_is_strict_and_says_what(value: Any) -> None:
    with pytest.raises(SerializationError, match="the thing is not JSON-serialisable"):
        dumps(value, what="the thing")


def test_encoded_errors_carry_type_message_and_retry_data() -> None:
    err = encode_error(StepError("nope", non_retryable=True))
    assert err["type"] == "stepstone.errors.StepError"
    assert (err["message"], err["non_retryable"]) == ("nope", True)
    assert encode_error(KeyError("k"))["type"] == "KeyError"


OPTS = StepOptions(
    name="s", retries=3, backoff=1.0, backoff_factor=2.0, max_backoff=3.0, non_retryable=(KeyError,)
)


@pytest.mark.parametrize(
    ("exc", "attempt", "delay"),
    [
        (ValueError(), 1, 1.0),
        (ValueError(), 2, 2.0),
        (ValueError(), 3, 3.0),  # capped
        (ValueError(), 4, None),  # retries exhausted
        (KeyError(), 1, None),  # non-retryable type
        (StepError("x", non_retryable=True), 1, None),
        (StepError("x", next_retry_delay=0.5), 1, 0.5),
        (SerializationError("x"), 1, None),
    ],
)
def test_retry_delays(exc: BaseException, attempt: int, delay: float | None) -> None:
    assert _retry_delay(OPTS, exc, attempt) == delay


def test_crash_points_parse_and_reject_unknown_names() -> None:
    assert _crash.parse("after_step_body:3, before_step:1") == {
        ("after_step_body", 3),
        ("before_step", 1),
    }
    assert _crash.parse(None) == frozenset()
    with pytest.raises(ValueError, match="unknown crash point 'nowhere'"):
        _crash.parse("nowhere:1")


def test_step_options_are_validated() -> None:
    with pytest.raises(ValueError, match="retries"):
        stepstone.step(retries=-1)
    with pytest.raises(ValueError, match="timeout"):
        stepstone.step(timeout=0)


def test_formatting() -> None:
    assert table(("A", "BB"), [("x", 1), ("long", None)]).splitlines() == [
        "A     BB",
        "x     1",
        "long",
    ]
    assert [duration(s) for s in (0.0123, 2.5, 75, 7300)] == ["12ms", "2.50s", "1m15s", "2h01m"]
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert age(now - timedelta(seconds=3), now) == "3.00s ago"
    assert age(now + timedelta(seconds=90), now) == "in 1m30s"
