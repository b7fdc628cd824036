"""The outbox and the register of disclosures: how a package reaches a recipient, on record.

A recipient is served from `outbox/<recipient>/<week>/` (files and `manifest.json`); what is
being built lives in `outbox/_staging/`, outside every recipient's folder, until its checks pass.
A delivery (`StagedPackage.commit`, called by riskradar.publish once the checks pass) goes in
this order, each step atomic:

1. its register record is written as pending (`register/disclosures/_pending/<id>.json`);
2. the sharing database, when one is configured, is refreshed in one transaction that also
   stores the delivery id;
3. the staged folder replaces `outbox/<recipient>/<week>/` (two renames);
4. the record moves into the register (`register/disclosures/date=<day>/...json`, a rename).

A crash between 1 and 4 leaves a pending record; the next share run of that recipient (under its
lock) completes it when the outbox or the database holds the delivery, and drops it when neither
does. So the register lists exactly the deliveries that were made. Records are never rewritten:
the register is append-only, like the audit log.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from riskradar.config import check_name
from riskradar.lake import Lake, write_json

MANIFEST = "manifest.json"


def new_delivery_id() -> str:
    return uuid.uuid4().hex[:16]


def _outbox_root(lake: Lake) -> Path:
    return lake.root / "outbox"


def staging_folder(lake: Lake, recipient: str, run_id: str) -> Path:
    """Where a run builds a recipient's package; leftovers of a crashed run are removed first."""
    root = _outbox_root(lake) / "_staging" / check_name(recipient, "recipient")
    shutil.rmtree(root, ignore_errors=True)
    return root / run_id


def _pending(lake: Lake) -> Path:
    return lake.disclosures / "_pending"


def _record_file(lake: Lake, record: dict[str, Any]) -> Path:
    at = record["recorded_at"]
    name = f"{at[11:19].replace(':', '')}-{record['recipient']}-{record['delivery_id']}.json"
    return lake.disclosures / f"date={at[:10]}" / name


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def append_record(lake: Lake, record: dict[str, Any]) -> Path:
    """Add a record to the register (a new file; nothing is rewritten)."""
    record = {**record, "recorded_at": record.get("recorded_at") or _now()}
    path = _record_file(lake, record)
    write_json(path, record)
    return path


@dataclass
class StagedPackage:
    """A checked package waiting in the staging area; `commit` delivers it (see the module)."""

    lake: Lake
    recipient: str
    week: str
    staging: Path
    record: dict[str, Any]
    serve: Callable[[], None] | None = None  # the database refresh, run at step 2
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"outbox/{self.recipient}/{self.week}"

    def commit(self) -> Path:
        delivery = self.record["delivery_id"]
        pending = _pending(self.lake) / f"{delivery}.json"
        write_json(pending, {**self.record, "status": "pending"})
        if self.serve is not None:
            try:
                self.serve()
            except BaseException:
                # the database refused: nothing was served, nothing is on record
                pending.unlink(missing_ok=True)
                self.discard()
                raise
        target = self.lake.outbox(self.recipient) / self.week
        trash = _outbox_root(self.lake) / "_trash" / self.recipient / delivery
        if target.exists():
            trash.parent.mkdir(parents=True, exist_ok=True)
            target.rename(trash)
        target.parent.mkdir(parents=True, exist_ok=True)
        self.staging.rename(target)
        shutil.rmtree(trash, ignore_errors=True)
        return _finalise(self.lake, pending, note=None)

    def discard(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)


def _finalise(lake: Lake, pending: Path, *, note: str | None) -> Path:
    record = json.loads(pending.read_text(encoding="utf-8"))
    record.update(status="delivered", recorded_at=_now())
    if note:
        record["note"] = note
    path = _record_file(lake, record)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, record)
    pending.unlink()
    return path


def delivered_manifest(lake: Lake, recipient: str, week: str) -> dict[str, Any] | None:
    """The manifest of the package the recipient is served for `week`, or None."""
    path = lake.outbox(recipient) / week / MANIFEST
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def recover(lake: Lake, recipient: str, database_holds: Callable[[str], bool] | None) -> list[str]:
    """Complete or drop the recipient's pending records (call under its lock): a record whose
    delivery the outbox or the database holds goes into the register, any other is dropped.
    What was done, in words."""
    notes = []
    folder = _pending(lake)
    for path in sorted(folder.glob("*.json")) if folder.exists() else []:
        record = json.loads(path.read_text(encoding="utf-8"))
        if record.get("recipient") != recipient:
            continue
        delivery = record["delivery_id"]
        served = (delivered_manifest(lake, recipient, record["week"]) or {}).get("delivery_id") == delivery
        in_database = database_holds is not None and database_holds(delivery)
        if served or in_database:
            where = " and ".join(
                w for w, yes in (("the outbox", served), ("the database", in_database)) if yes
            )
            _finalise(
                lake, path, note=f"recorded on recovery: the run that delivered it stopped; {where} held it"
            )
            notes.append(
                f"delivery {delivery} of week {record['week']} was made ({where}): now in the register"
            )
        else:
            path.unlink()
            notes.append(
                f"delivery {delivery} of week {record['week']} was never made: its pending record dropped"
            )
    return notes


def served_weeks(lake: Lake, recipient: str) -> list[str]:
    folder = lake.outbox(recipient)
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))


def withdraw(lake: Lake, recipient: str, *, run_id: str) -> list[str]:
    """Stop serving every package of the recipient: its week folders move to
    `outbox/_withdrawn/<recipient>/<run>/`, kept as evidence, served to no one. The weeks."""
    weeks = served_weeks(lake, recipient)
    if weeks:
        dest = _outbox_root(lake) / "_withdrawn" / recipient / run_id
        dest.mkdir(parents=True, exist_ok=True)
        for week in weeks:
            (lake.outbox(recipient) / week).rename(dest / week)
    return weeks


def read_register(
    lake: Lake, *, recipient: str | None = None, since: date | None = None
) -> list[dict[str, Any]]:
    """The register's records, oldest first; only a recipient's, only from a day on."""
    if not lake.disclosures.exists():
        return []
    out = []
    for path in lake.disclosures.glob("date=*/*.json"):
        if since is not None and path.parent.name[5:] < since.isoformat():
            continue
        record = json.loads(path.read_text(encoding="utf-8"))
        if recipient is None or record.get("recipient") == recipient:
            out.append(record)
    return sorted(out, key=lambda r: r["recorded_at"])


def outbox_recipients(lake: Lake) -> list[str]:
    """The recipients the outbox serves anything to."""
    root = _outbox_root(lake)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))
