"""Share: each recipient's package of a scored week, cut to its data-sharing agreement.

    riskradar share --recipient politie [--week 2014-12-29 | --until-week 2014-12-29]
    riskradar share --all [--skip-undeliverable]

For each recipient with an agreement in force (conf/sharing/<recipient>.yaml, riskradar.sharing):
read the week's gold tables of its targets (gold only, never silver or bronze), cut them to the
agreement (its rows and columns; cells, or the areas of a level rolled up from the cells; counts
below its k shown as "<k"), write the package (a GeoPackage, a CSV, the HTML report and a
manifest) where no recipient looks, check it with the package's expectation suite, and only then
deliver it to outbox/<recipient>/<week>/ (and to the recipient's role in the sharing database,
when configured), with a record in the register of disclosures (riskradar.exchange). A package
that fails its check is not delivered: the previous one stays, and the error names the report.

The week: `--week W` delivers W, and refuses while W is under the agreement's embargo; otherwise
the newest week scored for every target of the agreement, up to `--until-week` (the weekly run's
week), whose embargo has passed. A package equal to the one delivered for that week is not
delivered again. A recipient whose agreement ended (expired, revoked), or is not yet in force,
or that has none, receives nothing, and what it was served is withdrawn from the outbox and the
database, on record. `--skip-undeliverable` makes that, and a week still under embargo, a warning
instead of an error (the weekly DAG). `--as-of` judges validity and embargo at another moment.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from intake.quality import failed_expectations, run_suite, write_report
from models.scoring import scores_by_area
from reports.sharing import (
    GEOMETRY,
    PackageContext,
    area_table,
    cell_table,
    package_suite,
    read_gpkg,
    read_package_csv,
    render_package_report,
    to_package_csv,
    write_gpkg,
)
from riskradar.audit import RunRecord, audited_run
from riskradar.catalog import (
    MODEL_COLUMNS,
    SCORES,
    build_record,
    model_name,
    read_area_outlines,
    read_scores,
    scored_weeks,
)
from riskradar.config import Settings
from riskradar.errors import AgreementNotInForce, ConfigError, EmbargoNotPassed, NothingToDo, RiskradarError
from riskradar.exchange import (
    MANIFEST,
    StagedPackage,
    append_record,
    delivered_manifest,
    new_delivery_id,
    outbox_recipients,
    recover,
    staging_folder,
    withdraw,
)
from riskradar.lake import Lake, lock, write_json
from riskradar.publish import Check, publish
from riskradar.registry import champion_version, tracking_uri
from riskradar.runtime import context, job_parser, monday, parse, raise_collected
from riskradar.sharedb import ShareDatabase
from riskradar.sharing import (
    Agreement,
    agreement_file,
    agreement_sha256,
    agreement_status,
    deliverable_from,
    load_agreements,
    now_utc,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ask:
    """What the run was asked for: a week or a latest week, the moment it judges at, how it
    treats a recipient it cannot deliver to."""

    week: date | None
    until_week: date | None
    as_of: datetime
    skip_undeliverable: bool
    database: ShareDatabase | None


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date or time (YYYY-MM-DD[THH:MM])") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def main(
    argv: Sequence[str] | None = None,
    *,
    settings: Settings | None = None,
    spark: SparkSession | None = None,
) -> dict[str, dict[str, Any]]:
    parser = job_parser("riskradar share", __doc__)
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--recipient", action="append", help="a recipient of the agreements folder (repeatable)")
    who.add_argument(
        "--all", action="store_true", help="every agreement, and every recipient served without one"
    )
    when = parser.add_mutually_exclusive_group()
    when.add_argument("--week", type=monday, help="deliver this week (a Monday); refused under embargo")
    when.add_argument("--until-week", type=monday, help="the newest deliverable week up to this one")
    parser.add_argument(
        "--skip-undeliverable",
        action="store_true",
        help="an agreement not in force, or a week under embargo, is a warning (and audited), not an error",
    )
    parser.add_argument(
        "--as-of", type=_moment, help="judge validity and embargo at this time (default: now)"
    )
    args = parse(parser, argv)
    settings, lake, spark = context(args, settings, spark)
    agreements = load_agreements(settings)
    ask = Ask(
        args.week,
        args.until_week,
        args.as_of or now_utc(),
        args.skip_undeliverable,
        ShareDatabase.from_settings(settings),
    )
    results, failures = {}, []
    recipients = _recipients(lake, agreements, ask, args)
    if not recipients:
        log.info(
            "share: no agreements in %s and nobody served: nothing to share", settings.sharing.agreements_dir
        )
    for recipient in recipients:
        try:
            results[recipient] = share_recipient(
                spark, settings, lake, recipient, agreements.get(recipient), ask
            )
        except RiskradarError as exc:
            log.error("share %s: %s", recipient, exc)
            failures.append(exc)
    raise_collected(failures)
    return results


def _recipients(
    lake: Lake, agreements: dict[str, Agreement], ask: Ask, args: argparse.Namespace
) -> list[str]:
    """The recipients asked for; with --all also those served without an agreement (to withdraw)."""
    if not args.all:
        return list(dict.fromkeys(args.recipient))
    served = set(outbox_recipients(lake)) | set(ask.database.recipients() if ask.database else [])
    return sorted(set(agreements) | served)


def share_recipient(
    spark: SparkSession, settings: Settings, lake: Lake, recipient: str, agreement: Agreement | None, ask: Ask
) -> dict[str, Any]:
    """Deliver one recipient's package (or withdraw what it was served), under its lock, audited."""
    with (
        audited_run(
            lake, "share", {"recipient": recipient, "week": str(ask.week or ask.until_week or "")}
        ) as record,
        lock(lake, f"outbox[{recipient}]", run_id=record.run_id, job="share") as notes,
    ):
        record.notes += notes
        holds = partial(ask.database.holds, recipient) if ask.database else None
        record.notes += recover(lake, recipient, holds)
        problem = _not_in_force(settings, recipient, agreement, ask.as_of)
        if problem is not None:
            return _refuse(settings, lake, recipient, problem, ask, record)
        assert agreement is not None
        _require_champions(settings, lake, agreement)
        week = _pick_week(lake, agreement, ask)
        if week is None:
            message = f"no week of {', '.join(agreement.targets)} is past its embargo yet: nothing delivered"
            record.notes.append(message)
            log.warning("share %s: %s", recipient, message)
            return {"delivered": False, "reason": message}
        return deliver(spark, settings, lake, agreement, week, ask, record)


