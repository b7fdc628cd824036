"""The register of processing (`riskradar register processing`): one entry per enabled feed, as
the AVG (GDPR) art. 30 asks of a controller and the Wpg of police data (Directive (EU) 2016/680,
art. 24): the partner, the purpose, the legal basis, the categories of data and of data
subjects, each personal column and how it is handled, the retention, where the data are kept
and who receives results derived from them.

Pure: the config, its contracts and the data-sharing agreements in; a dict (the JSON for tools)
and Markdown (for the data protection officer) out. Nothing here reads the lake: the register
says what the configuration makes the pipeline do.
"""

from __future__ import annotations

from typing import Any

from riskradar.catalog import history_table, silver_table
from riskradar.config import Contract, GovernanceConfig, Settings
from riskradar.errors import ConfigError
from riskradar.sharing import Agreement

LAWS = {
    "avg": "AVG (GDPR), art. 30 register",
    "wpg": "Wpg (police data; Directive (EU) 2016/680, art. 24 register)",
}
# How the pipeline treats a column a contract marks personal (intake.pseudonym, intake.bronze).
HANDLING = {
    "pseudonymise": (
        "pseudonymised at ingest with a keyed HMAC-SHA256 (the key comes from the environment "
        "variable {key_env} and is never stored); only the pseudonym enters the lake's tables"
    ),
    "drop": "dropped at ingest: never written to a table of the lake",
}
KIND_DATA = {
    "events": "records of incidents or reports: when, where (coordinates) and of what category",
    "series": "a city-wide series of daily measures",
    "area_attributes": "aggregate statistics per area",
    "area_boundaries": "the codes, names and outlines of areas",
}


def require_governance(settings: Settings) -> GovernanceConfig:
    """The config's `governance` section, or a ConfigError saying what to add."""
    if settings.governance is None:
        raise ConfigError(
            f"{settings.config_file}: no 'governance' section: the registers need the organisation, "
            "its contact, the privacy officer, the reviewer's role, the purpose and the legal basis "
            "(see conf/riskradar.yaml)"
        )
    return settings.governance


def processing_register(settings: Settings, agreements: dict[str, Agreement]) -> dict[str, Any]:
    """The register as one document: the controller, the purpose, the safeguards that hold for
    every feed, and one entry per enabled feed (in the order of `partners.enabled`)."""
    governance = require_governance(settings)
    return {
        "register": "processing",
        "controller": {
            "organisation": governance.organisation,
            "contact": governance.contact,
            "privacy_officer": governance.privacy_officer,
        },
        "purpose": governance.purpose.model_dump(),
        "config": settings.config_file,
        "lake": str(settings.lake_root),
        "third_country_transfers": governance.third_country_transfers,
        "safeguards": safeguards(settings),
        "entries": [feed_entry(settings, c, agreements) for c in settings.contracts.values()],
    }


def safeguards(settings: Settings) -> list[str]:
    """The technical and organisational measures (AVG art. 30(1)(g)) the pipeline applies."""
    return [
        "the unit of prediction is a place (grid cell) and a week, never a person: person identifiers "
        "never reach features, models or outputs",
        f"personal columns are pseudonymised with a keyed HMAC-SHA256 (key from the environment "
        f"variable {settings.pseudonymisation.key_env}, never written to the lake or the repository) "
        "or dropped at ingest",
        "the delivered files are kept as delivered, for a change of key only, in `_delivered/`: "
        "readable by the pipeline's user alone and read by `riskradar rekey` alone",
        f"published counts below {settings.scoring.min_count_shown} are shown as "
        f"'<{settings.scoring.min_count_shown}'; a recipient receives only what its agreement allows, "
        "and every delivery is recorded in the register of disclosures (`riskradar disclosures`)",
        "every job run is recorded in the lake's audit log (inputs with their sha256, counts, outputs)",
    ]


def feed_entry(settings: Settings, contract: Contract, agreements: dict[str, Agreement]) -> dict[str, Any]:
    """One feed's entry of the register."""
    governance = require_governance(settings)
    personal = [c for c in contract.columns if c.personal is not None]
    key_env = settings.pseudonymisation.key_env
    return {
        "feed": contract.name,
        "partner": contract.partner,
        "description": contract.description,
        "law": LAWS[contract.privacy_law],
        "purpose": governance.purpose.model_dump(),
        "legal_basis": contract.legal_basis,
        "data_categories": data_categories(contract),
        "data_subjects": data_subjects(contract),
        "personal_columns": [
            {"column": c.name, "handling": c.personal, "how": HANDLING[c.personal].format(key_env=key_env)}
            for c in personal
        ],
        "other_columns": [c.name for c in contract.columns if c.personal is None],
        "retention_days": contract.retention_days,
        "storage": storage(settings, contract),
        "used_for": uses(settings, contract.name),
        "recipients": recipients(settings, contract.name, agreements),
    }


def data_categories(contract: Contract) -> list[str]:
    """What the feed holds, in words: its kind, its mapped fields and its personal columns."""
    found = [KIND_DATA[contract.kind]]
    if contract.events:
        found.append(
            f"{len(contract.events.category.map)} partner category codes, mapped to the canonical categories"
        )
        if contract.events.domestic_column:
            found.append("a flag marking incidents in a domestic setting")
    if contract.privacy_law == "wpg":
        found.append("police data (politiegegevens) about criminal offences")
    pseudonymised, dropped = contract.pseudonymised_columns, _dropped(contract)
    if pseudonymised:
        found.append(
            f"identifiers that link to persons, kept as pseudonyms only ({', '.join(pseudonymised)})"
        )
    if dropped:
        found.append(f"data about persons or their addresses, not kept ({', '.join(dropped)})")
    return found


