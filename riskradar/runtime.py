"""What every job shares: its argument parser, its config, its session, its feeds."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from pyspark.sql import SparkSession

from riskradar.config import DEFAULT_CONFIG, Settings, check_name, load_settings
from riskradar.lake import Lake
from riskradar.spark import get_session


def job_parser(prog: str, description: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=(description or "").strip().splitlines()[0])
    parser.add_argument(
        "--config", default=str(DEFAULT_CONFIG), help="pipeline config (default: %(default)s)"
    )
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
    return parser.parse_args(list(argv) if argv is not None else None)
