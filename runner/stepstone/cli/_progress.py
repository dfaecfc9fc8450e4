"""Live progress of a run executing in the CLI: one line per step while that stays readable,
then a summary line per second for long runs (thousands of steps)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from stepstone._state import StepEvent
from stepstone.cli._format import duration

_LINES_BEFORE_SUMMARY = 40


class Progress:
    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out
        self.replayed = 0
        self.executed = 0
        self.lines = 0
        self.last_summary = time.monotonic()
        self.summarising = False

    def __call__(self, event: StepEvent) -> None:
        if event.kind == "replayed":
            self.replayed += 1
            self._line(f"  step {event.step:<4} {event.name:<28} replayed   (recorded earlier)")
        elif event.kind == "succeeded":
            self.executed += 1
            self._line(
                f"  step {event.step:<4} {event.name:<28} executed   {duration(event.duration)}"
                + (f"  after {event.attempt} tries" if event.attempt > 1 else "")
            )
        elif event.kind == "failed":
            self._line(
                f"  step {event.step:<4} {event.name:<28} FAILED     {event.error}", force=True
            )
        elif event.kind == "retrying":
            self._line(
                f"  step {event.step:<4} {event.name:<28} retrying   try {event.attempt} "
                f"failed: {event.error}",
                force=True,
            )
        elif event.kind == "sleeping":
            self._line(
                f"  step {event.step:<4} {event.name:<28} sleeping   {duration(event.duration)}",
                force=True,
            )
        elif event.kind == "waiting":
            self._line(
                f"  step {event.step:<4} {event.name:<28} waiting    for the event", force=True
            )

    def _line(self, text: str, *, force: bool = False) -> None:
        if self.lines < _LINES_BEFORE_SUMMARY or force:
            self.lines += 1
            print(text, file=self.out, flush=True)
            return
        self.summarising = True
        now = time.monotonic()
        if now - self.last_summary >= 1.0:
            self.last_summary = now
            print(
                f"  ... {self.replayed + self.executed} steps so far "
                f"({self.replayed} replayed, {self.executed} executed)",
                file=self.out,
                flush=True,
            )

    def finish(self) -> None:
        if self.summarising:
            print(
                f"  ... {self.replayed + self.executed} steps in all "
                f"({self.replayed} replayed, {self.executed} executed)",
                file=self.out,
                flush=True,
            )
