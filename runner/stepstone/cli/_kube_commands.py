"""The CLI's verbs in cluster form (``--kube``): they act on WorkflowRuns by name."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from stepstone.cli._format import age, as_json, short, table
from stepstone.cli._kube import (
    API_VERSION,
    Kubectl,
    new_name,
    resume_patch,
    run_manifest,
    wait_finished,
)
from stepstone.errors import StepstoneError


def _kubectl(args: argparse.Namespace) -> Kubectl:
    return Kubectl(args.namespace, args.kubeconfig)


def _parse(text: str, flag: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise StepstoneError(
            f"{flag} is not JSON ({exc.msg}); for example {flag} '{{\"order_id\": 42}}'"
        ) from exc


def _created(when: str | None) -> str:
    if not when:
        return ""
    return age(datetime.fromisoformat(when.replace("Z", "+00:00")).astimezone(UTC))


def _summary(run: dict[str, Any]) -> tuple[Any, ...]:
    status = run.get("status") or {}
    step = status.get("currentStep") or {}
    return (
        run["metadata"]["name"],
        status.get("phase", "Pending"),
        f"{step.get('number', '')} {step.get('name', '')}".strip(),
        status.get("completedSteps", 0),
        status.get("attempt", 0),
        status.get("recoveries", 0),
        _created(run["metadata"].get("creationTimestamp")),
    )


def cmd_run(args: argparse.Namespace) -> int:
    kubectl = _kubectl(args)
    name = args.run_id or new_name(args.entrypoint)
    payload = _parse(args.input, "--input")
    print(kubectl.create(run_manifest(name, args.entrypoint, payload)))
    if args.detach:
        return 0
    return _follow(kubectl, name, args)


def _follow(kubectl: Kubectl, name: str, args: argparse.Namespace) -> int:
    run = wait_finished(kubectl, name, None)
    status = run.get("status") or {}
    if args.output == "json":
        print(as_json(status))
    else:
        print(
            f"{name}: {status.get('phase')} after {status.get('completedSteps', 0)} steps; "
            + (
                f"result: {short(status.get('result'), 200)}"
                if "result" in status
                else f"{(status.get('error') or {}).get('message', '')}"
            )
        )
    return 0 if status.get("phase") == "Succeeded" else 1


def cmd_runs(args: argparse.Namespace) -> int:
    runs = _kubectl(args).runs()
    if args.output == "json":
        print(as_json(runs))
        return 0
    print(
        table(
            ("NAME", "PHASE", "STEP", "DONE", "ATTEMPT", "RECOVERIES", "AGE"),
            [_summary(r) for r in runs],
        )
    )
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    run = _kubectl(args).get_run(args.run_id)
    status = run.get("status") or {}
    if args.output == "json":
        print(as_json(status))
        return 0
    rows: list[tuple[str, Any]] = [
        ("workflowrun", run["metadata"]["name"]),
        ("run id", status.get("runId")),
        ("phase", status.get("phase")),
        ("desired state", (run.get("spec") or {}).get("state", "Running")),
        ("attempt", status.get("attempt")),
        ("recoveries", status.get("recoveries")),
        ("completed steps", status.get("completedSteps")),
        ("pod", status.get("podName")),
    ]
    step = status.get("currentStep")
    if step:
        rows.append(("current step", f"{step.get('number')} {step.get('name')}"))
    failure = status.get("lastFailure")
    if failure:
        rows.append(("last failure", f"{failure.get('reason')}: {failure.get('message')}"))
    if status.get("error"):
        rows.append(("error", f"{status['error'].get('type')}: {status['error'].get('message')}"))
    if "result" in status:
        rows.append(("result", short(status["result"], 200)))
    for cond in status.get("conditions") or []:
        if cond.get("status") != "True" or cond.get("type") != "Accepted":
            rows.append(
                (
                    cond["type"],
                    f"{cond['status']} {cond.get('reason')}: {cond.get('message', '')}".strip(),
                )
            )
    print(table(("FIELD", "VALUE"), [(k, v) for k, v in rows if v not in (None, "")]))
    return 0


def cmd_steps(args: argparse.Namespace, local_steps: Callable[[argparse.Namespace], int]) -> int:
    run_id = (_kubectl(args).get_run(args.run_id).get("status") or {}).get("runId")
    if not run_id:
        raise StepstoneError(f"WorkflowRun {args.run_id} has not started yet (no run id)")
    if not args.database_url:
        raise StepstoneError(
            "steps are recorded in Postgres: give --database-url (or "
            "STEPSTONE_DATABASE_URL) of the stepstone database"
        )
    args.run_id = run_id
    return local_steps(args)


def _patched(args: argparse.Namespace, spec: dict[str, Any]) -> int:
    print(_kubectl(args).patch_spec(args.run_id, spec))
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    return _patched(args, {"state": "Cancelled"})


def cmd_terminate(args: argparse.Namespace) -> int:
    return _patched(args, {"state": "Terminated"})


def cmd_resume(args: argparse.Namespace) -> int:
    kubectl = _kubectl(args)
    patch = resume_patch(kubectl.get_run(args.run_id))
    print(kubectl.patch_spec(args.run_id, patch))
    return 0 if args.detach else _follow(kubectl, args.run_id, args)


def cmd_fork(args: argparse.Namespace) -> int:
    kubectl = _kubectl(args)
    source = kubectl.get_run(args.run_id)
    workflow = args.workflow or source["spec"]["workflowRef"]["name"]
    name = args.new_run_id or new_name(f"{args.run_id}-fork")
    fork_from = {"run": args.run_id, "step": args.from_step}
    print(
        kubectl.create(run_manifest(name, workflow, source["spec"].get("input") or {}, fork_from))
    )
    return 0 if args.detach else _follow(kubectl, name, args)


def cmd_wait(args: argparse.Namespace) -> int:
    return _follow(_kubectl(args), args.run_id, args)


def cmd_send_event(args: argparse.Namespace) -> int:
    """Create a WorkflowEvent: the operator stores it for the run exactly once."""
    payload = _parse(args.payload, "--payload")
    if payload is not None and not isinstance(payload, dict):
        raise StepstoneError("in a cluster, --payload must be a JSON object")
    slug = re.sub(r"[^a-z0-9-]+", "-", f"{args.run_id}-{args.name}".lower()).strip("-")
    spec: dict[str, Any] = {"runRef": {"name": args.run_id}, "event": args.name}
    if payload is not None:
        spec["payload"] = payload
    if args.key:
        spec["key"] = args.key
    manifest = {
        "apiVersion": API_VERSION,
        "kind": "WorkflowEvent",
        "metadata": {"name": new_name(slug)},
        "spec": spec,
    }
    print(_kubectl(args).create(manifest))
    return 0


KUBE_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": cmd_run,
    "runs": cmd_runs,
    "status": cmd_status,
    "wait": cmd_wait,
    "cancel": cmd_cancel,
    "terminate": cmd_terminate,
    "resume": cmd_resume,
    "fork": cmd_fork,
    "send-event": cmd_send_event,
}
