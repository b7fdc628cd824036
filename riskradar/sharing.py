"""Data-sharing agreements (convenanten): what each recipient may receive of the results.

One YAML file per recipient under `sharing.agreements_dir` (conf/sharing/<recipient>.yaml),
validated like the partner contracts: an unknown key, a wrong value or a name that does not fit
the pipeline config fails with a ConfigError naming the file and the key. An agreement states
who receives (organisation, contact role), why (purpose, legal basis), when (valid_from,
valid_until, revoked, embargo_days), what (targets, granularity: cells or areas of a level,
the rows and columns, the smallest count shown) and how (formats, an optional database role).

A recipient without an agreement that is in force receives nothing: `status(agreement, when)`
says whether it is, and why not.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from riskradar.config import Name, Settings, _explain, _Model, _read_yaml, check_name
from riskradar.errors import ConfigError

# What a package row may hold, by granularity. `target` and `week` say what a row is about and
# are in every package (KEY_COLUMNS); an agreement lists the rest, and a package holds exactly
# those. `geometry` is the cell's square or the area's outline (WGS84): the GeoPackage's geometry,
# `geometry_wkt` in the CSV. `expected_count` is shown as published: "<k" below the agreement's k.
# `drivers` are the features that raise a cell's forecast most (driver_i, driver_i_detail).
KEY_COLUMNS = ["target", "week"]
CELL_COLUMNS = [
    "cell_id",
    "geometry",
    "rank",
    "percentile",
    "hotspot",
    "expected_count",
    "area_code",
    "area_name",
    "drivers",
]
AREA_COLUMNS = [
    "area_code",
    "area_name",
    "geometry",
    "rank",
    "cells",
    "expected_count",
    "hotspot_cells",
    "share_of_hotspots",
]
FORMATS = ["gpkg", "csv", "html"]


class Recipient(_Model):
    organisation: str = Field(min_length=1)
    contact_role: str = Field(min_length=1, description="who receives it, by role (not a person's name)")


class Revocation(_Model):
    on: date
    reason: str = Field(min_length=1)


class DatabaseAccess(_Model):
    """The recipient's login role in the sharing database (sharing.database of the pipeline config)."""

    password_env: str = Field(
        min_length=1, description="the environment variable holding the role's password"
    )


class Agreement(_Model):
    """A recipient's data-sharing agreement (conf/sharing/<recipient>.yaml)."""

    recipient: Recipient
    version: int = Field(ge=1, description="raised whenever the agreement changes")
    purpose: str = Field(min_length=1)
    legal_basis: str = Field(min_length=1)
    valid_from: date
    valid_until: date
    revoked: Revocation | None = None
    targets: list[Name] = Field(min_length=1)
    granularity: Literal["cell", "area"]
    area_level: Name | None = Field(None, description="granularity area: a level of roles.area_boundaries")
    rows: Literal["all", "hotspots"] = Field(
        "all", description="cells: every study cell, or the hotspots only"
    )
    min_count_shown: int = Field(ge=1, description="k: an expected count below k is shown as '<k'")
    columns: list[str] = Field(min_length=1)
    embargo_days: int = Field(0, ge=0, description="week W is delivered from W + embargo_days on")
    formats: list[Literal["gpkg", "csv", "html"]] = Field(min_length=1)
    database: DatabaseAccess | None = None
    # Filled by load_agreement from the file name: the outbox folder, the role, the register's key.
    name: Name = "unnamed"

    @field_validator("targets", "columns", "formats")
    @classmethod
    def _once(cls, values: list[str]) -> list[str]:
        twice = sorted({v for v in values if values.count(v) > 1})
        if twice:
            raise ValueError(f"listed twice: {twice}")
        return values

    @model_validator(mode="after")
    def _consistent(self) -> Agreement:
        if self.valid_until < self.valid_from:
            raise ValueError(f"valid_until {self.valid_until} is before valid_from {self.valid_from}")
        allowed = CELL_COLUMNS if self.granularity == "cell" else AREA_COLUMNS
        unknown = [c for c in self.columns if c not in allowed]
        if unknown:
            raise ValueError(
                f"columns {unknown} cannot be delivered at granularity {self.granularity!r} "
                f"(allowed: {', '.join(allowed)})"
            )
        if self.granularity == "cell" and self.area_level is not None:
            raise ValueError("area_level is for granularity 'area'; cells have none")
        if self.granularity == "area":
            if self.area_level is None:
                raise ValueError("granularity 'area' needs area_level (a level of roles.area_boundaries)")
            if self.rows != "all":
                raise ValueError("rows 'hotspots' is for granularity 'cell': an area package has every area")
        return self

    @property
    def package_columns(self) -> list[str]:
        """The columns of the package's table, in order."""
        return [*KEY_COLUMNS, *self.columns]


