"""The ``stepstone`` command line.

Without ``--database-url`` (or ``STEPSTONE_DATABASE_URL``) it uses an embedded Postgres kept
under ``.stepstone/`` (see ``_embedded``). ``run``, ``resume`` and ``fork`` execute the run in
this process, printing each step as replayed or executed; ``--detach`` only records it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from stepstone.cli import _commands
from stepstone.errors import StepstoneError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stepstone",
        description="Durable Python workflows: run them locally, inspect and steer runs.",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("STEPSTONE_DATABASE_URL"),
        help="Postgres URL (default: $STEPSTONE_DATABASE_URL, else an embedded Postgres)",
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help="folder of the embedded Postgres (default: $STEPSTONE_DATA_DIR or ./.stepstone)",
    )
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table")
    cluster = parser.add_argument_group(
        "cluster form", "act on WorkflowRuns by name through kubectl (RUN is a WorkflowRun name)"
    )
    cluster.add_argument("-k", "--kube", action="store_true", help="use the cluster forms")
    cluster.add_argument("-n", "--namespace", help="namespace of the WorkflowRuns")
    cluster.add_argument("--kubeconfig", help="kubeconfig for kubectl")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="start a workflow and execute it here")
    run.add_argument(
        "entrypoint", help="module:function of a @workflow (with --kube: a Workflow's name)"
    )
    run.add_argument("--input", default="null", help="the input, as JSON (default: null)")
    run.add_argument("--run-id", help="a run id of your choice (idempotent)")
    run.add_argument("--version", help="an application version to record")
    run.add_argument("--detach", action="store_true", help="record the run, do not execute it")

    runs = sub.add_parser("runs", help="list runs")
    runs.add_argument("--status", action="append", help="only runs in this status (repeatable)")
    runs.add_argument("--limit", type=int, default=50)

    for name, text in (("status", "show a run"), ("steps", "list a run's recorded steps")):
        p = sub.add_parser(name, help=text)
        p.add_argument("run_id")

    wait = sub.add_parser("wait", help="wait for a run to end and print its result")
    wait.add_argument("run_id")
    wait.add_argument("--timeout", type=float)

    cancel = sub.add_parser("cancel", help="cancel a run at its next step boundary")
    cancel.add_argument("run_id")
    term = sub.add_parser("terminate", help="stop a run now; nothing more is recorded")
    term.add_argument("run_id")

    resume = sub.add_parser("resume", help="resume a cancelled, terminated, failed or crashed run")
    resume.add_argument("run_id")
    resume.add_argument(
        "--force",
        action="store_true",
        help="take over a run recorded as running even if its heartbeat is fresh",
    )
    resume.add_argument("--detach", action="store_true", help="do not execute it here")

    fork = sub.add_parser("fork", help="a new run reusing a run's steps before --from-step")
    fork.add_argument("run_id")
    fork.add_argument("--from-step", type=int, required=True)
    fork.add_argument(
        "--workflow",
        help="module:function to run the fork on (with --kube: a Workflow); default: the same",
    )
    fork.add_argument("--version", help="an application version to record for the fork")
    fork.add_argument("--run-id", dest="new_run_id", help="the fork's run id")
    fork.add_argument("--detach", action="store_true", help="do not execute it here")

    event = sub.add_parser("send-event", help="send an event to a run")
    event.add_argument("run_id")
    event.add_argument("name")
    event.add_argument("--payload", default="null", help="the payload, as JSON")
    event.add_argument("--key", help="a deduplication key: the same key is delivered once")

    db = sub.add_parser("db", help="the database: migrate, verify, url, stop")
    db.add_argument("action", choices=("migrate", "verify", "url", "stop"))

    sub.add_parser("runner", help="the pod entrypoint (configured by environment)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "runner":
        from stepstone.runner import main as runner_main

        return runner_main()
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # find workflow modules as `python -m` would
    try:
        return _commands.dispatch(args)
    except StepstoneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the run can be resumed with `stepstone resume`", file=sys.stderr)
        return 130
