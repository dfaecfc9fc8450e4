"""The cluster forms of the CLI's verbs: ``stepstone --kube cancel order-42``.

They change WorkflowRuns exactly as the README's ``kubectl patch`` commands do (the operator
acts on the spec), and read steps from Postgres by the run id in the WorkflowRun's status. They
drive ``kubectl`` rather than a Kubernetes client library: the SDK stays free of Kubernetes
dependencies, and the CLI uses the same credentials and context as the user's kubectl.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from typing import Any

from stepstone.errors import InvalidTransitionError, StepstoneError

API_VERSION = "stepstone.io/v1alpha1"
FINISHED = ("Succeeded", "Failed", "Cancelled", "Terminated")


class Kubectl:
    def __init__(self, namespace: str | None, kubeconfig: str | None) -> None:
        binary = os.environ.get("STEPSTONE_KUBECTL") or shutil.which("kubectl")
        if not binary:
            raise StepstoneError("--kube needs kubectl on PATH (or STEPSTONE_KUBECTL)")
        self.base = [binary]
        if kubeconfig:
            self.base += ["--kubeconfig", kubeconfig]
        if namespace:
            self.base += ["--namespace", namespace]

    def run(self, *args: str, stdin: str | None = None) -> str:
        result = subprocess.run(
            [*self.base, *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if result.returncode != 0:
            raise StepstoneError(result.stderr.strip() or f"kubectl {' '.join(args)} failed")
        return result.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-o", "json"))

    def get_run(self, name: str) -> dict[str, Any]:
        run: dict[str, Any] = self.json("get", "workflowrun", name)
        return run

    def runs(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.json("get", "workflowruns")["items"]
        return items

    def patch_spec(self, name: str, spec: dict[str, Any]) -> str:
        return self.run(
            "patch", "workflowrun", name, "--type", "merge", "-p", json.dumps({"spec": spec})
        ).strip()

    def create(self, manifest: dict[str, Any]) -> str:
        return self.run("create", "-f", "-", stdin=json.dumps(manifest)).strip()


def run_manifest(
    name: str, workflow: str, run_input: Any, fork_from: dict[str, Any] | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {"workflowRef": {"name": workflow}}
    if run_input is not None:
        if not isinstance(run_input, dict):
            raise StepstoneError(
                "in a cluster, --input must be a JSON object (its keys are "
                "the workflow's keyword arguments)"
            )
        spec["input"] = run_input
    if fork_from is not None:
        spec["forkFrom"] = fork_from
    return {
        "apiVersion": API_VERSION,
        "kind": "WorkflowRun",
        "metadata": {"name": name},
        "spec": spec,
    }


def new_name(base: str) -> str:
    return f"{base[:48]}-{uuid.uuid4().hex[:6]}"


def resume_patch(run: dict[str, Any]) -> dict[str, Any]:
    """What resumes a run in its phase: raise retry for Failed, state Running otherwise."""
    phase = (run.get("status") or {}).get("phase")
    spec = run.get("spec") or {}
    if phase == "Failed":
        return {"retry": int(spec.get("retry", 0)) + 1, "state": "Running"}
    if phase in ("Cancelled", "Terminated", "Cancelling") or spec.get("state") != "Running":
        return {"state": "Running"}
    raise InvalidTransitionError(
        f"WorkflowRun {run['metadata']['name']} is {phase}; only Failed, Cancelled or "
        "Terminated runs can be resumed (fork a Succeeded one)"
    )


def wait_finished(kubectl: Kubectl, name: str, timeout: float | None) -> dict[str, Any]:
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        run = kubectl.get_run(name)
        if (run.get("status") or {}).get("phase") in FINISHED:
            return run
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(
                f"WorkflowRun {name} still "
                f"{(run.get('status') or {}).get('phase')} after {timeout} s"
            )
        time.sleep(0.5)