def _not_in_force(
    settings: Settings, recipient: str, agreement: Agreement | None, when: datetime
) -> str | None:
    if agreement is None:
        return f"{recipient!r} has no agreement in {settings.sharing.agreements_dir}"
    status, why = agreement_status(agreement, when)
    return None if status == "active" else f"the agreement {agreement_file(settings, recipient)} is {why}"


def _refuse(
    settings: Settings, lake: Lake, recipient: str, problem: str, ask: Ask, record: RunRecord
) -> dict[str, Any]:
    """Nothing for a recipient without an agreement in force; what it was served is withdrawn."""
    weeks = withdraw(lake, recipient, run_id=record.run_id)
    dropped = ask.database.withdraw(recipient) if ask.database else False
    message = f"{problem}: nothing delivered"
    if weeks or dropped:
        where = [f"the outbox (weeks {', '.join(weeks)})"] * bool(weeks) + ["the database"] * dropped
        message += f"; withdrawn from {' and '.join(where)}"
        append_record(
            lake,
            {
                "kind": "withdrawal",
                "delivery_id": new_delivery_id(),
                "recipient": recipient,
                "reason": problem,
                "weeks": weeks,
                "database": dropped,
                "run_id": record.run_id,
                "git_commit": record.git_commit,
                "git_dirty": record.git_dirty,
            },
        )
    record.notes.append(message)
    if not ask.skip_undeliverable:
        raise AgreementNotInForce(message)
    log.warning("share %s: %s", recipient, message)
    return {"delivered": False, "reason": message, "withdrawn": weeks}


def _require_champions(settings: Settings, lake: Lake, agreement: Agreement) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri(settings, lake))
    for target in agreement.targets:
        try:
            champion_version(client, model_name(target))
        except RiskradarError as exc:
            raise type(exc)(
                f"{agreement_file(settings, agreement.name)} agrees on target {target!r}, which has no "
                f"champion: {exc}; nothing delivered to {agreement.name}"
            ) from None


