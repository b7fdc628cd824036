"""Rows of a Spark DataFrame written once to a scratch folder, a folder per week, and read back
by the driver a few weeks (and columns) at a time.

The backtest reads its evaluation rows this way (`jobs/train.py`): the driver then holds the
weeks one step needs, not every week at once. Each row keeps its position in the order
`DataFrame.toPandas()` would have returned it in (partition by partition, each partition's
rows in Spark's order): a read returns its weeks' rows in that order, with the dtypes
`toPandas()` gives over Arrow, so nothing computed from them depends on how they were held.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

WEEK = "week_idx"
# The folders' partition column and each row's position: written, never returned.
FOLDER_WEEK = "scratch_week"
POSITION = "scratch_row"


@dataclass(frozen=True)
class WeeklyRows:
    """The rows of some weeks of a folder that `write_weekly_rows` wrote: how many `rows` each
    week has, and the `columns` of every row."""

    root: Path
    rows: dict[int, int]
    columns: list[str]

    @classmethod
    def open(cls, root: Path) -> WeeklyRows:
        """Every week under `root`, counted from the files' footers (no row is read)."""
        folders = sorted(root.glob(f"{FOLDER_WEEK}=*"))
        files = [f for folder in folders for f in _files(folder)]
        if not files:
            raise ValueError(f"no rows under {root}")
        rows = {int(d.name.split("=", 1)[1]): sum(_footer_rows(f) for f in _files(d)) for d in folders}
        columns = [c for c in pq.read_schema(files[0]).names if c != POSITION]
        return cls(root, dict(sorted(rows.items())), columns)

    def weeks(self) -> list[int]:
        return list(self.rows)

    def __len__(self) -> int:
        return sum(self.rows.values())

    def only(self, weeks: Iterable[int]) -> WeeklyRows:
        """The same rows, of `weeks` only."""
        wanted = set(weeks)
        return replace(self, rows={w: n for w, n in self.rows.items() if w in wanted})

    def read(self, weeks: Iterable[int], columns: list[str] | None = None) -> pd.DataFrame:
        """`columns` (None: every one) of the rows of `weeks` that this view holds, in order."""
        wanted = set(weeks)
        names = [*(self.columns if columns is None else columns), POSITION]
        return _in_order(self._table([w for w in self.rows if w in wanted], names))

    def head(self, n: int) -> pd.DataFrame:
        """The first `n` rows of this view, in order: reads the positions of every row, then the
        weeks those rows lie in, one at a time."""
        positions = {w: np.sort(_column(self._table([w], [POSITION]), POSITION)) for w in self.rows}
        every = np.concatenate([*positions.values(), np.empty(0, dtype=np.int64)])
        cut = np.partition(every, n - 1)[n - 1] if 0 < n < len(every) else every.max(initial=-1)
        first = {w: p <= cut for w, p in positions.items() if (p <= cut).any()}
        if not first:
            return self.read([]).head(0)
        # A week's rows come in the order of its sorted positions: keep those among the first n.
        kept = pd.concat([self.read([w])[mask] for w, mask in first.items()], ignore_index=True)
        order = np.argsort(np.concatenate([positions[w][mask] for w, mask in first.items()]), kind="stable")
        return kept.take(order).reset_index(drop=True).head(n)

    def _table(self, weeks: list[int], names: list[str]) -> pa.Table:
        files = [f for w in weeks for f in _files(self.root / f"{FOLDER_WEEK}={w}")]
        if not files:
            return (
                pq.read_schema(next(self.root.glob(f"{FOLDER_WEEK}=*/*.parquet"))).empty_table().select(names)
            )
        return pa.concat_tables([pq.ParquetFile(f).read(columns=names) for f in files])


def _files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.parquet"))


def _footer_rows(path: Path) -> int:
    return pq.ParquetFile(path).metadata.num_rows


def _column(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy()


def _in_order(table: pa.Table) -> pd.DataFrame:
    """The rows of `table` by position, without it, as pandas (the files of a week are in order
    already, as a rule: then nothing is copied)."""
    position = _column(table, POSITION)
    if np.any(position[1:] < position[:-1]):
        table = table.take(np.argsort(position, kind="stable"))
    return table.drop_columns([POSITION]).to_pandas()


def write_weekly_rows(frame: DataFrame, root: Path) -> WeeklyRows:
    """Write `frame` (with a `week_idx` column) under `root`, a folder per week, each row with
    its position in `frame.toPandas()`; what was written, to read back."""
    taken = {FOLDER_WEEK, POSITION} & set(frame.columns)
    if taken:
        raise ValueError(f"columns {sorted(taken)} are the scratch's own")
    marked = frame.select(
        "*", F.monotonically_increasing_id().alias(POSITION), F.col(WEEK).alias(FOLDER_WEEK)
    )
    marked.write.mode("overwrite").partitionBy(FOLDER_WEEK).parquet(str(root))
    return WeeklyRows.open(root)
