"""The pipeline's code names no feed, column or category of the bundled sample (issue 15, point 4).

The config says which feed plays which role (`roles`), and contracts map each feed's columns and
codes: a new city is a config and contracts, never a code edit. This test reads the literals to
look for from the bundled config and contracts themselves (feed names, their delivered columns,
the partners' category codes, the canonical measures, indicators and categories, the city) plus
the sample's wording ('hardship', 'community area'), and fails naming file:line for each string
literal in jobs/, features/, models/ and riskradar/ that holds one.

What is scanned: string literals, f-strings included. Docstrings and comments are prose (usage
lines such as `riskradar train --target burglary` document the bundled example) and are not.
Config literals are matched as the config spells them, as whole words: code that names a feed
or a column must spell it exactly, and a capitalised 'Chicago' in prose (the IANA zone
'America/Chicago' in the help texts, the demo's "bundled Chicago sample") is not the config's
city `chicago`. The sample's wording is matched in any case. A feed named as its role (the
sample's `weather`) is a hit as a whole string only: messages speak of the role.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

from builders import ROOT

from riskradar.config import Roles, load_settings

PACKAGES = ["jobs", "intake", "features", "models", "reports", "riskradar", "dags"]
# file -> why it may name the sample's feeds and columns
EXEMPT = {"benchmarks/synth.py": "the synthetic city is written in the bundled sample's own formats"}
# Columns of the sample's contracts that are riskradar's own vocabulary, not the sample's.
CANONICAL = {
    "date": "the day column of every daily series (riskradar.catalog)",
    "geometry": "the shape column the GeoJSON, GeoPackage and shapefile readers give any boundaries feed",
    "area": "a plain word (an optional column of the sample's boundaries)",
}
# The roles are riskradar's vocabulary too (`roles.weather` in messages, the weather features),
# and the sample's weather feed shares its role's name: prose may say 'weather', but a string
# that is nothing but the name (the way code names a feed or its table) is still a hit.
ROLES = set(Roles.model_fields)
WORDING = ["hardship", "community area"]


def sample_literals(config: Path) -> set[str]:
    """What the bundled config and its contracts name: feeds, delivered columns, partner codes,
    canonical categories, measures and indicators, and the city."""
    settings = load_settings(config)
    found = {settings.city, *settings.categories}
    for contract in settings.contracts.values():
        found.add(contract.name)
        found |= {c.name.strip() for c in contract.columns}
        if contract.events:
            found |= set(contract.events.category.map)
        if contract.series:
            found |= {m.name for m in contract.series.measures}
        if contract.areas:
            found |= {m.name for m in contract.areas.indicators}
    return found - set(CANONICAL)


def _pattern(literals: set[str]) -> re.Pattern[str]:
    exact = "|".join(re.escape(w) for w in sorted(literals, key=len, reverse=True))
    wording = "|".join(re.escape(w) for w in WORDING)
    return re.compile(rf"(?<![A-Za-z0-9_])(?:({exact})(?![A-Za-z0-9_])|((?i:{wording})))")


def _docstring_lines(tree: ast.AST) -> set[int]:
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                if isinstance(body[0].value.value, str):
                    lines.add(body[0].lineno)
    return lines


def _whole_name(token: str, names: set[str]) -> str | None:
    """The name a plain string literal consists of, if it is one of `names`."""
    try:
        value = ast.literal_eval(token)
    except (ValueError, SyntaxError):  # an f-string
        return None
    return value if isinstance(value, str) and value in names else None


def literal_hits(files: list[Path], literals: set[str], root: Path) -> list[str]:
    """'file:line: <literal> in <the line>' for each string literal (not a docstring) naming one,
    or consisting of the name of a feed that shares its role's name."""
    pattern = _pattern(literals - ROLES)
    shared = literals & ROLES
    kinds = {tokenize.STRING, getattr(tokenize, "FSTRING_MIDDLE", tokenize.STRING)}
    hits = []
    for path in files:
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        docstrings = _docstring_lines(ast.parse(source))
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type not in kinds or token.start[0] in docstrings:
                continue
            name = path.relative_to(root).as_posix()
            found = [
                (m.group(0), token.string.count("\n", 0, m.start())) for m in pattern.finditer(token.string)
            ]
            whole = _whole_name(token.string, shared)
            for literal, offset in found + ([(whole, 0)] if whole else []):
                line = token.start[0] + offset
                hits.append(f"{name}:{line}: {literal!r} in {lines[line - 1].strip()[:90]}")
    return hits


def _code_files() -> list[Path]:
    files = [p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))]
    return [p for p in files if p.relative_to(ROOT).as_posix() not in EXEMPT]


def test_the_literals_come_from_the_bundled_config():
    literals = sample_literals(ROOT / "conf" / "riskradar.yaml")
    # every kind of literal is there: feeds, delivered columns, partner codes, categories,
    # measures, indicators, the city; and the canonical words are not
    assert {"police_crimes", "census_indicators", "census_areas", "sanitation_311"} <= literals
    assert {"Primary Type", "HARDSHIP INDEX", "area_numbe", "temperatureMax", "PER CAPITA INCOME"} <= literals
    assert {"BURGLARY", "burglary", "sanitation_complaint", "chicago"} <= literals
    assert {"temperature_max_c", "precip_intensity_mm_h", "hardship_index", "pct_below_poverty"} <= literals
    assert not literals & set(CANONICAL)
    assert literals & ROLES == {"weather"}  # the feed named as its role


def test_no_code_names_a_feed_column_or_category_of_the_sample():
    literals = sample_literals(ROOT / "conf" / "riskradar.yaml")
    files = _code_files()
    assert len(files) > 30 and ROOT / "jobs" / "train.py" in files
    hits = literal_hits(files, literals, ROOT)
    assert hits == [], "the code names the sample's feeds, columns or categories:\n" + "\n".join(hits)


def test_the_scan_finds_a_literal_and_names_file_and_line(tmp_path):
    literals = sample_literals(ROOT / "conf" / "riskradar.yaml")
    code = tmp_path / "jobs" / "job.py"
    code.parent.mkdir()
    code.write_text(
        '"""A docstring may say census_indicators."""\n'
        "def f(settings, row):\n"
        "    # a comment may say weather\n"
        '    contract = settings.contracts.get("census_indicators")\n'
        '    series = read_silver(spark, settings, lake, "weather"), "no weather series"\n'
        "    label = f\"Q1 (least {'Hardship'})\"\n"
        '    return row["weather_prev_temp_max_c"], row["PER CAPITA INCOME "], "outlines: Community Areas"\n'
    )
    hits = literal_hits([code], literals, tmp_path)
    assert [h.split(" in ", 1)[0] for h in hits] == [
        "jobs/job.py:4: 'census_indicators'",
        "jobs/job.py:5: 'weather'",
        "jobs/job.py:6: 'Hardship'",
        "jobs/job.py:7: 'PER CAPITA INCOME'",
        "jobs/job.py:7: 'Community Area'",
    ]
    assert (
        hits[0]
        == "jobs/job.py:4: 'census_indicators' in contract = settings.contracts.get(\"census_indicators\")"
    )
