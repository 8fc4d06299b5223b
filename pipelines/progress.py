"""Progress of a `billing` command's run: each step and check as it starts and ends, with the
elapsed time, and the progress lines steps log (files, rows, rates), on standard error.

On a terminal a step's progress lines replace one another on one line until the step ends; in a
log (standard error not a terminal) every line stays, plainly. The summary tables the commands
print go to standard output, so `billing run ... > summary.txt` keeps them apart.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

import dagster as dg

# Steps mark a line as progress (replaceable on a terminal) by starting it with this.
PROGRESS_PREFIX = "progress: "


def log_progress(log: logging.Logger | dg.DagsterLogManager, message: str) -> None:
    """Log one progress line of a long step (rows done, rate): shown live by `billing`
    commands, kept in the run's log like any message."""
    log.info(PROGRESS_PREFIX + message)


def step_label(step_key: str) -> str:
    """`billing__usage_quantities` as the asset key users see, `billing/usage_quantities`."""
    return step_key.replace("__", "/")


class ProgressPrinter(logging.Handler):
    """Turns a run's Dagster events and step messages into progress lines."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(level=logging.DEBUG)
        self.stream = stream
        self.live = stream.isatty()
        self.started = time.monotonic()
        self.step_started: dict[str, float] = {}
        self.check_of_step: dict[str, tuple[str, bool]] = {}
        self.open_line = False

    def _write(self, text: str, *, replaceable: bool = False) -> None:
        stamp = f"[{time.monotonic() - self.started:7.1f} s] "
        if self.live:
            prefix = "\r\x1b[2K" if self.open_line else ""
            end = "" if replaceable else "\n"
            self.stream.write(prefix + stamp + text + end)
            self.open_line = replaceable
        else:
            self.stream.write(stamp + text + "\n")
        self.stream.flush()

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None)
        if not meta:
            return
        step = meta.get("step_key")
        event = meta.get("dagster_event")
        if event is None:
            message = str(meta.get("orig_message", ""))
            if step and message.startswith(PROGRESS_PREFIX) and record.levelno >= logging.INFO:
                self._write(f"{step_label(step)}: {message[len(PROGRESS_PREFIX):]}",
                            replaceable=True)
            elif step and record.levelno >= logging.WARNING:
                self._write(f"{step_label(step)}: {message}")
            return
        kind = event.event_type_value
        if kind == "STEP_START" and step:
            self.step_started[step] = time.monotonic()
            self._write(f"{step_label(step)}: started", replaceable=True)
        elif kind == "ASSET_CHECK_EVALUATION" and step:
            evaluation = event.event_specific_data
            self.check_of_step[step] = (getattr(evaluation, "check_name", "check"),
                                        bool(getattr(evaluation, "passed", False)))
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED") and step:
            took = time.monotonic() - self.step_started.get(step, time.monotonic())
            if step in self.check_of_step:
                name, passed = self.check_of_step[step]
                self._write(f"check {name}: {'passed' if passed else 'FAILED'} in {took:.1f} s")
                return
            outcome = {"STEP_SUCCESS": "done", "STEP_FAILURE": "FAILED",
                       "STEP_SKIPPED": "skipped"}[kind]
            self._write(f"{step_label(step)}: {outcome} in {took:.1f} s")


@dg.logger(description="Progress lines of a `billing` command's run on standard error.")
def progress_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    logger = logging.getLogger(f"billing.progress.{init_context.run_id}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.handlers = [ProgressPrinter(sys.stderr)]
    return logger
