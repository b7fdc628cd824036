"""The house plan (docs/architecture.md), checked on the source: the layers import only
downwards, no job imports another job, tests use public names only, no package outgrows the
others and no function is too long to read in one screen."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import pytest
from builders import ROOT

# Each layer may import the layers listed for it (and itself); nothing may import upwards.
LAYERS = {
    "riskradar": set(),
    "intake": {"riskradar"},
    "features": {"riskradar"},
    "models": {"riskradar", "features"},
    "reports": {"riskradar", "models", "features"},
    "jobs": {"riskradar", "intake", "features", "models", "reports"},
    "dags": {"riskradar"},
}
PROJECT = set(LAYERS) | {"benchmarks", "scripts", "tests"}
# The code whose size is compared: everything but the tests and the vendored data.
MEASURED = ["riskradar", "intake", "features", "models", "reports", "jobs", "dags", "benchmarks", "scripts"]
MAX_SHARE = 0.30
MAX_FUNCTION_LINES = 80


def _sources(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def _imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, imported module, names imported from it) of every import in a file, nested ones too."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module, [alias.name for alias in node.names]))
    return found


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_layers_import_only_downwards_and_no_job_imports_another():
    wrong = []
    for layer, allowed in LAYERS.items():
        for path in _sources(layer):
            for line, module, names in _imports(path):
                top = module.split(".")[0]
                if top in PROJECT and top != layer and top not in allowed:
                    wrong.append(
                        f"{_rel(path)}:{line} imports {module} ({layer} may import {sorted(allowed)})"
                    )
                if layer == "jobs" and top == "jobs":
                    wrong.append(f"{_rel(path)}:{line} imports {module}: a job imports another job")
                    wrong += [f"{_rel(path)}:{line} imports jobs.{n}" for n in names if module == "jobs"]
    assert wrong == []


def test_tests_import_public_names_only():
    private = []
    for path in _sources("tests"):
        for line, module, names in _imports(path):
            if module.split(".")[0] not in PROJECT - {"tests"}:
                continue
            private += [f"{_rel(path)}:{line} {module}.{n}" for n in names if n.startswith("_")]
            private += [f"{_rel(path)}:{line} {module}" for part in module.split(".") if part.startswith("_")]
    assert private == []


def test_no_package_holds_30_percent_of_the_code():
    lines = Counter()
    for folder in MEASURED:
        lines[folder] = sum(len(p.read_text(encoding="utf-8").splitlines()) for p in _sources(folder))
    total = sum(lines.values())
    shares = {folder: round(n / total, 3) for folder, n in lines.items()}
    assert max(shares.values()) < MAX_SHARE, shares


@pytest.mark.parametrize("folder", [*MEASURED, "tests"])
def test_no_function_is_longer_than_80_lines(folder):
    long = []
    for path in _sources(folder):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{_rel(path)}:{node.lineno} {node.name} ({length} lines)")
    assert long == []


def test_the_documents_the_repository_points_to_are_in_it():
    """The README, the docs and pyproject.toml point only to files of the repository (a clone
    once held pointers to a design and a stack outside it)."""
    import re

    texts = {
        p: p.read_text(encoding="utf-8")
        for p in [ROOT / "README.md", ROOT / "pyproject.toml", *sorted((ROOT / "docs").glob("*.md"))]
    }
    outside = [f"{_rel(p)}: {m}" for p, t in texts.items() for m in re.findall(r"\.\./shared/\S+", t)]
    assert outside == []
    links = [(p, target) for p, t in texts.items() for target in re.findall(r"\]\(([^)#:]+\.md)\)", t)]
    assert links and all((p.parent / target).is_file() for p, target in links), links
