"""What every job shares: its argument parser, its config, its session, its feeds."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import date

from pyspark.sql import SparkSession

from riskradar.config import DEFAULT_CONFIG, Settings, check_name, load_settings
from riskradar.errors import ConfigError, RiskradarError
from riskradar.lake import Lake
from riskradar.log import configure, level_of
from riskradar.spark import get_session


def job_parser(prog: str, description: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=(description or "").strip().splitlines()[0])
    parser.add_argument(
        "--config", default=str(DEFAULT_CONFIG), help="pipeline config (default: %(default)s)"
    )
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument("--quiet", action="store_true", help="log warnings and errors only")
    loudness.add_argument("--verbose", action="store_true", help="log details too (debug)")
    return parser


def add_feed_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--partner", action="append", help="a feed name from conf/partners/ (repeatable)")
    group.add_argument("--all", action="store_true", help="every enabled feed")


def selected_feeds(settings: Settings, args: argparse.Namespace) -> list[str]:
    if args.all:
        return list(settings.contracts)
    names = [check_name(p, "partner", sorted(settings.contracts)) for p in args.partner]
    for name in names:
        settings.contract(name)  # a clear error for a feed that is not enabled
    return names


def context(
    args: argparse.Namespace, settings: Settings | None, spark: SparkSession | None
) -> tuple[Settings, Lake, SparkSession]:
    settings = settings or load_settings(args.config)
    spark = spark or get_session("riskradar", master=settings.spark.master, conf=settings.spark.conf)
    return settings, Lake(settings.lake_root), spark


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """The job's arguments; sets up logging at the level they ask for (riskradar.log)."""
    args = parser.parse_args(list(argv) if argv is not None else None)
    configure(level_of(getattr(args, "quiet", False), getattr(args, "verbose", False)))
    return args


def iso_day(text: str) -> date:
    """An argparse type: an ISO date."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def monday(text: str) -> date:
    """An argparse type: an ISO date that starts a week (weeks start on Monday)."""
    day = iso_day(text)
    if day.weekday() != 0:
        raise argparse.ArgumentTypeError(f"{day} is a {day:%A}; weeks start on Monday")
    return day


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not allowed: give 1 or more")
    return value


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--target", action="append", help="a target from the config (repeatable)")
    group.add_argument("--all", action="store_true", help="every configured target")


def selected_targets(settings: Settings, args: argparse.Namespace) -> list[str]:
    known = list(settings.targets)
    if args.all:
        return known
    names = [check_name(t, "target", known) for t in args.target]
    for name in names:
        if name not in settings.targets:
            raise ConfigError(
                f"{settings.config_file}: target {name!r} is not under 'targets' ({', '.join(known)})"
            )
    return names


def raise_collected(failures: list[Exception]) -> None:
    """After every feed had its turn: raise what failed, or nothing. An unexpected error (a bug,
    not a named RiskradarError) is raised as it is, with its traceback; named errors are raised
    together, all messages in one error of the first one's type (its exit code)."""
    if not failures:
        return
    unexpected = [f for f in failures if not isinstance(f, RiskradarError)]
    if unexpected:
        raise unexpected[0]
    if len(failures) == 1:
        raise failures[0]
    raise type(failures[0])("\n".join(str(f) for f in failures))
