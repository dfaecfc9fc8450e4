"""The CLI's commands: each takes parsed arguments, prints, and returns an exit code."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from stepstone import _crash, _signals
from stepstone._engine import Outcome, OutcomeKind
from stepstone._state import ExecuteOptions
from stepstone.cli import _embedded, _kube_commands
from stepstone.cli._format import age, as_json, duration, short, table
from stepstone.cli._progress import Progress
from stepstone.client import Client, local_runner_name
from stepstone.errors import InvalidTransitionError, StepstoneError
from stepstone.store import RunRecord, RunStatus, StepRecord, Store

STALE_HEARTBEAT_SECONDS = 10.0


def _parse_json(text: str, flag: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise StepstoneError(
            f"{flag} is not JSON ({exc.msg} at character {exc.pos}); for example "
            f"{flag} '{{\"order_id\": 42}}'"
        ) from exc


def _database_url(args: argparse.Namespace) -> tuple[str, bool]:
    if args.database_url:
        return args.database_url, False
    return _embedded.url(_embedded.data_dir(args.data_dir)), True


def _client(args: argparse.Namespace) -> Client:
    url, embedded = _database_url(args)
    store = Store.connect(url, retry_seconds=10.0, app="stepstone-cli")
    if embedded:
        store.migrate()  # the CLI owns its embedded database
    else:
        store.verify()
    return Client(store)


def display_status(run: RunRecord) -> str:
    if run.status == RunStatus.RUNNING and run.cancel_requested:
        return "cancelling"
    return str(run.status)


def _run_dict(run: RunRecord) -> dict[str, Any]:
    data = dataclasses.asdict(run)
    data["status"] = display_status(run)
    return data


def _execute(client: Client, run_id: str, args: argparse.Namespace) -> int:
    progress = Progress() if args.output == "table" else None
    options = ExecuteOptions(
        runner=local_runner_name(),
        on_event=progress,
        crash_points=_crash.from_env(os.environ),
    )
    _signals.install()  # `stepstone cancel` from another terminal reaches the running step
    started = time.monotonic()
    outcome = client.execute(run_id, options=options)
    if progress is not None:
        progress.finish()
    _print_outcome(outcome, time.monotonic() - started, args)
    return int(outcome.kind.exit_code)


def _print_outcome(outcome: Outcome, seconds: float, args: argparse.Namespace) -> None:
    if args.output == "json":
        print(as_json(dataclasses.asdict(outcome)))
        return
    counts = f"{outcome.replayed} replayed, {outcome.executed} executed"
    if outcome.kind == OutcomeKind.SUCCEEDED:
        print(f"succeeded in {duration(seconds)} ({counts}); result: {short(outcome.output, 200)}")
    elif outcome.kind in (OutcomeKind.FAILED, OutcomeKind.CANCELLED):
        err = outcome.error or {}
        print(f"{outcome.kind} ({counts}): {err.get('type', '')}: {err.get('message', '')}")
    else:
        print(f"{outcome.kind}: {outcome.message}")


# -- commands ------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    payload = _parse_json(args.input, "--input")
    with _client(args) as client:
        handle = client.start(args.entrypoint, payload, run_id=args.run_id, version=args.version)
        if args.output == "table":
            print(f"run {handle.run_id}  ({args.entrypoint})")
        if args.detach:
            _show_run(client.status(handle.run_id), args)
            return 0
        return _execute(client, handle.run_id, args)


def cmd_runs(args: argparse.Namespace) -> int:
    statuses = [RunStatus(s) for s in args.status] if args.status else None
    with _client(args) as client:
        runs = client.list_runs(status=statuses, limit=args.limit)
    if args.output == "json":
        print(as_json([_run_dict(r) for r in runs]))
        return 0
    if not runs:
        print("no runs yet; start one with: stepstone run module:function --input '{...}'")
        return 0
    rows = [
        (r.run_id, r.workflow, display_status(r), r.completed_steps, r.epoch, age(r.created_at))
        for r in runs
    ]
    print(table(("RUN", "WORKFLOW", "STATUS", "STEPS", "ATTEMPT", "CREATED"), rows))
    return 0


def _show_run(run: RunRecord, args: argparse.Namespace) -> None:
    if args.output == "json":
        print(as_json(_run_dict(run)))
        return
    rows: list[tuple[str, Any]] = [
        ("run", run.run_id),
        ("workflow", f"{run.workflow}  ({run.entrypoint})"),
        ("status", display_status(run)),
        ("attempt", run.epoch),
        ("completed steps", run.completed_steps),
    ]
    if run.current_step is not None:
        rows.append(("current step", f"{run.current_step} {run.current_step_name}"))
    if run.version:
        rows.append(("version", run.version))
    rows += [("created", age(run.created_at)), ("finished", age(run.finished_at))]
    if run.runner:
        rows.append(("runner", f"{run.runner}  (heartbeat {age(run.heartbeat_at)})"))
    if run.wake_at is not None:
        rows.append(("wakes", age(run.wake_at)))
    if run.waiting_for:
        rows.append(("waiting for", run.waiting_for))
    if run.forked_from:
        rows.append(("forked from", f"{run.forked_from} at step {run.fork_step}"))
    if run.parent_run_id:
        rows.append(("parent", f"{run.parent_run_id} step {run.parent_step}"))
    if run.recoveries:
        rows.append(("recoveries", run.recoveries))
    if run.last_failure:
        rows.append(("last failure", short(run.last_failure, 120)))
    if run.error:
        rows.append(("error", f"{run.error.get('type')}: {run.error.get('message')}"))
    if run.status == RunStatus.SUCCEEDED:
        rows.append(("result", short(run.output, 200)))
    print(table(("FIELD", "VALUE"), [(k, v) for k, v in rows if v not in (None, "")]))


def cmd_status(args: argparse.Namespace) -> int:
    with _client(args) as client:
        _show_run(client.status(args.run_id), args)
    return 0


def _step_row(s: StepRecord) -> tuple[Any, ...]:
    if s.status == "failed":
        detail = f"{(s.error or {}).get('type')}: {(s.error or {}).get('message')}"
    else:
        detail = short(s.output)
    flags = " (cleanup)" if s.cleanup else ""
    started = s.started_at.astimezone().strftime("%H:%M:%S")
    return (
        s.step,
        s.name,
        s.kind,
        f"{s.status}{flags}",
        s.attempts,
        started,
        duration(s.duration),
        short(detail, 50),
    )


def cmd_steps(args: argparse.Namespace) -> int:
    with _client(args) as client:
        steps = client.steps(args.run_id)
        run = client.status(args.run_id)
    if args.output == "json":
        print(as_json([dataclasses.asdict(s) for s in steps]))
        return 0
    rows = [_step_row(s) for s in steps]
    last = steps[-1].step if steps else 0
    # the heartbeat publishes the step in flight; older news is already in the records
    if run.status == RunStatus.RUNNING and (run.current_step or 0) > last:
        state = "running" if _runner_alive(run) else "interrupted"
        started = run.current_step_started_at
        when = started.astimezone().strftime("%H:%M:%S") if started else ""
        rows.append((run.current_step, run.current_step_name, "step", state, "", when, "", ""))
    print(table(("STEP", "NAME", "KIND", "STATUS", "TRIES", "STARTED", "DURATION", "OUTPUT"), rows))
    return 0


def cmd_wait(args: argparse.Namespace) -> int:
    with _client(args) as client:
        result = client.wait(args.run_id, timeout=args.timeout)
    print(as_json(result) if args.output == "json" else short(result, 10_000))
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    with _client(args) as client:
        run = client.cancel(args.run_id)
    print(f"run {run.run_id}: {display_status(run)}")
    return 0


def cmd_terminate(args: argparse.Namespace) -> int:
    with _client(args) as client:
        run = client.terminate(args.run_id)
    print(f"run {run.run_id}: {display_status(run)}")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    with _client(args) as client:
        run = client.status(args.run_id)
        force = args.force
        if run.status == RunStatus.RUNNING and not force:
            if _runner_alive(run):
                raise InvalidTransitionError(
                    f"run {run.run_id} is running on {run.runner} (heartbeat "
                    f"{age(run.heartbeat_at)}); cancel it first, or --force to take it over"
                )
            force = True  # its runner died: take it over
        run = client.resume(args.run_id, force=force)
        if args.output == "table":
            print(
                f"run {run.run_id}: {display_status(run)}; resuming from step "
                f"{run.completed_steps + 1}"
            )
        if args.detach:
            return 0
        return _execute(client, run.run_id, args)


def _runner_alive(run: RunRecord) -> bool:
    """Is the recorded runner still there? A local process is asked directly; anything else
    counts as alive while its heartbeat is fresh."""
    host, _, pid = (run.runner or "").rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    beat = run.heartbeat_at
    idle = (datetime.now(UTC) - beat).total_seconds() if beat else float("inf")
    return idle < STALE_HEARTBEAT_SECONDS


def cmd_fork(args: argparse.Namespace) -> int:
    with _client(args) as client:
        run = client.fork(
            args.run_id,
            args.from_step,
            new_run_id=args.new_run_id,
            entrypoint=args.workflow,
            version=args.version,
        )
        if args.output == "table":
            print(
                f"run {run.run_id}: fork of {args.run_id} from step {args.from_step} "
                f"({args.from_step - 1} steps reused)"
            )
        if args.detach:
            return 0
        return _execute(client, run.run_id, args)


def cmd_send_event(args: argparse.Namespace) -> int:
    payload = _parse_json(args.payload, "--payload")
    with _client(args) as client:
        new = client.send_event(args.run_id, args.name, payload, dedup_key=args.key)
    print(f"event {args.name!r} {'sent' if new else 'already sent (same --key)'} to {args.run_id}")
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    if args.action == "stop":
        stopped = _embedded.stop(_embedded.data_dir(args.data_dir))
        print("embedded Postgres stopped" if stopped else "embedded Postgres is not running")
        return 0
    url, _ = _database_url(args)
    if args.action == "url":
        print(url)
        return 0
    store = Store.connect(url, retry_seconds=10.0, app="stepstone-cli")
    try:
        if args.action == "migrate":
            applied = store.migrate()
            print(f"applied migrations {applied}" if applied else "schema is up to date")
        else:
            print(f"schema version {store.verify()}")
    finally:
        store.close()
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": cmd_run,
    "runs": cmd_runs,
    "status": cmd_status,
    "steps": cmd_steps,
    "wait": cmd_wait,
    "cancel": cmd_cancel,
    "terminate": cmd_terminate,
    "resume": cmd_resume,
    "fork": cmd_fork,
    "send-event": cmd_send_event,
    "db": cmd_db,
}


def dispatch(args: argparse.Namespace) -> int:
    if getattr(args, "kube", False):
        if args.command == "steps":
            return _kube_commands.cmd_steps(args, cmd_steps)
        if args.command not in _kube_commands.KUBE_COMMANDS:
            raise StepstoneError(f"`{args.command}` has no cluster form")
        return _kube_commands.KUBE_COMMANDS[args.command](args)
    return COMMANDS[args.command](args)