def _pick_week(lake: Lake, agreement: Agreement, ask: Ask) -> date | None:
    """The week to deliver (see the module docstring); None when every candidate is under embargo."""
    weeks = None
    for target in agreement.targets:
        scored = set(scored_weeks(lake, target))
        if ask.week is not None and ask.week not in scored:
            raise NothingToDo(
                f"{target!r} was not scored for the week of {ask.week}: nothing delivered to {agreement.name}"
            )
        weeks = scored if weeks is None else weeks & scored
    if not weeks:
        raise NothingToDo(
            f"no week is scored for every target of {agreement.name} ({', '.join(agreement.targets)}): "
            "run `riskradar score`"
        )
    today = ask.as_of.date()
    if ask.week is not None:
        if deliverable_from(agreement, ask.week) > today:
            raise EmbargoNotPassed(
                f"the week of {ask.week} is under {agreement.name}'s embargo of "
                f"{agreement.embargo_days} days: "
                f"it may be delivered from {deliverable_from(agreement, ask.week)} on"
            )
        return ask.week
    limit = ask.until_week or max(weeks)
    ready = [w for w in weeks if w <= limit and deliverable_from(agreement, w) <= today]
    return max(ready) if ready else None


# --------------------------------------------------------------------------- the package


def deliver(
    spark: SparkSession,
    settings: Settings,
    lake: Lake,
    agreement: Agreement,
    week: date,
    ask: Ask,
    record: RunRecord,
) -> dict[str, Any]:
    """Build, check and deliver the agreement's package of `week` (unless the same was delivered)."""
    name = agreement.name
    tables, models = package_tables(spark, settings, lake, agreement, week)
    terms = agreement_sha256(settings, name)
    content = hashlib.sha256((to_package_csv(tables) + terms).encode()).hexdigest()
    served = delivered_manifest(lake, name, str(week))
    database = ask.database if agreement.database is not None else None
    if ask.database is not None and database is None and ask.database.withdraw(name):
        record.notes.append("its agreement no longer names a database role: its schema was withdrawn")
    if (
        served
        and served.get("content_sha256") == content
        and (database is None or database.holds(name, served["delivery_id"]))
    ):
        message = (
            f"week {week}: the same package was delivered already ({served['delivery_id']}): nothing new"
        )
        record.notes.append(message)
        log.info("share %s: %s", name, message)
        return {"delivered": False, "week": week, "unchanged": served["delivery_id"]}
    delivery = new_delivery_id()
    folder = staging_folder(lake, name, record.run_id)
    features = sorted({m["features_version"] for m in models.values()})
    ctx = PackageContext(
        agreement=agreement,
        week=week,
        project_crs=settings.project_crs,
        models=models,
        freshness=_freshness(lake, features),
        top_n=settings.scoring.report_top_n,
        level=agreement.area_level,
    )
    files = write_package(folder, tables, ctx)
    manifest = _manifest(agreement, ctx, delivery, terms, content, files, features, record)
    write_json(folder / MANIFEST, manifest)
    files.append(_file_entry(folder / MANIFEST, rows=None))
    register = _register_record(agreement, manifest, files, record)
    serve = None
    if database is not None:
        register["database"] = {"role": database.role(name), "rows": sum(len(t) for t in tables.values())}
        serve = partial(
            database.refresh,
            name,
            tables,
            week=week,
            delivery_id=delivery,
            agreement_version=agreement.version,
            password=_password(settings, agreement),
        )
    staged = StagedPackage(lake, name, str(week), folder, record=register, serve=serve)
    reports = lake.reports("sharing", name)
    checks = package_checks(settings, agreement, week, folder, manifest, reports)
    (path,) = publish([staged], checks=checks, report=reports / f"{week}-publish.json")
    record.outputs += [
        {"file": str(lake.outbox(name) / str(week) / f["name"]), "sha256": f["sha256"]} for f in files
    ]
    record.outputs.append({"register": str(path)})
    record.counts = {"rows": sum(len(t) for t in tables.values()), "files": len(files)}
    log.info("share %s: week %s delivered (%s) to %s", name, week, delivery, lake.outbox(name) / str(week))
    return {"delivered": True, "week": week, "delivery_id": delivery, "files": files, "register": path}


def package_tables(
    spark: SparkSession, settings: Settings, lake: Lake, agreement: Agreement, week: date
) -> tuple[dict[str, pd.DataFrame], dict[str, dict[str, str]]]:
    """Per target, the package table of `week` and the model that scored it (from gold)."""
    tables, models = {}, {}
    level = _Level.of(settings, lake, agreement) if agreement.granularity == "area" else None
    for target in agreement.targets:
        if level is None:
            scores = read_scores(spark, lake, target, week)
            tables[target] = cell_table(scores, agreement, drivers=settings.scoring.drivers)
            first = scores.iloc[0]
        else:
            areas = level.roll_up(spark, target, week, agreement.min_count_shown)
            tables[target] = area_table(areas, agreement, outlines=level.outlines, target=target, week=week)
            first = areas.iloc[0]
        models[target] = {c: str(first[c]) for c in MODEL_COLUMNS}
    return tables, models