def agreement_status(agreement: Agreement, when: datetime) -> tuple[str, str]:
    """('active', '') or (why not: 'not_yet_valid' | 'expired' | 'revoked', in words), at `when`."""
    day = when.date()
    if agreement.revoked is not None and agreement.revoked.on <= day:
        return "revoked", f"revoked on {agreement.revoked.on}: {agreement.revoked.reason}"
    if day > agreement.valid_until:
        return "expired", f"expired: valid until {agreement.valid_until}"
    if day < agreement.valid_from:
        return "not_yet_valid", f"not yet in force: valid from {agreement.valid_from}"
    return "active", ""


def deliverable_from(agreement: Agreement, week: date) -> date:
    """The first day week `week` (its Monday) may be delivered under the agreement's embargo."""
    return week + timedelta(days=agreement.embargo_days)


def agreement_file(settings: Settings, recipient: str) -> Path:
    return Path(settings.sharing.agreements_dir) / f"{check_name(recipient, 'recipient')}.yaml"


def agreement_sha256(settings: Settings, recipient: str) -> str:
    """The digest of the agreement file as it was read: the register says which text applied."""
    return hashlib.sha256(agreement_file(settings, recipient).read_bytes()).hexdigest()


def load_agreement(settings: Settings, path: Path) -> Agreement:
    """One agreement, checked against the pipeline config; ConfigError names the file and key."""
    data = _read_yaml(path)
    if "name" in data:
        raise ConfigError(f"{path}: key 'name': not an agreement key (the file name {path.stem!r} names it)")
    try:
        agreement = Agreement.model_validate(
            {**data, "name": check_name(path.stem, f"agreement file {path}")}
        )
    except ValidationError as exc:
        raise _explain(path, exc) from None
    _check_against_settings(path, agreement, settings)
    return agreement


def _check_against_settings(path: Path, agreement: Agreement, settings: Settings) -> None:
    for i, target in enumerate(agreement.targets):
        if target not in settings.targets:
            raise ConfigError(
                f"{path}: key 'targets.{i}' = {target!r}: not a target of {settings.config_file} "
                f"(targets: {', '.join(settings.targets)})"
            )
    k = settings.scoring.min_count_shown
    if agreement.min_count_shown < k:
        raise ConfigError(
            f"{path}: key 'min_count_shown' = {agreement.min_count_shown}: must be at least the "
            f"pipeline's scoring.min_count_shown ({k}); an agreement may suppress more, never less"
        )
    if "drivers" in agreement.columns and agreement.min_count_shown != k:
        raise ConfigError(
            f"{path}: key 'columns' names 'drivers' with min_count_shown {agreement.min_count_shown}: "
            f"the drivers' counts are suppressed at scoring.min_count_shown ({k}) when cells are "
            f"scored; leave 'drivers' out, or agree on k = {k}"
        )
    if agreement.granularity == "area":
        role = settings.roles.area_boundaries
        if role is None:
            raise ConfigError(
                f"{path}: key 'granularity' = 'area': {settings.config_file} has no area boundaries "
                f"(roles.area_boundaries), so there are no areas to deliver"
            )
        if agreement.area_level not in role.levels:
            raise ConfigError(
                f"{path}: key 'area_level' = {agreement.area_level!r}: not a level of "
                f"roles.area_boundaries (levels: {', '.join(role.levels)})"
            )
        if agreement.area_level in role.coarser and "area_name" in agreement.columns:
            raise ConfigError(
                f"{path}: key 'columns' names 'area_name', but the level {agreement.area_level!r} is "
                f"made from area codes and has no names: leave 'area_name' out"
            )
    if agreement.database is not None and settings.sharing.database is None:
        raise ConfigError(
            f"{path}: key 'database' is set, but {settings.config_file} names no sharing database "
            f"(sharing.database): configure it, or leave 'database' out"
        )


def load_agreements(settings: Settings) -> dict[str, Agreement]:
    """Every agreement under `sharing.agreements_dir`, by recipient ({} when the folder is absent)."""
    folder = Path(settings.sharing.agreements_dir)
    if not folder.is_dir():
        return {}
    out = {}
    for path in sorted(folder.glob("*.yaml")):
        out[path.stem] = load_agreement(settings, path)
    return out


def now_utc() -> datetime:
    return datetime.now(UTC)
