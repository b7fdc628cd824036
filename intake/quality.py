"""Batch-level quality gates with Great Expectations 1.x suites kept as JSON in expectations/.

A suite runs on the routed batch (canonical columns, null for quarantined rows, plus
`quarantine_rule`), so one suite gates both the published values and the share of rows
that failed row rules. The result is written as JSON and as a readable Markdown page.
"""

from __future__ import annotations

import json
import os
import uuid
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame

from riskradar.errors import ConfigError
from riskradar.lake import write_json

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


@lru_cache(maxsize=1)
def _context():
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    return ctx


def load_suite_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: expectation suite not found") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not data.get("expectations"):
        raise ConfigError(f"{path}: expected a suite with 'name' and a non-empty 'expectations' list")
    return data


def run_suite(df: DataFrame | pd.DataFrame, suite_path: Path, *, run_name: str) -> dict[str, Any]:
    """Validate `df` (a Spark or a pandas frame) with the suite at `suite_path`; return the GX
    result as a JSON dict."""
    import great_expectations as gx

    ctx = _context()
    spec = for_small_deliveries(load_suite_json(suite_path), df)
    run_name = f"{run_name}-{uuid.uuid4().hex[:8]}"  # one process may validate a batch twice
    name = f"{spec['name']}-{run_name}"
    try:
        suite = gx.ExpectationSuite(**{**spec, "name": name})
    except Exception as exc:  # GX raises several types for a malformed suite
        raise ConfigError(f"{suite_path}: the suite cannot be loaded: {exc}") from exc
    if len(suite.expectations) != len(spec["expectations"]):
        # GX leaves out an expectation it cannot build (unknown type, bad kwargs) and only logs
        # it: a typo would silently remove a check from the gate.
        invalid = [
            f"#{i + 1} {json.dumps(e, default=str)[:200]}"
            for i, e in enumerate(spec["expectations"])
            if not gx.ExpectationSuite(name=f"probe-{run_name}", expectations=[e]).expectations
        ]
        raise ConfigError(
            f"{suite_path}: the suite cannot be loaded: Great Expectations cannot build "
            f"{'; '.join(invalid)} (an unknown expectation type or arguments; its log above says which)"
        )
    suite = ctx.suites.add(suite)
    if isinstance(df, pd.DataFrame):
        source = ctx.data_sources.add_or_update_pandas(f"src-{run_name}")
    else:
        source = ctx.data_sources.add_or_update_spark(f"src-{run_name}")
    asset = source.add_dataframe_asset(f"asset-{run_name}")
    batch = asset.add_batch_definition_whole_dataframe(f"batch-{run_name}")
    definition = gx.ValidationDefinition(data=batch, suite=suite, name=f"vd-{run_name}")
    result = definition.run(batch_parameters={"dataframe": df}, result_format="SUMMARY")
    ctx.suites.delete(name)
    ctx.data_sources.delete(f"src-{run_name}")
    return result.to_json_dict()


def for_small_deliveries(spec: dict[str, Any], df: DataFrame | pd.DataFrame) -> dict[str, Any]:
    """The suite with each share rule that says so (`"small_deliveries": {"below_rows": N,
    "max_unexpected_rows": M}` beside its kwargs) relaxed for a batch of fewer than N rows: up to
    M unexpected rows pass (never more than half of them), where a share of a few rows is no
    sign of a broken export (8 rows without coordinates are 8% of 100, and 0.01% of a month)."""
    rules = [e for e in spec["expectations"] if "small_deliveries" in e]
    if not rules:
        return spec
    rows = len(df) if isinstance(df, pd.DataFrame) else df.count()
    out = []
    for expectation in spec["expectations"]:
        expectation = dict(expectation)
        rule = expectation.pop("small_deliveries", None)
        if rule is not None and 0 < rows < rule["below_rows"]:
            mostly = max(1.0 - rule["max_unexpected_rows"] / rows, 0.5)
            kwargs = expectation["kwargs"]
            expectation["kwargs"] = {**kwargs, "mostly": min(kwargs.get("mostly", 1.0), mostly)}
        out.append(expectation)
    return {**spec, "expectations": out}


def _observed(item: dict[str, Any]) -> Any:
    """What an expectation saw: its observed value, or the share of unexpected rows."""
    observed = item.get("result", {})
    value = observed.get("observed_value")
    if value is None and "unexpected_percent" in observed:
        share = observed["unexpected_percent"]
        # GX reports no share when every value of the column is null (nothing to check)
        value = "no values to check" if share is None else f"{share:.3f}% unexpected"
    return value


def failed_expectations(result: dict[str, Any]) -> list[str]:
    out = []
    for item in result["results"]:
        if item["success"]:
            continue
        cfg = item["expectation_config"]
        kwargs = {k: v for k, v in cfg["kwargs"].items() if k != "batch_id"}
        out.append(f"{cfg['type']}({_short(kwargs)}): observed {_observed(item)}")
    return out


def _short(kwargs: dict[str, Any]) -> str:
    parts = []
    for k, v in kwargs.items():
        text = json.dumps(v, default=str)
        parts.append(f"{k}={text if len(text) <= 60 else text[:57] + '...'}")
    return ", ".join(parts)


def write_report(
    folder: Path, stem: str, result: dict[str, Any], *, title: str, counts: dict[str, Any]
) -> Path:
    """The validation result as JSON plus a Markdown page a reviewer can read."""
    write_json(folder / f"{stem}.json", {"title": title, "counts": counts, "result": result})
    lines = [f"# {title}", "", f"**Gate: {'passed' if result['success'] else 'FAILED'}**", ""]
    lines += ["## Rows", "", "| measure | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in counts.items() if not isinstance(v, dict)]
    by_rule = counts.get("quarantined_by_rule") or {}
    if by_rule:
        lines += ["", "## Quarantined, by rule", "", "| rule | rows |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in sorted(by_rule.items())]
    notes = counts.get("time_notes") or {}
    if notes:
        lines += ["", "## Published with a note on their time", "", "| note | rows |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in sorted(notes.items())]
    lines += ["", "## Expectations", "", "| expectation | column | result | observed |", "|---|---|---|---|"]
    for item in result["results"]:
        cfg = item["expectation_config"]
        lines.append(
            f"| {cfg['type']} | {cfg['kwargs'].get('column', '')} | "
            f"{'pass' if item['success'] else '**fail**'} | {_observed(item)} |"
        )
    path = folder / f"{stem}.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
