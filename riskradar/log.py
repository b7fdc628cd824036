"""Logging: one format for every job (time, level, job and run id, message), levels chosen by
`--quiet` / `--verbose`, and progress for long steps.

Jobs log through the standard `logging` module (`log = logging.getLogger(__name__)`); the
`riskradar` command and each job's `main` call `configure`. Lines go to standard output,
as the jobs' messages always did:

    2026-11-30 10:41:02 INFO  train[3f2a9c1b0d4e] fit 3/7 for robbery_assault, 2 min elapsed

`step` times a named step, logs its start and end and keeps its duration in the run's audit
record; `Progress` counts the parts of a long step and, between them, says every `every_s`
seconds that it is still at work, so a long fit is never silent for more than a minute.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

FORMAT = "%(asctime)s %(levelname)-5s %(job)s[%(run_id)s] %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
PACKAGES = ("riskradar", "intake", "features", "models", "reports", "jobs", "benchmarks")
# spark-submit runs jobs/<job>.py as a script: the job module's own logger is "__main__".
SCRIPT = "__main__"

_job: contextvars.ContextVar[str] = contextvars.ContextVar("riskradar_job", default="riskradar")
_run_id: contextvars.ContextVar[str] = contextvars.ContextVar("riskradar_run_id", default="-")
_timings: contextvars.ContextVar[dict[str, float] | None] = contextvars.ContextVar(
    "riskradar_timings", default=None
)

log = logging.getLogger(__name__)


class _Context(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.job = _job.get()
        record.run_id = _run_id.get()
        return True


class _Stdout(logging.StreamHandler):
    """Writes to whatever sys.stdout is when a line is logged (a test's capture, a redirect)."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stdout

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler sets it; the property always reads sys.stdout
        pass


_HANDLER = _Stdout()
_HANDLER.setFormatter(logging.Formatter(FORMAT, DATE_FORMAT))
_HANDLER.addFilter(_Context())


def level_of(quiet: bool = False, verbose: bool = False) -> int:
    return logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO


def configure(level: int = logging.INFO) -> None:
    """Send the project's log lines to standard output in FORMAT at `level`; idempotent (one
    handler, however often a job's main runs in a process). Other libraries' loggers keep their
    own configuration. A job run as a script (spark-submit) logs as "__main__": configured too."""
    for name in (*PACKAGES, SCRIPT):
        logger = logging.getLogger(name)
        logger.setLevel(level)
        if _HANDLER not in logger.handlers:
            logger.addHandler(_HANDLER)
        logger.propagate = False


@contextmanager
def run_context(job: str, run_id: str, timings: dict[str, float] | None = None) -> Iterator[None]:
    """Log lines inside carry `job` and `run_id`; `step` timings go into `timings`."""
    tokens = (_job.set(job), _run_id.set(run_id), _timings.set(timings))
    try:
        yield
    finally:
        _timings.reset(tokens[2])
        _run_id.reset(tokens[1])
        _job.reset(tokens[0])


def elapsed(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


HEARTBEAT_S = 50.0  # a long step says at least this often that it is still at work


@contextmanager
def step(
    name: str, logger: logging.Logger | None = None, *, every_s: float | None = HEARTBEAT_S
) -> Iterator[None]:
    """Log the start and end of a named step and keep its duration (s) in the run's timings;
    while it runs, say every `every_s` seconds that it is still at work (None: a Progress around
    it says so already)."""
    out = logger or log
    out.info("%s ...", name)
    started = time.monotonic()
    stop = threading.Event()
    context = contextvars.copy_context()

    def heartbeat() -> None:
        while every_s is not None and not stop.wait(every_s):
            context.run(out.info, "%s: still at work, %s elapsed", name, elapsed(time.monotonic() - started))

    timer = threading.Thread(target=heartbeat, name=f"step {name}", daemon=True)
    timer.start()
    try:
        yield
    finally:
        stop.set()
        timer.join()
        took = time.monotonic() - started
        timings = _timings.get()
        if timings is not None:
            timings[name] = round(timings.get(name, 0.0) + took, 3)
        out.info("%s: done in %s", name, elapsed(took))


class Progress:
    """Progress through `total` parts of a long step: `advance(what)` logs "fit 3/7 for x, 2 min
    elapsed"; meanwhile a timer says every `every_s` seconds that the step is still at work.
    Use as a context manager (the timer stops on exit)."""

    def __init__(
        self,
        what: str,
        total: int,
        *,
        logger: logging.Logger | None = None,
        every_s: float = 50,
        log_every: int = 1,
    ):
        self.what, self.total, self.done, self.log_every = what, total, 0, log_every
        self.out = logger or log
        self.every_s = every_s
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._context = contextvars.copy_context()
        self._timer = threading.Thread(target=self._heartbeat, name=f"progress {what}", daemon=True)

    def __enter__(self) -> Progress:
        self._timer.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._timer.join()

    def _elapsed(self) -> str:
        return elapsed(time.monotonic() - self.started)

    def advance(self, detail: str = "") -> None:
        """One more part done: logged every `log_every` parts, and at the last one."""
        self.done += 1
        if self.done % self.log_every and self.done != self.total:
            return
        suffix = f" {detail}" if detail else ""
        self.out.info("%s %d/%d%s, %s elapsed", self.what, self.done, self.total, suffix, self._elapsed())

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.every_s):
            if self.done >= self.total:
                continue  # every part is done: "still at work on 2/2" would say one is not
            self._context.run(
                self.out.info,
                "%s: still at work on %d/%d, %s elapsed",
                self.what,
                min(self.done + 1, self.total),
                self.total,
                self._elapsed(),
            )
