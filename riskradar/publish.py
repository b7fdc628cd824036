"""Write-audit-publish: the one way a job makes data visible in the lake.

Every publishing job (ingest, validate, build-features, score) does the same four things in
the same order: stage its output where no reader looks, run its checks on what was staged
(row reconciliation, the table's expectation suite, the panel's completeness), and only if
every check passes make the staged data visible, atomically per table; otherwise publish
nothing, write the checks' report and raise `PublishRefused` naming it. Whatever was
published before stays visible and unchanged when a check fails.

    staged = stage(df, lake.gold("features"), partition_cols=["week"], owner="build_features",
                   run_id=run_id, owned=[{"week": w} for w in weeks])
    publish([staged], checks=[rows_equal("panel rows", staged.count, expected)], report=path)

A job whose publication is a commit of its own (the validation's run folders, named by one
commit record) passes a `Staged` with that commit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pyspark.sql import DataFrame, SparkSession

from riskradar.errors import PublishRefused
from riskradar.lake import Publisher, write_json

log = logging.getLogger(__name__)


class Staged(Protocol):
    """Output written where no reader looks, until `commit` makes it visible."""

    name: str

    def commit(self) -> Any: ...

    def discard(self) -> None: ...


@dataclass(frozen=True)
class Check:
    """A named check of staged output: `run` returns what is wrong, or None when it passes."""

    name: str
    run: Callable[[], str | None]


def rows_equal(name: str, actual: Callable[[], int] | int, expected: int) -> Check:
    """A check that a staged row count (a number, or a function that counts) equals `expected`."""

    def run() -> str | None:
        got = actual() if callable(actual) else actual
        return None if got == expected else f"{got} rows, expected {expected}"

    return Check(name, run)


@dataclass
class StagedPartitions:
    """Partitions of one table written to its staging folder (riskradar.lake.Publisher): a
    commit replaces exactly the `owned` partitions, an owned partition left empty is removed."""

    name: str
    publisher: Publisher
    owned: list[Mapping[str, str]]
    partition_cols: list[str]
    _rows: int | None = field(default=None, repr=False)

    def read(self, spark: SparkSession) -> DataFrame:
        """The staged rows, as a reader will see them once published."""
        return spark.read.parquet(str(self.publisher.staging))

    def count(self, spark: SparkSession | None = None) -> int:
        """The staged rows (counted once)."""
        if self._rows is None:
            staging = self.publisher.staging
            if not staging.exists():
                self._rows = 0
            else:
                session = spark or SparkSession.getActiveSession()
                self._rows = session.read.parquet(str(staging)).count()
        return self._rows

    def commit(self) -> list[str]:
        return self.publisher.publish(self.owned)

    def discard(self) -> None:
        self.publisher.discard()


def stage(
    df: DataFrame,
    table: Path,
    *,
    partition_cols: Sequence[str],
    owned: Iterable[Mapping[str, str]],
    owner: str,
    run_id: str,
) -> StagedPartitions:
    """Write `df` to `table`'s staging folder for `owner`'s run, partitioned by `partition_cols`;
    nothing is visible until `publish`."""
    publisher = Publisher(table, owner=owner, run_id=run_id)
    publisher.write(df, list(partition_cols))
    return StagedPartitions(table.name, publisher, list(owned), list(partition_cols))


def run_checks(checks: Iterable[Check]) -> dict[str, str | None]:
    """Each check's problem (None: passed), by name; a check that raises fails with its error."""
    results: dict[str, str | None] = {}
    for check in checks:
        try:
            results[check.name] = check.run()
        except Exception as exc:  # noqa: BLE001 - a check that cannot run has not passed
            results[check.name] = f"the check could not run: {type(exc).__name__}: {exc}"
        log.debug("check %s: %s", check.name, results[check.name] or "passed")
    return results


def publish(staged: Sequence[Staged], *, checks: Iterable[Check] = (), report: Path) -> list[Any]:
    """Run `checks` on the staged output; if all pass, commit every staged table (in order) and
    return what each commit returned. Otherwise discard the staged output, write the checks'
    results to `report` and raise PublishRefused: nothing new is visible."""
    results = run_checks(checks)
    failed = {name: problem for name, problem in results.items() if problem is not None}
    if failed:
        for item in staged:
            item.discard()
        write_json(
            report,
            {
                "published": False,
                "tables": [item.name for item in staged],
                "checks": {name: problem or "passed" for name, problem in results.items()},
            },
        )
        summary = "; ".join(f"{name}: {problem}" for name, problem in failed.items())
        raise PublishRefused(
            f"nothing published to {', '.join(i.name for i in staged)}: {summary} (report {report})"
        )
    return [item.commit() for item in staged]
