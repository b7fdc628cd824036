"""The `riskradar` command: one sub-command per pipeline step.

riskradar ingest --all
riskradar validate --all
riskradar demo              # the whole pipeline on the bundled sample, embedded defaults
"""

from __future__ import annotations

import errno
import importlib
import sys
from collections.abc import Sequence

from riskradar.errors import RiskradarError

# sub-command -> module with main(argv)
COMMANDS = {
    "ingest": ("jobs.ingest", "delivered files -> bronze (lineage, personal data pseudonymised)"),
    "validate": ("jobs.validate", "bronze -> silver | quarantine, behind the expectation gate"),
    "batches": ("jobs.batches", "list a feed's batches; discard or retry one that was set aside"),
    "rekey": ("jobs.rekey", "move the lake to a new pseudonymisation key, re-deriving it from landing"),
    "retention": (
        "jobs.retention",
        "remove every row older than its contract's retention_days; keep counts of the events (--dry-run)",
    ),
    "build-features": ("jobs.build_features", "silver -> gold/features, the cell x week panel"),
    "train": ("jobs.train", "backtest candidates vs baselines, log to MLflow, register, gate the champion"),
    "score": ("jobs.score", "the champion's expected counts for every study cell of a week -> gold/scores"),
    "export": ("jobs.export", "a scored week as CSV, GeoJSON and an offline HTML map report"),
    "scores": ("jobs.show_scores", "print the ranked cells of a scored week"),
    "share": ("jobs.share", "each partner's package of a scored week, as its agreement allows -> outbox"),
    "disclosures": (
        "jobs.disclosures",
        "the register of disclosures: who received what, when, on which basis",
    ),
    "evaluate-scores": ("jobs.evaluate_scores", "compare published scores with what happened, log to MLflow"),
    "register": (
        "jobs.register",
        "processing: the register of processing per feed; algorithm --target T: the Algoritmeregister entry",
    ),
    "airflow": ("riskradar.standalone", "Airflow standalone on 127.0.0.1 with the project's DAGs and config"),
    "synth": ("benchmarks.synth", "write a synthetic city's partner files (seeded, chunked) for scale tests"),
    "synth-country": (
        "benchmarks.synth_country",
        "write a synthetic country's partner files: the area grows with --cells (seeded, chunked)",
    ),
    "demo": ("jobs.demo", "run the pipeline end to end on the bundled Chicago sample"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: riskradar <command> [options]   (riskradar <command> --help)", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"riskradar: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    try:
        module.main(rest)
    except RiskradarError as exc:
        print(f"riskradar {name}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"riskradar {name}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - one line for an operational fault; --verbose shows all
        if "--verbose" in rest:
            raise
        print(
            f"riskradar {name}: error: {describe_fault(exc)} (--verbose shows the traceback)", file=sys.stderr
        )
        return 1
    return 0


_ERRNO = {
    errno.ENOSPC: "no space left on the disk of {path}",
    errno.EDQUOT: "the disk quota is used up at {path}",
    errno.EROFS: "{path} is on a read-only file system",
    errno.EACCES: "permission denied: {path}",
    errno.EPERM: "not permitted: {path}",
    errno.ENOTDIR: "{path}: a part of this path is a file, not a folder",
    errno.EISDIR: "{path} is a folder where a file was expected",
}
# What a message from Spark, MLflow or SQLite says -> what it means (their errors wrap the cause).
_MESSAGES = [
    ("No space left on device", "no space left on a disk the job writes to"),
    ("Read-only file system", "a folder the job writes to is on a read-only file system"),
    (
        "database is locked",
        "the MLflow store is locked by another run (a training at the same time?): "
        "try again when it has finished",
    ),
    (
        "file is not a database",
        "the MLflow store is corrupt (not an SQLite database): restore it from a backup",
    ),
    ("database disk image is malformed", "the MLflow store is corrupt: restore it from a backup"),
]


def describe_fault(exc: BaseException) -> str:
    """One line that names an operational fault's cause and path (disk full, a read-only lake, a
    locked or corrupt MLflow store), or the error's own first line."""
    for cause in _chain(exc):
        if isinstance(cause, OSError) and cause.errno in _ERRNO:
            path = cause.filename or "a file the job writes"
            return _ERRNO[cause.errno].format(path=path)
    text = " ".join(str(c) for c in _chain(exc))
    for needle, meaning in _MESSAGES:
        if needle in text:
            return meaning
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _chain(exc: BaseException) -> list[BaseException]:
    out, seen = [], set()
    while exc is not None and id(exc) not in seen:
        out.append(exc)
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return out


if __name__ == "__main__":
    sys.exit(main())
