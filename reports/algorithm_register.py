"""An Algoritmeregister entry for a target's champion (`riskradar register algorithm`).

The fields are those of the publication standard of the Dutch government's Algoritmeregister
(Ministerie van BZK), version 1.0.0, as its field definitions are published with the register's
own code (github.com/MinBZK/Algoritmeregister, `frontend/public/standards/v1_0_0.json`): each
field's key, whether the standard requires it, its maximum length and its permitted values, kept
here as `FIELDS`. The standard publishes in Dutch (`lang` nld); the entry carries an English text
under the same keys beside it. Text fields hold the few HTML tags the standard allows (p, ul, li).

riskradar fills more than the standard requires: the fields that say what the model does and
how it is overseen (`FILLED`) may not be empty either. `check_entry` names every required field
that is empty, every text that is too long and every value the standard does not permit.

Pure: the config, the contracts and the facts of the champion (`Champion`, gathered from MLflow
by the job) in; the entry as a dict and as Markdown out.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from features.panel import week_of
from reports.model_card import metric_label
from reports.processing_register import require_governance
from riskradar.config import PUBLICATION_CATEGORIES, Settings

STANDARD_VERSION = "1.0.0"
THEME = "Openbare orde en veiligheid"  # the standard's theme of public order and safety
STATUSES = ("In ontwikkeling", "In gebruik", "Buiten gebruik")  # in development, in use, out of use
CATEGORIES = PUBLICATION_CATEGORIES  # high-risk AI system, impactful algorithms, other algorithms
LANGUAGES = ("nld", "eng")


@dataclass(frozen=True)
class FieldSpec:
    """A field of the publication standard: its key, its titles (nl, en), its maximum length,
    whether the standard requires it, its permitted values and whether it is a list."""

    key: str
    nl: str
    en: str
    max_length: int | None = None
    required: bool = False
    permitted: tuple[str, ...] = ()
    is_list: bool = False


FIELDS = (
    FieldSpec("name", "naam", "name", 100, required=True),
    FieldSpec("description_short", "korte omschrijving", "short description", 350, required=True),
    FieldSpec("organization", "organisatie", "organisation", 100, required=True),
    FieldSpec("category", "thema", "theme", is_list=True, permitted=(THEME,)),
    FieldSpec("status", "status", "status", required=True, permitted=STATUSES),
    FieldSpec("begin_date", "begindatum", "start month", 7),
    FieldSpec("end_date", "einddatum", "end month", 7),
    FieldSpec("contact_email", "contactgegevens", "contact", 500, required=True),
    FieldSpec("website", "link naar publiekspagina", "public page", 500),
    FieldSpec(
        "publication_category",
        "publicatiecategorie",
        "publication category",
        required=True,
        permitted=CATEGORIES,
    ),
    FieldSpec("url", "link naar bronregistratie", "source registration", 500),
    FieldSpec("goal", "doel en impact", "goal and impact", 2500),
    FieldSpec("proportionality", "afwegingen", "proportionality", 2500),
    FieldSpec("human_intervention", "menselijke tussenkomst", "human intervention", 2500),
    FieldSpec("risks", "risicobeheer", "risk management", 2500),
    FieldSpec("lawful_basis", "wettelijke basis", "legal basis", 2500),
    FieldSpec("lawful_basis_grouping", "verwijzingen wettelijke basis", "legal basis links", is_list=True),
    FieldSpec("process_index_url", "link naar verwerkingsregister", "register of processing", 500),
    FieldSpec(
        "impacttoetsen_grouping", "verwijzingen impacttoetsen", "impact assessment links", is_list=True
    ),
    FieldSpec("impacttoetsen", "toelichting op impacttoetsen", "on impact assessments", 2500),
    FieldSpec("source_data", "gegevens", "data", 2500),
    FieldSpec("source_data_grouping", "verwijzingen gegevensbronnen", "data source links", is_list=True),
    FieldSpec("methods_and_models", "technische werking", "technical operation", 5000),
    FieldSpec("provider", "leverancier", "provider", 200),
    FieldSpec("publiccode", "link naar broncode", "source code", 500),
    FieldSpec("lang", "taal", "language", required=True, permitted=("nld",)),
    FieldSpec(
        "standard_version", "versie publicatiestandaard", "standard version", permitted=(STANDARD_VERSION,)
    ),
    FieldSpec("source_id", "bron-code", "source code name", 100),
    FieldSpec("tags", "zoektermen", "search terms", 2500),
)
# Fields the standard leaves optional that riskradar always fills: what the model is for, how it
# is weighed, overseen and run, on which basis and from which data.
FILLED = (
    "category",
    "begin_date",
    "goal",
    "proportionality",
    "human_intervention",
    "risks",
    "lawful_basis",
    "impacttoetsen",
    "source_data",
    "methods_and_models",
    "standard_version",
    "source_id",
    "tags",
)
MONTH = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$")


@dataclass(frozen=True)
class Champion:
    """What MLflow knows of a target's champion: the registered version (its tags, and when the
    model's first version was made), the training run's backtest window, the metrics of the
    backtested model it is (its child run), its exposure table and the evaluations of its
    published scores; and whether scoring is switched off (the note that says so)."""

    target: str
    model: str
    version: str
    run_id: str
    tags: dict[str, str]
    first_created: date
    first_week_idx: int
    last_week_idx: int
    refit_every_weeks: int
    metrics: dict[str, float]
    exposure: list[dict[str, Any]] = field(default_factory=list)
    git_commit: str = "unknown"
    scoring_off: str | None = None

    @property
    def candidate(self) -> str:
        return self.tags.get("candidate", "unknown")

    @property
    def is_baseline(self) -> bool:
        return self.tags.get("kind") == "baseline"

    @property
    def realised(self) -> dict[str, float]:
        """The realised PAI of each evaluated week (`riskradar evaluate-scores`), by week."""
        prefix = "realised_pai_"
        return {
            k.removeprefix(prefix): float(v) for k, v in sorted(self.tags.items()) if k.startswith(prefix)
        }


def text(*blocks: str | list[str]) -> str:
    """A text field: each string a paragraph, each list a bulleted list (escaped HTML)."""
    out = []
    for block in blocks:
        if isinstance(block, str):
            out.append(f"<p>{html.escape(block, quote=False)}</p>")
        elif block:
            items = "".join(f"<li>{html.escape(item, quote=False)}</li>" for item in block)
            out.append(f"<ul>{items}</ul>")
    return "".join(out)


def as_markdown(value: str) -> str:
    """A text field as Markdown: paragraphs apart, list items as '- '."""
    value = value.replace("</p>", "\n\n").replace("<ul>", "").replace("</ul>", "\n")
    value = value.replace("<li>", "- ").replace("</li>", "\n").replace("<p>", "")
    return html.unescape(value).strip()


def target_names(settings: Settings, target: str) -> tuple[str, str]:
    """(Dutch, English) name of a target: governance.target_names, else its key in words."""
    named = require_governance(settings).target_names.get(target)
    return (named.nl, named.en) if named else (target.replace("_", " "),) * 2


def interval(metrics: dict[str, float], name: str, signed: bool = False) -> str:
    """'2.41 [1.90, 2.95]' from `<name>_mean/_low/_high`; 'n/a' where the run has none."""
    values = [metrics.get(f"{name}_{end}") for end in ("mean", "low", "high")]
    if any(v is None for v in values):
        return "n/a"
    form = "{:+.2f}" if signed else "{:.2f}"
    mean, low, high = (form.format(v) for v in values)
    return f"{mean} [{low}, {high}]"


def performance(settings: Settings, champion: Champion) -> tuple[list[str], list[str]]:
    """(Dutch, English) lines on the backtest: its window, the champion's metrics with their 95 %
    intervals and its paired gain over the best baseline on the promotion metric."""
    assert settings.training is not None
    m, metric = champion.metrics, settings.training.promotion_metric
    first, last = week_of(champion.first_week_idx), week_of(champion.last_week_idx)
    weeks = champion.last_week_idx - champion.first_week_idx + 1
    shown = [x for x in ("pai_1", "pai_3", "pai_5", "hit_rate_3", "pei_3") if f"{x}_mean" in m]
    values = "; ".join(f"{metric_label(x)}% {interval(m, x)}" for x in shown) or "n/a"
    gain = interval(m, f"paired_gain_{metric}", signed=True)
    won = f"{int(m['weeks_won'])}/{weeks}" if "weeks_won" in m else "n/a"
    nl = [
        f"backtest: {weeks} weken, van de week van {first} tot en met die van {last}, rollende oorsprong, "
        f"elke {champion.refit_every_weeks} weken opnieuw getraind",
        f"gemiddelden over de backtestweken met 95%-bootstrapinterval: {values}",
        f"gepaarde winst ten opzichte van de beste baseline op {metric_label(metric)}%: {gain}, "
        f"gewonnen weken {won}",
    ]
    en = [
        f"backtest: {weeks} weeks, from the week of {first} to that of {last}, rolling origin, refit "
        f"every {champion.refit_every_weeks} weeks",
        f"means over the backtest weeks with 95 % bootstrap intervals: {values}",
        f"paired gain over the best baseline at {metric_label(metric)}%: {gain}, weeks won {won}",
    ]
    return nl, en


def exposure_lines(champion: Champion) -> tuple[list[str], list[str]]:
    """(Dutch, English) one line per exposure stratum: its share of flagged cell-weeks against
    its share of cells and of incidents (the training's `exposure_3pct.csv`)."""
    nl, en = [], []
    for row in champion.exposure:
        flagged, cells, incidents = (
            100 * float(row[k]) for k in ("share_flagged", "share_cells", "share_incidents")
        )
        nl.append(
            f"{row['stratum']}: {flagged:.1f}% van de gemarkeerde cel-weken, {cells:.1f}% van de cellen, "
            f"{incidents:.1f}% van de incidenten"
        )
        en.append(
            f"{row['stratum']}: {flagged:.1f}% of flagged cell-weeks, {cells:.1f}% of cells, "
            f"{incidents:.1f}% of incidents"
        )
    return nl, en


# What a user of the forecasts must not do with them (the README's human oversight section says
# the same): the product's rule that the unit is a place, never a person, as instructions.
MUST_NOT = (
    [
        "geen besluit over een persoon nemen op grond van de uitkomst: niemand staande houden, controleren, "
        "fouilleren of registreren omdat hij of zij in een gemarkeerde cel is",
        "de uitkomst niet koppelen aan persoonsgegevens en er geen personen mee selecteren of rangschikken",
        "de kaart niet als enige grond voor een besluit gebruiken: ze is een hulpmiddel bij het plannen "
        "van preventie, naast de kennis van wijkagenten en professionals",
        "de uitkomst niet verder delen dan het convenant van de ontvanger toestaat",
    ],
    [
        "take no decision about a person on the strength of the output: stop, check, search or record no one "
        "because they are in a flagged cell",
        "link the output to no personal data and use it to select or rank no one",
        "use the map as no sole ground for a decision: it helps to plan prevention, beside the knowledge "
        "of neighbourhood officers and professionals",
        "pass the output on no further than the recipient's agreement allows",
    ],
)


def switch_command(target: str, off: bool = True) -> str:
    return (
        f'riskradar score --target {target} --off --reason "..."'
        if off
        else (f"riskradar score --target {target} --on")
    )


def description(settings: Settings, champion: Champion) -> tuple[str, str]:
    nl_name, en_name = target_names(settings, champion.target)
    size = f"{settings.grid.cell_size_m:g}"
    return (
        f"Dit algoritme voorspelt voor elke cel van {size} bij {size} meter hoeveel incidenten van de soort "
        f"{nl_name} er de komende week te verwachten zijn. Partners richten er preventie mee op plekken. "
        "Het gaat nooit over personen.",
        f"This algorithm forecasts for every {size} by {size} metre cell how many incidents of the kind "
        f"{en_name} to expect in the coming week. Partners use it to direct prevention to places. It "
        "never concerns persons.",
    )


def goal(settings: Settings) -> tuple[str, str]:
    purpose = require_governance(settings).purpose
    share = f"{100 * settings.scoring.hotspot_coverage:g}"
    return (
        text(
            purpose.nl,
            "Impact: inwoners en bedrijven komen niet rechtstreeks met het algoritme in aanraking. Het "
            f"markeert elke week de {share}% cellen met de hoogste verwachting; daar kan meer preventie of "
            "toezicht komen. Het algoritme neemt geen besluiten en gaat niet over personen.",
        ),
        text(
            purpose.en,
            "Impact: residents and businesses do not deal with the algorithm directly. Each week it flags "
            f"the {share}% of cells with the highest expectation; more prevention or patrols may go there. "
            "The algorithm takes no decisions and does not concern persons.",
        ),
    )


def proportionality(settings: Settings, champion: Champion) -> tuple[str, str]:
    training = settings.training
    assert training is not None
    label, margin = metric_label(training.promotion_metric), f"{training.promotion_margin:g}"
    if training.promotion_lower_end is None:
        bar_nl, bar_en = f"met {margin} verslaat", f"beats the best baseline at {label}% by {margin}"
    else:
        low = f"{training.promotion_lower_end:g}"
        bar_nl = f"aantoonbaar verslaat (de ondergrens van het 95%-interval van de winst boven {low})"
        bar_en = (
            f"clearly beats the best baseline at {label}% (the lower end of the 95 % interval of its "
            f"gain above {low})"
        )
    gain = interval(champion.metrics, f"paired_gain_{training.promotion_metric}", signed=True)
    return (
        text(
            "Voordeel: preventie gaat naar de plekken waar incidenten naar verwachting samenkomen, op grond "
            "van getoetste cijfers in plaats van indruk alleen.",
            "Nadeel: plekken met veel registraties krijgen meer aandacht, en meer aandacht kan daar weer tot "
            "meer registraties leiden. Aandacht voor een buurt kan voor bewoners belastend zijn.",
            "Alternatieven: eenvoudige vuistregels (baselines, zoals het gemiddelde van de afgelopen "
            f"weken). Een geleerd model wordt alleen kampioen als het de beste baseline op {label}% "
            f"{bar_nl}; anders dient de beste baseline als voorspelling. Winst van deze versie: "
            f"{gain}.",
            "Alleen aantallen per plek en week worden gebruikt; persoonsgegevens worden bij binnenkomst "
            "gepseudonimiseerd of verwijderd. Een voorspelling over personen is uitgesloten.",
        ),
        text(
            "Benefit: prevention goes to the places where incidents are expected to concentrate, on the "
            "strength of tested figures instead of impressions alone.",
            "Drawback: places with many records get more attention, and more attention can lead to more "
            "records there. Attention to a neighbourhood can burden its residents.",
            f"Alternatives: simple rules (baselines, such as the mean of the past weeks). A learned model "
            f"becomes champion only if it {bar_en}; otherwise the "
            f"best baseline serves as the forecast. Gain of this version: {gain}.",
            "Only counts per place and week are used; personal data are pseudonymised or dropped on "
            "arrival. A forecast about persons is ruled out.",
        ),
    )


def human_intervention(settings: Settings, champion: Champion) -> tuple[str, str]:
    reviewer = require_governance(settings).reviewer_role
    off, on = switch_command(champion.target), switch_command(champion.target, off=False)
    nl_state = f" Het scoren staat nu uit: {champion.scoring_off}." if champion.scoring_off else ""
    en_state = f" Scoring is switched off now: {champion.scoring_off}." if champion.scoring_off else ""
    return (
        text(
            "Een mens besluit over de inzet: de kaart is een hulpmiddel bij het plannen, geen besluit.",
            "De promotiepoort maakt een versie alleen kampioen als zij de beste baseline verslaat. De "
            f"{reviewer} beoordeelt elke nieuwe kampioen in MLflow (modelkaart, vergelijkingstabel, "
            "blootstellingstabel) en kan de alias champion naar een andere versie verplaatsen.",
            f"Het scoren stoppen: {off} zet het scoren van deze soort uit, ook na een nieuwe training, tot "
            f"{on}. De wekelijkse run slaat haar dan over.{nl_state}",
            "Wat een gebruiker niet mag doen met de uitkomst:",
            MUST_NOT[0],
        ),
        text(
            "A person decides what is done: the map helps to plan, it is no decision.",
            "The promotion gate makes a version champion only if it beats the best baseline. The "
            f"{reviewer} reviews every new champion in MLflow (model card, comparison table, exposure "
            "table) and can move the alias champion to another version.",
            f"To stop scoring: {off} switches scoring of this kind off, also after a new training, until "
            f"{on}. The weekly run then skips it.{en_state}",
            "What a user must not do with the output:",
            MUST_NOT[1],
        ),
    )


def risks(settings: Settings, champion: Champion) -> tuple[str, str]:
    share = f"{100 * settings.scoring.hotspot_coverage:g}"
    exposure_nl, exposure_en = exposure_lines(champion)
    realised = champion.realised
    last = f"; laatste: week van {max(realised)}, PAI {realised[max(realised)]:.2f}" if realised else ""
    last_en = f"; latest: week of {max(realised)}, PAI {realised[max(realised)]:.2f}" if realised else ""
    return (
        text(
            "Discriminatie en terugkoppeling: politieregistraties volgen deels waar al gesurveilleerd "
            f"wordt. De blootstellingstabel van de backtest ({share}% van de cellen gemarkeerd) vergelijkt "
            "per groep buurten het aandeel gemarkeerde cellen met hun aandeel cellen en incidenten:",
            exposure_nl or ["geen groepen: de configuratie noemt geen indicator die ze vormt"],
            "Monitoring: elke week vergelijkt riskradar evaluate-scores de gepubliceerde hotspots met wat er "
            "gebeurde (hit rate, PAI, PEI*) en waarschuwt als de PAI onder de ondergrens van het "
            f"backtestinterval valt; {len(realised)} weken geëvalueerd{last}.",
            "Privacy: persoonsgegevens worden bij binnenkomst gepseudonimiseerd of verwijderd; gedeelde "
            f"aantallen onder {settings.scoring.min_count_shown} worden niet getoond.",
        ),
        text(
            "Discrimination and feedback: police records partly follow where patrols already go. The "
            f"backtest's exposure table ({share}% of cells flagged) compares, per group of areas, the share "
            "of flagged cells with their share of cells and of incidents:",
            exposure_en or ["no groups: the config names no indicator that forms them"],
            "Monitoring: each week riskradar evaluate-scores compares the published hotspots with what "
            "happened (hit rate, PAI, PEI*) and warns when the PAI falls below the lower end of the "
            f"backtest interval; {len(realised)} weeks evaluated{last_en}.",
            "Privacy: personal data are pseudonymised or dropped on arrival; shared counts below "
            f"{settings.scoring.min_count_shown} are not shown.",
        ),
    )


def lawful_basis(settings: Settings) -> tuple[str, str]:
    basis = require_governance(settings).legal_basis
    feeds = [f"{c.partner} ({c.name}): {c.legal_basis}" for c in settings.contracts.values()]
    return (
        text(basis.nl, "De gegevens van de partners:", feeds),
        text(basis.en, "The partners' data:", feeds),
    )


def source_data(settings: Settings) -> tuple[str, str]:
    """The feeds the panel is built from, with what is done with their personal columns."""
    nl, en = [], []
    for c in settings.contracts.values():
        kept, dropped = c.pseudonymised_columns, [x.name for x in c.columns if x.personal == "drop"]
        nl.append(
            f"{c.partner} ({c.name}): {c.description}"
            + (f" Gepseudonimiseerd: {', '.join(kept)}." if kept else "")
            + (f" Verwijderd: {', '.join(dropped)}." if dropped else "")
        )
        en.append(
            f"{c.partner} ({c.name}): {c.description}"
            + (f" Pseudonymised: {', '.join(kept)}." if kept else "")
            + (f" Dropped: {', '.join(dropped)}." if dropped else "")
        )
    return (
        text("Tellingen per cel en week (gold.features), gemaakt uit de leveringen van:", nl),
        text("Counts per cell and week (gold.features), built from the deliveries of:", en),
    )


def methods(settings: Settings, champion: Champion) -> tuple[str, str]:
    """The technical operation: self-learning or not, input, model, output, the backtest's
    performance, the gate's reason and which version and code it is."""
    tags, share = champion.tags, f"{100 * settings.scoring.hotspot_coverage:g}"
    perf_nl, perf_en = performance(settings, champion)
    blend = tags.get("blend")
    params = tags.get("params", "n/a")
    if champion.is_baseline:
        model_nl = (
            f"Zelflerend: nee. Deze versie is de baseline {champion.candidate}: een vuistregel uit de eigen "
            "geschiedenis van de cel."
        )
        model_en = (
            f"Self-learning: no. This version is the baseline {champion.candidate}: a rule from the cell's "
            "own history."
        )
    else:
        model_nl = f"Zelflerend: ja. Model {champion.candidate} (scikit-learn), hyperparameters {params}" + (
            f", gemengd met een baseline: {blend}." if blend else "."
        )
        model_en = (
            f"Self-learning: yes. Model {champion.candidate} (scikit-learn), hyperparameters {params}"
            + (f", blended with a baseline: {blend}." if blend else ".")
        )
    card = f"runs:/{champion.run_id}/model_card.md"
    version = (
        f"{champion.model} v{champion.version}, MLflow run {champion.run_id}, commit {champion.git_commit}"
    )
    return (
        text(
            model_nl,
            "Invoer: de tabel van cellen en weken (gold.features): eerdere tellingen per categoriegroep, "
            "vervallende tellingen, tellingen in naburige cellen, signalen van andere partners, "
            "buurtkenmerken en de kalender; alles van vóór de voorspelde week.",
            f"Uitvoer per cel: het verwachte aantal, de rang, het percentiel, een hotspotvlag (de {share}% "
            "hoogste cellen) en de kenmerken die de verwachting het meest verhogen.",
            "Prestaties:",
            perf_nl,
            f"Besluit van de promotiepoort (Engels): {tags.get('gate_reason', 'n/a')}",
            f"Versie: {version}; modelkaart {card}.",
        ),
        text(
            model_en,
            "Input: the table of cells and weeks (gold.features): past counts per category group, decayed "
            "counts, counts in neighbouring cells, other partners' signals, area covariates and the "
            "calendar; all from before the forecast week.",
            f"Output per cell: the expected count, the rank, the percentile, a hotspot flag (the {share}% "
            "highest cells) and the features that raise the expectation most.",
            "Performance:",
            perf_en,
            f"Decision of the promotion gate: {tags.get('gate_reason', 'n/a')}",
            f"Version: {version}; model card {card}.",
        ),
    )


def impact_assessments(settings: Settings) -> tuple[str, str]:
    """Which impact assessments were done (their links are `impacttoetsen_grouping`), or that
    none is linked yet."""
    done = ", ".join(d.title for d in require_governance(settings).impact_assessments)
    if done:
        nl, en = (
            f"Uitgevoerd en gepubliceerd: {done} (zie de links).",
            f"Done and published: {done} (see the links).",
        )
    else:
        nl = "In de configuratie (governance.impact_assessments) is nog geen impacttoets gekoppeld."
        en = "No published impact assessment is linked in the config (governance.impact_assessments) yet."
    return text(nl), text(en)


def status(champion: Champion) -> tuple[str, str]:
    return ("Buiten gebruik", "out of use") if champion.scoring_off else ("In gebruik", "in use")


def end_month(champion: Champion) -> str:
    """The month scoring was switched off (its note starts with the date), or ''."""
    found = re.match(r"([0-9]{4}-[0-9]{2})-[0-9]{2}", champion.scoring_off or "")
    return found[1] if found else ""


CATEGORY_EN = {
    "Hoog-risico AI-systeem": "high-risk AI system",
    "Impactvolle algoritmes": "impactful algorithms",
    "Overige algoritmes": "other algorithms",
}


def algorithm_entry(settings: Settings, champion: Champion) -> dict[str, Any]:
    """The entry: the standard's fields in Dutch (`nld`) and English (`eng`), and beside them
    the figures they quote (performance, exposure, monitoring) and the oversight, for tools."""
    governance = require_governance(settings)
    nl_name, en_name = target_names(settings, champion.target)
    texts = {
        "name": (
            f"riskradar: verwachting {nl_name} per plek en week",
            f"riskradar: forecast of {en_name} per place and week",
        ),
        "description_short": description(settings, champion),
        "status": status(champion),
        "publication_category": (
            governance.publication_category,
            CATEGORY_EN[governance.publication_category],
        ),
        "category": ([THEME], ["public order and safety"]),
        "goal": goal(settings),
        "proportionality": proportionality(settings, champion),
        "human_intervention": human_intervention(settings, champion),
        "risks": risks(settings, champion),
        "lawful_basis": lawful_basis(settings),
        "impacttoetsen": impact_assessments(settings),
        "source_data": source_data(settings),
        "methods_and_models": methods(settings, champion),
        "lang": ("nld", "eng"),
        "tags": (
            f"riskradar, voorspelling, plaatsgebonden, preventie, openbare orde en veiligheid, {nl_name}",
            f"riskradar, forecast, place-based, prevention, public order and safety, {en_name}",
        ),
    }
    shared = {
        "organization": governance.organisation,
        "contact_email": governance.contact,
        "begin_date": governance.in_use_since or f"{champion.first_created:%Y-%m}",
        "end_date": end_month(champion),
        "website": governance.website or "",
        "lawful_basis_grouping": [d.model_dump() for d in governance.legal_basis_links],
        "impacttoetsen_grouping": [d.model_dump() for d in governance.impact_assessments],
        "publiccode": governance.source_code or "",
        "standard_version": STANDARD_VERSION,
        "source_id": champion.model,
    }
    records = {
        lang: {
            s.key: texts[s.key][i] if s.key in texts else shared.get(s.key, [] if s.is_list else "")
            for s in FIELDS
        }
        for i, lang in enumerate(LANGUAGES)
    }
    return {
        "standard": {"name": "Algoritmeregister publicatiestandaard", "version": STANDARD_VERSION},
        "model": {
            "target": champion.target,
            "name": champion.model,
            "version": champion.version,
            "run_id": champion.run_id,
            "recipe": champion.candidate,
            "baseline": champion.is_baseline,
        },
        **records,
        "performance": {
            "promotion_metric": settings.training.promotion_metric if settings.training else None,
            "first_week": str(week_of(champion.first_week_idx)),
            "last_week": str(week_of(champion.last_week_idx)),
            "refit_every_weeks": champion.refit_every_weeks,
            "metrics": champion.metrics,
        },
        "exposure": champion.exposure,
        "monitoring": {"command": "riskradar evaluate-scores", "realised_pai": champion.realised},
        "oversight": oversight(settings, champion),
    }


def oversight(settings: Settings, champion: Champion) -> dict[str, Any]:
    """Who reviews and promotes, whether scoring is on, how to switch it, what users must not do."""
    return {
        "reviewer_role": require_governance(settings).reviewer_role,
        "scoring": "off" if champion.scoring_off else "on",
        "switched_off": champion.scoring_off,
        "switch_off": switch_command(champion.target),
        "switch_on": switch_command(champion.target, off=False),
        "must_not": {"nl": MUST_NOT[0], "en": MUST_NOT[1]},
    }


def check_entry(entry: dict[str, Any]) -> list[str]:
    """What keeps the entry from publication, one line each: a field of the standard missing, a
    required or always-filled field empty, a text over its length, a value not permitted, a
    month not written YYYY-MM, a key the standard does not have. [] when it is complete."""
    problems = []
    for lang in LANGUAGES:
        record = entry.get(lang) or {}
        problems += [f"{lang}: {key!r} is not a field of the standard" for key in record if key not in KEYS]
        for spec in FIELDS:
            problems += _field_problems(lang, spec, record)
    return problems


KEYS = {spec.key for spec in FIELDS}


def _field_problems(lang: str, spec: FieldSpec, record: dict[str, Any]) -> list[str]:
    where = f"{lang}: {spec.key!r} ({spec.nl})"
    if spec.key not in record:
        return [f"{where} is missing"]
    value = record[spec.key]
    if spec.required or spec.key in FILLED:
        if not value or (isinstance(value, str) and not as_markdown(value).strip()):
            return [f"{where} is empty"]
    out = []
    if spec.max_length is not None and len(value) > spec.max_length:
        out.append(f"{where} has {len(value)} characters, the standard allows {spec.max_length}")
    if spec.permitted and lang == "nld" and value:
        wrong = [v for v in (value if spec.is_list else [value]) if v not in spec.permitted]
        out += [f"{where} = {v!r} is not permitted ({', '.join(spec.permitted)})" for v in wrong]
    if spec.key in ("begin_date", "end_date") and value and not MONTH.match(value):
        out.append(f"{where} = {value!r} is not a month written YYYY-MM")
    return out


def algorithm_markdown(entry: dict[str, Any]) -> str:
    """The entry for people: each field in Dutch, with its English text below it."""
    model = entry["model"]
    lines = [
        f"# Algoritmeregister: {model['name']} v{model['version']}",
        "",
        f"Publicatiestandaard {entry['standard']['version']}; MLflow run `{model['run_id']}`. Each field in "
        "Dutch (the register's language), then in English.",
    ]
    for spec in FIELDS:
        nl, en = (_shown(entry[lang][spec.key]) for lang in LANGUAGES)
        if not nl and not en:
            continue
        lines += ["", f"## {spec.nl} / {spec.en} (`{spec.key}`)", "", nl]
        if en != nl:
            lines += ["", f"*English:* {en}" if "\n" not in en else f"*English:*\n\n{en}"]
    return "\n".join(lines) + "\n"


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return "\n".join(f"- {v['title']}: {v['link']}" if isinstance(v, dict) else f"- {v}" for v in value)
    return as_markdown(str(value))
