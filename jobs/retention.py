"""Retention: remove every row older than its feed's contract allows, and keep counts of the events.

    riskradar retention --all [--as-of 2026-12-07] [--dry-run] [--config conf/riskradar.yaml]
    riskradar retention --partner police_crimes --dry-run

A row goes when its event time (for a feed without one, and a row whose time cannot be read: its
delivery time) is before midnight UTC of `--as-of` (default: today; the intake DAG passes its
run's date) less the contract's `retention_days`: from bronze, silver, the history table and
quarantine; the lake's copy of a delivered file goes with the last of its rows. The events that
go live on as counts per week, cell and category (silver.expired_counts: no personal data, kept
`retention.counts_days`), from which build-features counts their weeks as before. Per feed, one
atomic commit under the feed's locks (see intake/retention.py), and a record in the audit log:
per table the rows removed and the oldest time kept, and the contract's retention. `--dry-run`
prints the same figures and writes nothing at all, not even an audit record.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pyspark.sql import SparkSession

from features.grid import Grid
from features.panel import count_basis, event_counts
from intake.retention import EXPIRED_COUNTS, TABLES, Counting, enforce_feed
from riskradar.audit import audited_run
from riskradar.config import Settings
from riskradar.errors import RiskradarError
from riskradar.runtime import (
    add_feed_arguments,
    context,
    iso_day,
    job_parser,
    parse,
    raise_collected,
    selected_feeds,
)

log = logging.getLogger(__name__)


def main(
    argv: Sequence[str] | None = None,
    *,
    settings: Settings | None = None,
    spark: SparkSession | None = None,
) -> dict[str, dict[str, Any]]:
    parser = job_parser("riskradar retention", __doc__)
    add_feed_arguments(parser)
    parser.add_argument(
        "--as-of", type=iso_day, help="the day the retention periods count back from (default: today, UTC)"
    )
    parser.add_argument("--dry-run", action="store_true", help="print what would go; change nothing")
    args = parse(parser, argv)
    today = datetime.now(UTC).date()
    as_of = args.as_of or today
    if as_of > today:
        parser.error(f"--as-of {as_of} is after today ({today}): rows would go before their retention ended")
    settings, lake, spark = context(args, settings, spark)
    grid = Grid(settings.grid.cell_size_m, settings.project_crs)
    counting = Counting(
        lambda events: event_counts(events, grid, settings.timezone), count_basis(grid, settings.timezone)
    )
    results: dict[str, dict[str, Any]] = {}
    failures: list[Exception] = []
    for feed in selected_feeds(settings, args):
        contract = settings.contract(feed)
        try:
            if args.dry_run:  # it only reads: no lock, no audit record
                results[feed], notes = enforce_feed(
                    spark, settings, lake, contract, as_of=as_of, counting=counting, run_id="", dry_run=True
                )
            else:
                arguments = {"partner": feed, "as_of": as_of.isoformat()}
                with audited_run(lake, "retention", arguments) as record:
                    results[feed], notes = enforce_feed(
                        spark, settings, lake, contract, as_of=as_of, counting=counting, run_id=record.run_id
                    )
                    record.notes += notes
                    record.counts.update(results[feed])
            print(describe(feed, results[feed], dry_run=args.dry_run, notes=notes))
        except Exception as exc:  # one feed's failure never stops the others (raised at the end)
            failures.append(exc)
            log.error("retention %s: FAILED\n  %s", feed, exc)
    raise_collected(failures)
    return results


def describe(feed: str, figures: dict[str, Any], *, dry_run: bool, notes: list[str]) -> str:
    """A feed's figures as people read them: what goes (or would go) of each table."""
    verb = "would go" if dry_run else "removed"
    lines = [
        f"{feed}: retention_days {figures['retention_days']} as of {figures['as_of']}: rows from before "
        f"{figures['removed_before'].replace('T', ' ').removesuffix('Z')} UTC go"
        + (" (dry run: nothing was changed)" if dry_run else "")
    ]
    for table in TABLES:
        t = figures["tables"][table]
        oldest = t["oldest_kept"] or "none kept"
        lines.append(f"  {t['table']:32} {t['removed']:>9} {verb}, {t['kept']:>9} kept, oldest kept {oldest}")
    lines.append(f"  {'copies of delivered files':32} {figures['delivered_copies']['removed']:>9} {verb}")
    counts = figures.get(EXPIRED_COUNTS)
    if counts:
        lines.append(
            f"  {counts['table']:32} {counts['events_counted']:>9} events counted in, {counts['removed']} "
            f"rows {verb} (retention {counts['retention_days']} days), oldest week kept "
            f"{counts['oldest_week_kept'] or 'none'}"
        )
    return "\n".join(lines + [f"  note: {n}" for n in notes])


if __name__ == "__main__":
    try:
        main()
    except RiskradarError as exc:
        raise SystemExit(f"error: {exc}") from None
