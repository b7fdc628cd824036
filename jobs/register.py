"""Registers for the data protection officer and for the Algoritmeregister.

    riskradar register processing [--config conf/riskradar.yaml]
    riskradar register algorithm --target burglary      (or --all)

`processing`: the register of processing (AVG art. 30; for a feed of police data, `privacy_law:
wpg` in its contract, the Wpg's): one entry per enabled feed, from its contract, the config's
`governance` section and the data-sharing agreements -> <lake>/reports/register/processing.json
(for tools) and processing.md (for people).

`algorithm`: for the champion of each target, its entry in the fields of the Algoritmeregister's
publication standard, in Dutch with English beside it (`reports.algorithm_register`), filled from
the config, the registered version, its training run and the backtest of the model it is (child
run: metrics and exposure table) -> <lake>/reports/register/algorithm/<target>.json and .md, and
the same two files as artifacts `register/` of the version's training run. An entry with an empty
required field or a value the standard does not permit is written nowhere: the error names each.

Neither needs Spark; each run is audited.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from reports.algorithm_register import Champion, algorithm_entry, algorithm_markdown, check_entry
from reports.exports import write_text
from reports.processing_register import processing_markdown, processing_register, require_governance
from riskradar.audit import audited_run
from riskradar.catalog import model_name
from riskradar.config import Settings, load_settings
from riskradar.errors import IncompleteEntry, NothingToDo, RiskradarError
from riskradar.lake import Lake
from riskradar.registry import champion_version, scoring_off, tracking_uri
from riskradar.runtime import job_parser, parse, raise_collected, selected_targets
from riskradar.sharing import load_agreements

log = logging.getLogger(__name__)
EXPOSURE = "exposure_3pct.csv"  # the exposure table of a backtested model (reports.plots)


def main(
    argv: Sequence[str] | None = None, *, settings: Settings | None = None, spark=None
) -> dict[str, Any]:
    """`spark` is accepted as every job's `main` accepts it (the demo passes it) and not used."""
    parser = job_parser("riskradar register", __doc__)
    parser.add_argument("register", choices=["processing", "algorithm"], help="which register to write")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--target", action="append", help="algorithm: a target from the config (repeatable)")
    which.add_argument("--all", action="store_true", help="algorithm: every configured target")
    args = parse(parser, argv)
    if args.register == "processing" and (args.target or args.all):
        parser.error("--target and --all are for `riskradar register algorithm`")
    if args.register == "algorithm" and not (args.target or args.all):
        parser.error("`riskradar register algorithm` needs --target T or --all")
    settings = settings or load_settings(args.config)
    require_governance(settings)
    lake = Lake(settings.lake_root)
    if args.register == "processing":
        return {"processing": write_processing(settings, lake)}
    results, failures = {}, []
    for target in selected_targets(settings, args):
        try:
            results[target] = write_algorithm(settings, lake, target)
        except RiskradarError as exc:  # a target without a champion: the others still get theirs
            failures.append(exc)
    raise_collected(failures)
    return results


def write_processing(settings: Settings, lake: Lake) -> dict[str, str]:
    """Write the register of processing; the paths written."""
    with audited_run(lake, "register", {"register": "processing"}) as record:
        register = processing_register(settings, load_agreements(settings))
        folder = lake.reports("register")
        paths = {"json": folder / "processing.json", "markdown": folder / "processing.md"}
        write_text(paths["json"], json.dumps(register, indent=2, ensure_ascii=False) + "\n")
        write_text(paths["markdown"], processing_markdown(register))
        record.counts = {"feeds": len(register["entries"])}
        record.outputs += [{"file": str(p)} for p in paths.values()]
        log.info("register processing: %d feeds -> %s", len(register["entries"]), paths["markdown"])
    return {kind: str(path) for kind, path in paths.items()}


