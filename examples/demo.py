"""``make demo``: run a workflow locally, kill the process mid-run, resume it.

Uses the embedded Postgres (no database or cluster needed; data under ./.stepstone). The
output of the resumed run shows which steps were replayed from Postgres and which executed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(filter(None, [str(EXAMPLES), os.environ.get("PYTHONPATH")])),
}
ENV.pop("STEPSTONE_DATABASE_URL", None)  # the demo always uses the embedded Postgres
CLI = [sys.executable, "-m", "stepstone"]


def say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def show(*args: str) -> None:
    print(f"$ stepstone {' '.join(args)}", flush=True)
    subprocess.run([*CLI, *args], env=ENV, check=True)


def main() -> int:
    run_id = f"order-42-{uuid.uuid4().hex[:6]}"
    say("start the order pipeline (5 steps); the process will be killed during step 4")
    print(
        f"$ stepstone run shop.workflows:order_pipeline --input '{{\"order_id\": 42}}' "
        f"--run-id {run_id}",
        flush=True,
    )
    proc = subprocess.Popen(
        [
            *CLI,
            "run",
            "shop.workflows:order_pipeline",
            "--input",
            '{"order_id": 42}',
            "--run-id",
            run_id,
        ],
        env=ENV,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        print(line, end="", flush=True)
        if "charge_card" in line and "executed" in line:
            break  # step 3 is recorded; step 4 is starting now
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    say(f"killed the process with SIGKILL (exit {proc.returncode}) while step 4 was running")

    say("what Postgres recorded: steps 1-3, nothing of the interrupted step 4")
    show("steps", run_id)

    say("resume: steps 1-3 are replayed from their records, 4 and 5 execute")
    show("resume", run_id)

    say("the run's history: every step recorded exactly once")
    show("steps", run_id)
    show("status", run_id)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
