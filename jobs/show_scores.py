"""Print the ranked cells of a scored week in the terminal.

    riskradar scores --target burglary [--week 2014-12-29] [--top 20]

Reads the published gold.scores partition directly (no Spark session): what an analyst or a
coordinator checks before a meeting. The week defaults to the newest scored week.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence

import pandas as pd

from reports.exports import spreadsheet_safe
from riskradar.catalog import newest_scored_week, scored_weeks, scores_partition
from riskradar.config import Settings, load_settings
from riskradar.errors import NothingToDo
from riskradar.lake import Lake
from riskradar.runtime import job_parser, monday, parse, positive_int, selected_targets


def main(argv: Sequence[str] | None = None, *, settings: Settings | None = None, spark=None) -> pd.DataFrame:
    parser = job_parser("riskradar scores", __doc__)
    parser.add_argument("--target", action="append", required=True, help="a target from the config")
    parser.add_argument("--week", type=monday, help="the Monday of the scored week (default: newest)")
    parser.add_argument("--top", type=positive_int, default=20, help="how many cells (default: %(default)s)")
    args = parse(parser, argv)
    args.all = False
    settings = settings or load_settings(args.config)
    lake = Lake(settings.lake_root)
    (target,) = selected_targets(settings, args)[:1]
    week = args.week or newest_scored_week(lake, target)
    if week not in scored_weeks(lake, target):
        raise NothingToDo(
            f"no scores for {target!r} in the week of {week}: run `riskradar score --week {week}`"
        )
    scores = pd.read_parquet(scores_partition(lake, target, week))
    top = scores.sort_values("rank").head(args.top)
    print(format_table(top, target=target, week=str(week), n_cells=len(scores)))
    return top


def format_table(top: pd.DataFrame, *, target: str, week: str, n_cells: int) -> str:
    width = shutil.get_terminal_size((160, 40)).columns
    first = top.iloc[0]
    lines = [
        f"{target}, week of {week}: top {len(top)} of {n_cells} cells "
        f"(model {first['model_name']} v{first['model_version']}, {first['model_recipe']}; * = hotspot)",
        f"{'rank':>4}  {'cell':<11} {'area':<22} {'expected':>8} {'pct':>6}  top driver",
    ]
    for _, r in top.iterrows():
        area = spreadsheet_safe(r["area_name"]) if isinstance(r["area_name"], str) else "-"
        row = (
            f"{r['rank']:>4}{'*' if r['hotspot'] else ' '} {r['cell_id']:<11} {area[:22]:<22} "
            f"{r['expected_count']:>8.3f} {r['percentile']:>6.2f}  {r['driver_1_detail']}"
        )
        lines.append(row if len(row) <= width else row[: width - 1] + "…")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