def write_algorithm(settings: Settings, lake: Lake, target: str) -> dict[str, str]:
    """Write the Algoritmeregister entry of the target's champion, after checking it, to the
    lake's reports and as artifacts of the version's training run; the paths written."""
    from mlflow import MlflowClient

    with audited_run(lake, "register", {"register": "algorithm", "target": target}) as record:
        client = MlflowClient(tracking_uri(settings, lake))
        champion = champion_facts(client, target)
        entry = algorithm_entry(settings, champion)
        problems = check_entry(entry)
        if problems:
            raise IncompleteEntry(
                f"the Algoritmeregister entry of {champion.model} v{champion.version} is not complete, "
                f"nothing written: {'; '.join(problems)}"
            )
        folder = lake.reports("register", "algorithm")
        paths = {"json": folder / f"{target}.json", "markdown": folder / f"{target}.md"}
        write_text(paths["json"], json.dumps(entry, indent=2, ensure_ascii=False) + "\n")
        write_text(paths["markdown"], algorithm_markdown(entry))
        for path in paths.values():
            client.log_artifact(champion.run_id, str(path), artifact_path="register")
        record.inputs.append(
            {"model": champion.model, "version": champion.version, "run_id": champion.run_id}
        )
        record.outputs += [{"file": str(p)} for p in paths.values()]
        log.info(
            "register algorithm %s: %s v%s -> %s", target, champion.model, champion.version, paths["markdown"]
        )
    return {"model": champion.model, "version": champion.version, **{k: str(p) for k, p in paths.items()}}


def champion_facts(client, target: str) -> Champion:
    """What the registry, the training run and the champion's backtest run say of the champion."""
    name = model_name(target)
    version = champion_version(client, name)
    run = client.get_run(version.run_id)
    tags = dict(version.tags)
    child = backtest_run(client, run, tags.get("candidate", ""))
    versions = client.search_model_versions(f"name = '{name}'")
    return Champion(
        target=target,
        model=name,
        version=str(version.version),
        run_id=version.run_id,
        tags=tags,
        first_created=_day(min(int(v.creation_timestamp) for v in versions)),
        first_week_idx=int(_param(run, "backtest_first_week_idx")),
        last_week_idx=int(_param(run, "backtest_last_week_idx")),
        refit_every_weeks=int(_param(run, "refit_every_weeks")),
        metrics=summary_metrics(child.data.metrics),
        exposure=exposure_rows(client, child.info.run_id),
        git_commit=run.data.tags.get("riskradar.git_commit", "unknown"),
        scoring_off=scoring_off(client, name),
    )


def summary_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """A backtest run's means and 95 % intervals over its weeks and its weeks won, where finite
    (its weekly metrics, logged under the bare names, are left out)."""
    kept = {k: v for k, v in metrics.items() if k.endswith(("_mean", "_low", "_high")) or k == "weeks_won"}
    return {k: v for k, v in kept.items() if math.isfinite(v)}


def backtest_run(client, run, candidate: str):
    """The child run of the training run that backtested the model the version is."""
    query = f"tags.mlflow.parentRunId = '{run.info.run_id}' and tags.mlflow.runName = '{candidate}'"
    children = client.search_runs([run.info.experiment_id], filter_string=query)
    if not children:
        raise NothingToDo(
            f"training run {run.info.run_id} has no backtest run of {candidate!r}: the register entry "
            "needs its metrics (was the version registered by `riskradar train`?)"
        )
    return children[0]


def exposure_rows(client, run_id: str) -> list[dict[str, Any]]:
    """The rows of the run's exposure table ([] when it has none)."""
    if EXPOSURE not in {a.path for a in client.list_artifacts(run_id)}:
        return []
    with tempfile.TemporaryDirectory() as tmp:
        table = pd.read_csv(Path(client.download_artifacts(run_id, EXPOSURE, tmp)))
    return table.astype(object).where(table.notna(), None).to_dict("records")


def _param(run, key: str) -> str:
    try:
        return run.data.params[key]
    except KeyError:
        raise NothingToDo(
            f"training run {run.info.run_id} has no parameter {key!r}: the register entry needs the "
            "backtest window `riskradar train` logs"
        ) from None


def _day(milliseconds: int) -> date:
    return datetime.fromtimestamp(int(milliseconds) / 1000, UTC).date()


if __name__ == "__main__":
    main()