@dataclass
class _Level:
    """An area level of the boundaries feed: how a cell's area code becomes the level's code,
    and the level's outlines (WKT, WGS84) from gold.areas."""

    lake: Lake
    to_level: dict[str, str | None]
    outlines: dict[str, str]
    pattern: str

    @classmethod
    def of(cls, settings: Settings, lake: Lake, agreement: Agreement) -> _Level:
        import shapely
        from shapely.geometry import shape

        role = settings.roles.area_boundaries
        assert role is not None and agreement.area_level is not None
        found = read_area_outlines(lake, role.feed)
        if found is None:
            raise NothingToDo(
                f"gold.areas holds no areas of {role.feed}: run `riskradar build-features` "
                "(it publishes them)"
            )
        codes = found["area_code"].astype(str).tolist()
        coarser = role.coarser.get(agreement.area_level)
        if coarser is None:
            to_level = {c: c for c in codes}
            pattern = settings.contract(role.feed).areas.code_pattern
        else:
            rule = re.compile(coarser.code)
            to_level = {c: rule.sub(coarser.to, c) if rule.fullmatch(c) else None for c in codes}
            pattern = coarser.code_pattern
        groups: dict[str, list] = {}
        for code, text in zip(codes, found["geometry_geojson"], strict=True):
            if to_level[code] is not None and isinstance(text, str):
                groups.setdefault(to_level[code], []).append(shape(json.loads(text)))
        outlines = {k: shapely.union_all(v).wkt for k, v in groups.items()}
        return cls(lake, to_level, outlines, pattern)

    def roll_up(self, spark: SparkSession, target: str, week: date, k: int) -> pd.DataFrame:
        """gold.scores of (target, week) rolled up to the level (models.scoring.scores_by_area)."""
        scores = spark.read.parquet(str(self.lake.gold(SCORES))).where(
            (F.col("target") == target) & (F.col("week") == F.lit(week))
        )
        mapping = spark.createDataFrame(
            list(self.to_level.items()) or [("", None)], "area_code string, level_code string"
        )
        cells = scores.join(F.broadcast(mapping), "area_code", "left").withColumn(
            "area_code", F.col("level_code")
        )
        return scores_by_area(cells.drop("level_code"), min_count_shown=k).toPandas()


def write_package(folder: Path, tables: dict[str, pd.DataFrame], ctx: PackageContext) -> list[dict[str, Any]]:
    """The package's data files in `folder` (GeoPackage, CSV, HTML as agreed); each with its
    sha256, size and rows."""
    folder.mkdir(parents=True, exist_ok=True)
    stem, rows = f"{ctx.agreement.name}_{ctx.week}", sum(len(t) for t in tables.values())
    files = []
    for fmt in ctx.agreement.formats:
        path = folder / f"{stem}.{fmt}"
        if fmt == "gpkg":
            write_gpkg(path, tables, written_on=ctx.week)
        elif fmt == "csv":
            path.write_text(to_package_csv(tables), encoding="utf-8")
        else:
            path.write_text(render_package_report(tables, ctx), encoding="utf-8")
        files.append(_file_entry(path, rows=rows if fmt != "html" else None))
    return files


def _file_entry(path: Path, *, rows: int | None) -> dict[str, Any]:
    data = path.read_bytes()
    return {"name": path.name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "rows": rows}


