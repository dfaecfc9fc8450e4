"""`helm test`: wait until the hello WorkflowRun created by the chart's test hooks succeeds.

Runs in the stepstone image (which has the Kubernetes client), under a ServiceAccount allowed
only to read WorkflowRuns in its namespace. Exits 0 when the run is Succeeded, 1 when it ends
otherwise or the time is up, printing the run's status either way.
"""

import json
import os
import sys
import time

from kubernetes import client, config

TERMINAL = {"Failed", "Cancelled", "Terminated"}


def main() -> int:
    config.load_incluster_config()
    api = client.CustomObjectsApi()
    namespace, name = os.environ["NAMESPACE"], os.environ["RUN_NAME"]
    deadline = time.monotonic() + float(os.environ.get("TIMEOUT_SECONDS", "180"))
    status: dict = {}
    print(f"waiting for WorkflowRun {namespace}/{name} to succeed", flush=True)
    while time.monotonic() < deadline:
        run = api.get_namespaced_custom_object(
            "stepstone.io", "v1alpha1", namespace, "workflowruns", name
        )
        status = run.get("status") or {}
        phase = status.get("phase")
        if phase == "Succeeded":
            print(f"WorkflowRun {name} succeeded: {json.dumps(status.get('result'))}")
            return 0
        if phase in TERMINAL:
            break
        time.sleep(1)
    else:
        print(f"timed out: WorkflowRun {name} is {status.get('phase') or 'not picked up'}")
        print("is the operator running, and does it serve this namespace?")
    print(json.dumps(status, indent=1))
    return 1


if __name__ == "__main__":
    sys.exit(main())
