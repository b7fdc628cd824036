"""The register of disclosures: who received what, when, on which basis.

    riskradar disclosures [--recipient politie] [--since 2026-01-01] [--csv register.csv]

Prints every record of the register (riskradar.exchange) as a table, oldest first: when, the
recipient, what happened (a delivery, or a withdrawal when an agreement ended), the agreement and
its version, the week, the targets, each file with its rows and sha256. `--csv` also writes them,
one row per delivered file, for the data protection officer. Reads the lake only (no Spark).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from riskradar.audit import audited_run
from riskradar.config import Settings, check_name, load_settings
from riskradar.exchange import read_register
from riskradar.lake import Lake
from riskradar.runtime import job_parser, parse

CSV_COLUMNS = [
    "recorded_at",
    "kind",
    "recipient",
    "organisation",
    "agreement",
    "agreement_version",
    "agreement_sha256",
    "legal_basis",
    "week",
    "targets",
    "granularity",
    "file",
    "rows",
    "sha256",
    "database_role",
    "delivery_id",
    "reason",
    "git_commit",
]


def main(argv: Sequence[str] | None = None, *, settings: Settings | None = None, spark=None) -> list[dict]:
    parser = job_parser("riskradar disclosures", __doc__)
    parser.add_argument("--recipient", help="only this recipient's records")
    parser.add_argument("--since", type=date.fromisoformat, help="only records from this day on (YYYY-MM-DD)")
    parser.add_argument("--csv", type=Path, help="also write the records to this CSV file")
    args = parse(parser, argv)
    settings = settings or load_settings(args.config)
    lake = Lake(settings.lake_root)
    recipient = check_name(args.recipient, "recipient") if args.recipient else None
    with audited_run(lake, "disclosures", {"recipient": recipient, "since": str(args.since or "")}) as record:
        records = read_register(lake, recipient=recipient, since=args.since)
        print(format_register(records))
        if args.csv:
            args.csv.parent.mkdir(parents=True, exist_ok=True)
            args.csv.write_text(register_csv(records), encoding="utf-8")
            record.outputs.append({"file": str(args.csv)})
        record.counts = {"records": len(records)}
    return records


def csv_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per delivered file (a withdrawal: one row), in CSV_COLUMNS."""
    rows = []
    for r in records:
        agreement = r.get("agreement") or {}
        base = {
            "recorded_at": r["recorded_at"],
            "kind": r["kind"],
            "recipient": r["recipient"],
            "organisation": r.get("organisation", ""),
            "agreement": agreement.get("id", ""),
            "agreement_version": agreement.get("version", ""),
            "agreement_sha256": agreement.get("sha256", ""),
            "legal_basis": agreement.get("legal_basis", ""),
            "week": r.get("week", ", ".join(r.get("weeks", []))),
            "targets": " ".join(r.get("targets", [])),
            "granularity": r.get("granularity", ""),
            "database_role": (r.get("database") or {}).get("role", "")
            if isinstance(r.get("database"), dict)
            else "",
            "delivery_id": r["delivery_id"],
            "reason": r.get("reason", ""),
            "git_commit": r.get("git_commit") or "",
        }
        files = r.get("files") or [{}]
        rows += [
            {**base, "file": f.get("name", ""), "rows": f.get("rows", ""), "sha256": f.get("sha256", "")}
            for f in files
        ]
    return rows


def register_csv(records: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(csv_rows(records))
    return out.getvalue()


def format_register(records: list[dict[str, Any]]) -> str:
    """The register as a terminal table: a line per record, a line per file under it."""
    if not records:
        return "The register of disclosures holds no records (yet)."
    lines = [f"{'recorded (UTC)':<20} {'kind':<10} {'recipient':<18} {'agreement':<14} {'week':<11} targets"]
    for r in records:
        agreement = r.get("agreement") or {}
        terms = f"{agreement.get('id', '-')} v{agreement.get('version', '-')}" if agreement else "-"
        week = r.get("week") or ", ".join(r.get("weeks", [])) or "-"
        lines.append(
            f"{r['recorded_at'][:19]:<20} {r['kind']:<10} {r['recipient']:<18} {terms:<14} {week:<11} "
            f"{' '.join(r.get('targets', [])) or r.get('reason', '')}"
        )
        for f in r.get("files") or []:
            rows = f"{f['rows']} rows" if f.get("rows") is not None else ""
            lines.append(f"{'':<22}{f['name']:<44} {rows:>12}  sha256 {f['sha256']}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
