"""``@workflow`` and ``@step``: what they record about a function, and finding them again.

A workflow is found by its entrypoint, ``module:function``, which is what a run pins in
Postgres; the decorator only marks the function and names it. A step is wrapped: inside a
running workflow each call gets the next step number and is replayed or executed and recorded
(see ``_calls``); outside one, or inside another step, it is a plain call.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar, overload

from stepstone import _calls
from stepstone._calls import StepOptions
from stepstone.errors import EntrypointError, InputError

P = ParamSpec("P")
R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])

_WORKFLOW_ATTR = "__stepstone_workflow__"
_STEP_ATTR = "__stepstone_step__"


@dataclass(frozen=True)
class WorkflowSpec:
    """What a run needs to know about a workflow function."""

    name: str
    fn: Callable[..., Any]
    entrypoint: str
    is_async: bool


@overload
def workflow(fn: F, /) -> F: ...
@overload
def workflow(*, name: str | None = None) -> Callable[[F], F]: ...
def workflow(fn: F | None = None, /, *, name: str | None = None) -> F | Callable[[F], F]:
    """Mark a function (plain or ``async def``) as a durable workflow.

    Its input comes from the run: a JSON object is passed as keyword arguments (or whole, to
    a function of exactly one parameter that does not fit them), an array as positional
    arguments (or whole, likewise),
    ``null`` as no argument, any other value as the single argument. What it returns must be
    JSON and becomes the run's result.
    """

    def mark(f: F) -> F:
        spec = WorkflowSpec(
            name=name or f.__name__,
            fn=f,
            entrypoint=f"{f.__module__}:{f.__qualname__}",
            is_async=inspect.iscoroutinefunction(f),
        )
        setattr(f, _WORKFLOW_ATTR, spec)
        return f

    return mark(fn) if fn is not None else mark


@overload
def step(fn: Callable[P, R], /) -> Callable[P, R]: ...
@overload
def step(
    *,
    name: str | None = None,
    retries: int = 0,
    backoff: float = 1.0,
    backoff_factor: float = 2.0,
    max_backoff: float = 60.0,
    timeout: float | None = None,
    non_retryable: tuple[type[BaseException], ...] = (),
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...
def step(
    fn: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    retries: int = 0,
    backoff: float = 1.0,
    backoff_factor: float = 2.0,
    max_backoff: float = 60.0,
    timeout: float | None = None,
    non_retryable: tuple[type[BaseException], ...] = (),
) -> Callable[P, R] | Callable[[Callable[P, R]], Callable[P, R]]:
    """Make a function a checkpointed step: its outcome is recorded once and never recomputed.

    ``retries`` extra attempts follow an exception, after ``backoff * backoff_factor**n``
    seconds capped at ``max_backoff``; ``timeout`` bounds each attempt; exceptions of the
    ``non_retryable`` types (or a ``StepError(non_retryable=True)``) fail the step at once.
    What it returns must be JSON; the caller receives the decoded JSON form.
    """
    if retries < 0:
        raise ValueError("retries must be 0 or more")
    if timeout is not None and timeout <= 0:
        raise ValueError("timeout must be positive")

    def wrap(f: Callable[P, R]) -> Callable[P, R]:
        opts = StepOptions(
            name=name or f.__name__,
            retries=retries,
            backoff=backoff,
            backoff_factor=backoff_factor,
            max_backoff=max_backoff,
            timeout=timeout,
            non_retryable=tuple(non_retryable),
        )
        if inspect.iscoroutinefunction(f):
            afn: Callable[..., Awaitable[Any]] = f

            @functools.wraps(f)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                return await _calls.call_async_step(opts, afn, args, kwargs)

            wrapper: Any = async_wrapper
        else:

            @functools.wraps(f)
            def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
                return _calls.call_step(opts, f, args, kwargs)

            wrapper = sync_wrapper
        setattr(wrapper, _STEP_ATTR, opts)
        result: Callable[P, R] = wrapper
        return result

    return wrap(fn) if fn is not None else wrap


def spec_of(obj: Any) -> WorkflowSpec | None:
    spec = getattr(obj, _WORKFLOW_ATTR, None)
    return spec if isinstance(spec, WorkflowSpec) else None


def resolve(entrypoint: str) -> WorkflowSpec:
    """Import ``module:function`` and return its workflow spec, or say what is wrong."""
    module_name, sep, attr = entrypoint.partition(":")
    if not sep or not module_name or not attr:
        raise EntrypointError(f"entrypoint {entrypoint!r} must look like 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise EntrypointError(
            f"cannot import module {module_name!r} of entrypoint {entrypoint!r}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise EntrypointError(
                f"module {module_name!r} has no attribute {attr!r} (entrypoint {entrypoint!r})"
            ) from None
    spec = spec_of(obj)
    if spec is None:
        raise EntrypointError(
            f"{entrypoint} is not a workflow: decorate it with @stepstone.workflow"
        )
    return spec


def spec_for(workflow: str | Callable[..., Any]) -> WorkflowSpec:
    if isinstance(workflow, str):
        return resolve(workflow)
    spec = spec_of(workflow)
    if spec is None:
        raise EntrypointError(
            f"{getattr(workflow, '__qualname__', workflow)!r} is not a workflow: decorate it "
            "with @stepstone.workflow"
        )
    return spec


def bind_input(spec: WorkflowSpec, value: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Turn a run's JSON input into call arguments, or explain the mismatch."""
    sig = inspect.signature(spec.fn)
    whole = len(sig.parameters) == 1  # a one-parameter workflow may take the input whole
    attempts: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    if value is None:
        attempts.append(((), {}))
    elif isinstance(value, dict | list):
        spread = ((), dict(value)) if isinstance(value, dict) else (tuple(value), {})
        attempts.append(spread)
        if whole:
            attempts.append(((value,), {}))
    else:
        attempts.append(((value,), {}))
    first_error: TypeError | None = None
    for args, kwargs in attempts:
        try:
            sig.bind(*args, **kwargs)
        except TypeError as exc:
            first_error = first_error or exc
            continue
        return args, kwargs
    shown = repr(value)
    if len(shown) > 200:
        shown = shown[:200] + "..."
    params = ", ".join(
        p.name if p.default is inspect.Parameter.empty else f"{p.name}={p.default!r}"
        for p in sig.parameters.values()
    )
    raise InputError(
        f"input {shown} does not fit workflow {spec.name}({params}): {first_error}; a JSON "
        "object is passed as keyword arguments, an array as positional arguments"
    )