def _dropped(contract: Contract) -> list[str]:
    return [c.name for c in contract.columns if c.personal == "drop"]


def data_subjects(contract: Contract) -> str:
    if not any(c.personal for c in contract.columns):
        return "none: the contract marks no column as personal data"
    return (
        "persons the delivered records relate to (for example those who reported, were affected or "
        "were registered), identifiable only through the columns marked personal"
    )


def storage(settings: Settings, contract: Contract) -> list[str]:
    """Where the feed's data are: landing (the partner's), the raw copies, the lake's layers."""
    table = silver_table(contract)
    kept = [
        f"landing `{settings.partners.landing_root}/{contract.landing.path}/`: the files as delivered "
        "(the partner's area; the pipeline only reads it)",
        f"`_delivered/{contract.name}/`: a raw copy of each ingested file version, owner-only, for a "
        "change of pseudonymisation key, removed with the last of its rows",
        f"`bronze/{contract.name}/`: the delivered rows, personal columns pseudonymised or dropped",
        f"`quarantine/{contract.name}/`: rows that failed a row rule, as in bronze, for review",
        f"`silver/{table}/` and `silver/{history_table(contract)}/`: the conformed current rows and "
        "the versions they superseded",
    ]
    if contract.kind == "events":
        kept.append(
            f"`silver/expired_counts/partner={contract.name}/`: once `riskradar retention` has removed "
            "its events, their counts per week, grid cell and category (no personal data), kept "
            f"{settings.retention.counts_days} days for the panel's long-run features"
        )
    if uses(settings, contract.name):
        kept.append(
            "`gold/features/` and `gold/scores/`: counts and forecasts per grid cell and week, "
            "which hold no personal data"
        )
    return kept


def uses(settings: Settings, feed: str) -> list[str]:
    """What the feed's data are used for in the panel (empty: for nothing beyond silver)."""
    found = []
    features = settings.features
    if features is not None and feed in features.crime_feeds:
        found.append("incident counts per cell and week (features and labels)")
    if features is not None and feed in features.signals:
        found.append("counts per cell and week as another partner's signal (features)")
    for role, spec in settings.roles:
        if spec is not None and spec.feed == feed:
            found.append(f"the role {role.replace('_', ' ')}")
    return found


def recipients(settings: Settings, feed: str, agreements: dict[str, Agreement]) -> list[dict[str, Any]]:
    """Who receives results derived from the feed: every agreement, when the feed feeds the
    panel the forecasts come from (results are per place and week, never per person)."""
    if not uses(settings, feed):
        return []
    return [
        {
            "recipient": name,
            "organisation": a.recipient.organisation,
            "contact_role": a.recipient.contact_role,
            "purpose": a.purpose.rstrip("."),
            "legal_basis": a.legal_basis,
            "receives": f"{', '.join(a.targets)} per {a.area_level or 'grid cell'}, counts below "
            f"{a.min_count_shown} shown as '<{a.min_count_shown}'",
            "valid": f"{a.valid_from} .. {a.valid_until}"
            + (f", revoked on {a.revoked.on}: {a.revoked.reason}" if a.revoked else ""),
        }
        for name, a in agreements.items()
    ]


def processing_markdown(register: dict[str, Any]) -> str:
    """The register for people: the controller and safeguards, then a section per feed."""
    controller = register["controller"]
    lines = [
        "# Register of processing",
        "",
        f"Controller: {controller['organisation']} (contact {controller['contact']}; data protection "
        f"officer {controller['privacy_officer']}).",
        "",
        f"Config `{register['config']}`, lake `{register['lake']}`.",
        "",
        f"Purpose (nl): {register['purpose']['nl']}",
        "",
        f"Purpose (en): {register['purpose']['en']}",
        "",
        f"Transfers outside the EEA: {register['third_country_transfers']}.",
        "",
        "Safeguards:",
        *(f"- {s}" for s in register["safeguards"]),
    ]
    for entry in register["entries"]:
        lines += ["", *entry_markdown(entry)]
    return "\n".join(lines) + "\n"


def entry_markdown(entry: dict[str, Any]) -> list[str]:
    rows = [
        ("partner", entry["partner"]),
        ("description", entry["description"]),
        ("register", entry["law"]),
        ("legal basis", entry["legal_basis"]),
        ("categories of data", "; ".join(entry["data_categories"])),
        ("data subjects", entry["data_subjects"]),
        ("retention", f"{entry['retention_days']} days"),
        ("used for", "; ".join(entry["used_for"]) or "nothing beyond its silver table"),
    ]
    personal = [f"| `{c['column']}` | {c['handling']} | {c['how']} |" for c in entry["personal_columns"]]
    recipients = [
        f"- {r['organisation']} ({r['recipient']}, {r['contact_role']}): {r['receives']}; purpose: "
        f"{r['purpose']}; legal basis: {r['legal_basis']}; valid {r['valid']}"
        for r in entry["recipients"]
    ]
    return [
        f"## {entry['feed']}",
        "",
        "| | |",
        "|---|---|",
        *(f"| {key} | {_cell(value)} |" for key, value in rows),
        "",
        "Personal columns:" if personal else "Personal columns: none.",
        *(["", "| column | handling | how |", "|---|---|---|", *personal] if personal else []),
        "",
        "Stored in:",
        *(f"- {s}" for s in entry["storage"]),
        "",
        "Recipients of derived results:" if recipients else "Recipients of derived results: none.",
        *recipients,
    ]


def _cell(text: str) -> str:
    """A value as one Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")