def _freshness(lake: Lake, builds: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for build in builds:
        out.update((build_record(lake, build) or {}).get("freshness") or {})
    return out or {"(all feeds)": f"not recorded by the feature build {', '.join(builds)}"}


def _password(settings: Settings, agreement: Agreement) -> str:
    assert agreement.database is not None
    env = agreement.database.password_env
    value = os.environ.get(env, "")
    if not value.strip():
        raise ConfigError(
            f"{agreement_file(settings, agreement.name)}: key 'database.password_env' names {env}, which is "
            f"not set: set it to the password of {agreement.name}'s database role"
        )
    return value


def _manifest(
    agreement: Agreement,
    ctx: PackageContext,
    delivery: str,
    terms: str,
    content: str,
    files: list[dict[str, Any]],
    features: list[str],
    record: RunRecord,
) -> dict[str, Any]:
    return {
        "delivery_id": delivery,
        "recipient": agreement.name,
        "organisation": agreement.recipient.organisation,
        "contact_role": agreement.recipient.contact_role,
        "agreement": {
            "id": agreement.name,
            "version": agreement.version,
            "sha256": terms,
            **agreement.model_dump(
                mode="json",
                include={
                    "purpose",
                    "legal_basis",
                    "valid_from",
                    "valid_until",
                    "granularity",
                    "area_level",
                    "rows",
                    "min_count_shown",
                    "columns",
                    "embargo_days",
                },
            ),
        },
        "week": str(ctx.week),
        "targets": list(agreement.targets),
        "models": ctx.models,
        "feature_builds": features,
        "freshness": ctx.freshness,
        "files": files,
        "content_sha256": content,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "run_id": record.run_id,
        "git_commit": record.git_commit,
        "git_dirty": record.git_dirty,
    }


def _register_record(
    agreement: Agreement, manifest: dict[str, Any], files: list[dict[str, Any]], record: RunRecord
) -> dict[str, Any]:
    return {
        "kind": "delivery",
        "delivery_id": manifest["delivery_id"],
        "recipient": agreement.name,
        "organisation": agreement.recipient.organisation,
        "agreement": {k: manifest["agreement"][k] for k in ("id", "version", "sha256", "legal_basis")},
        "week": manifest["week"],
        "targets": manifest["targets"],
        "granularity": agreement.granularity
        if agreement.granularity == "cell"
        else f"area:{agreement.area_level}",
        "files": files,
        "models": {t: f"{m['model_name']} v{m['model_version']}" for t, m in manifest["models"].items()},
        "database": None,
        "run_id": record.run_id,
        "git_commit": record.git_commit,
        "git_dirty": record.git_dirty,
    }


# --------------------------------------------------------------------------- the checks


def package_checks(
    settings: Settings,
    agreement: Agreement,
    week: date,
    folder: Path,
    manifest: dict[str, Any],
    reports: Path,
) -> list[Check]:
    """The checks a staged package must pass: its suite on each data file as delivered (read
    back), the manifest's digests, and the HTML report's columns."""
    drivers = settings.scoring.drivers
    pattern = None
    if agreement.granularity == "area":
        role = settings.roles.area_boundaries
        assert role is not None
        level = role.coarser.get(agreement.area_level or "")
        pattern = level.code_pattern if level else settings.contract(role.feed).areas.code_pattern
    suite = reports / f"{week}-suite.json"
    write_json(suite, package_suite(agreement, week, drivers=drivers, area_code_pattern=pattern))
    stem = f"{agreement.name}_{week}"
    checks = []
    for fmt in (f for f in agreement.formats if f != "html"):
        checks.append(_suite_check(folder / f"{stem}.{fmt}", suite, reports, f"{week}-{fmt}-validation"))
    checks.append(Check("manifest", partial(_digests_differ, folder, manifest)))
    if "html" in agreement.formats:
        allowed = set(agreement.columns) | {
            f"driver_{i}{s}" for i in range(1, drivers + 1) for s in ("", "_detail")
        }
        checks.append(
            Check("html report", partial(_html_problem, folder / f"{stem}.html", agreement, allowed))
        )
    return checks


def _suite_check(path: Path, suite: Path, reports: Path, stem: str) -> Check:
    def run() -> str | None:
        if path.suffix == ".gpkg":
            frame = pd.concat(list(read_gpkg(path).values()), ignore_index=True)
        else:
            frame = read_package_csv(path.read_text(encoding="utf-8"))
        result = run_suite(frame, suite, run_name=f"share-{path.stem}")
        write_report(reports, stem, result, title=f"package {path.name}", counts={"rows": len(frame)})
        return None if result["success"] else "; ".join(failed_expectations(result))

    return Check(f"suite of {path.name} (report {reports / stem}.md)", run)


def _digests_differ(folder: Path, manifest: dict[str, Any]) -> str | None:
    wrong = [f["name"] for f in manifest["files"] if _file_entry(folder / f["name"], rows=f["rows"]) != f]
    return f"files differ from the manifest: {wrong}" if wrong else None


_HEADER = re.compile(r"<th>(.*?)</th>")
_CELL_ID = re.compile(r"<td>-?[0-9]+_-?[0-9]+</td>")


def _html_problem(path: Path, agreement: Agreement, allowed: set[str]) -> str | None:
    text = path.read_text(encoding="utf-8")
    shown = set(_HEADER.findall(text)) - {"partner feed", "newest data"}
    if shown - allowed:
        return f"the report shows columns the agreement does not name: {sorted(shown - allowed)}"
    if agreement.granularity == "area" and _CELL_ID.search(text):
        return "an area package's report shows a cell id"
    if GEOMETRY not in agreement.columns and "<svg" in text:
        return "the report draws a map, but the agreement gives no geometry"
    return None


if __name__ == "__main__":
    main()
