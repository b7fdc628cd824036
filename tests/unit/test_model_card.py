"""The model card's texts from the config: what the city lacks, said in words."""

from __future__ import annotations

import pandas as pd
import pytest
from synthetic_panel import synthetic_settings

from models.backtest import BacktestResult, compare_paired
from models.metrics import bootstrap_mean, paired_gain
from reports import model_card
from reports.model_card import absent_parts, comparison_table, gate_decision, paired_cell, paired_section


def test_the_card_names_the_parts_the_city_lacks(tmp_path):
    # the synthetic city has indicators but no boundaries and no weather: the card says so
    settings = synthetic_settings(tmp_path)
    assert absent_parts(settings, ["hardship_index"]) == [
        "no area boundaries (roles.area_boundaries): cells belong to no area; no roll-up by area",
        "no weather series (roles.weather): no weather features",
        "no other partners' signals (features.signals)",
    ]
    missing = "no area indicators in gold.features (census_indicators had published nothing)"
    assert absent_parts(settings, [])[1] == missing


def _result(name: str, kind: str, pai_3: list[float], pai_1: list[float] | None = None) -> BacktestResult:
    weekly = pd.DataFrame(
        {
            "week_idx": range(10, 10 + len(pai_3)),
            "pai_1": pai_3 if pai_1 is None else pai_1,
            "pai_3": pai_3,
            "pai_5": pai_3,
            "pei_3": 0.5,
            "deviance": 0.1,
        }
    )
    summary = {m: bootstrap_mean(weekly[m].to_numpy()) for m in weekly.columns if m != "week_idx"}
    return BacktestResult(name, kind, weekly, pd.DataFrame(), summary)


def test_the_comparison_table_and_the_card_show_each_candidates_paired_gain():
    nan = float("nan")
    base = _result("prior_52w", "baseline", [4.0, 5.0, 6.0, 5.0, nan, 4.0])
    other = _result("prior_1w", "baseline", [1.0] * 6)
    hgb = _result("hgb", "candidate", [5.0, 5.0, 7.0, 5.5, 3.0, 4.0])
    glm = _result("glm", "candidate", [3.0, 4.0, 5.0, 4.0, 2.0, nan])
    paired = compare_paired([base, other, hgb, glm], base, "pai_3", block=2, n_boot=500, seed=3)
    assert set(paired.gains) == {"hgb", "glm"}
    # hgb: differences 1, 0, 1, 0.5, (undefined), 0 -> mean 0.5, won 3 of 5
    expected = pd.DataFrame(
        {
            "week": [10, 11, 12, 13, 14, 15],
            "candidate": [5.0, 5.0, 7.0, 5.5, 3.0, 4.0],
            "baseline": [4.0, 5.0, 6.0, 5.0, nan, 4.0],
            "difference": [1.0, 0.0, 1.0, 0.5, nan, 0.0],
        }
    )
    pd.testing.assert_frame_equal(paired.weekly["hgb"], expected)
    hgb_gain, glm_gain = paired.gains["hgb"], paired.gains["glm"]
    assert (hgb_gain.mean, hgb_gain.weeks, hgb_gain.won) == (0.5, 5, 3)
    assert (glm_gain.mean, glm_gain.weeks, glm_gain.won) == (-1.0, 4, 0)
    assert glm_gain.low == glm_gain.high == -1.0  # the same difference every week

    lines = comparison_table([base, other, hgb, glm], paired).splitlines()
    assert lines[0].endswith("| deviance | paired gain vs prior_52w, PAI@3 [95% CI] (weeks won) |")
    assert lines[1] == "|---|---|---|---|---|---|---|---|"
    rows = {line.split(" | ")[0].lstrip("| "): line.rsplit(" | ", 1)[1] for line in lines[2:]}
    assert rows == {
        "hgb": f"{paired_cell(hgb_gain)} |",
        "prior_52w": "0 (reference) |",
        "glm": "-1.00 [-1.00, -1.00] (0/4) |",
        "prior_1w": " |",
    }
    assert paired_cell(hgb_gain) == f"+0.50 [{hgb_gain.low:+.2f}, {hgb_gain.high:+.2f}] (3/5)"
    section = paired_section(paired)
    assert "## Paired comparison with the best baseline" in section
    assert "500 circular block-bootstrap resamples" in section and "runs of 2" in section
    assert "seed 3" in section and "With 5 weeks in 3 blocks" in section
    assert f"| hgb | {paired_cell(hgb_gain)} |" in section
    assert "| glm | -1.00 [-1.00, -1.00] (0/4) |" in section
    assert paired_section(None) == ""
    # without a paired comparison, the table is as before
    assert comparison_table([hgb]).splitlines()[0].endswith("| deviance |")


def test_the_paired_gains_at_other_coverages_stand_beside_the_promotion_metrics():
    base = _result("prior_52w", "baseline", [4.0, 5.0, 6.0, 5.0], pai_1=[6.0, 8.0, 9.0, 7.0])
    hgb = _result("hgb", "candidate", [5.0, 5.0, 7.0, 4.5], pai_1=[9.0, 8.0, 11.0, 8.0])
    by_metric = {
        m: compare_paired([base, hgb], base, m, block=2, n_boot=500, seed=3) for m in ("pai_3", "pai_1")
    }
    pai_3, pai_1 = by_metric["pai_3"], by_metric["pai_1"]
    # pai_1 differences 3, 0, 2, 1 -> mean 1.5, won 3 of 4; pai_3: 1, 0, 1, -0.5 -> 0.375, 2 of 4
    assert pai_1.gains["hgb"] == paired_gain(
        hgb.weekly["pai_1"].to_numpy(), base.weekly["pai_1"].to_numpy(), block=2, n_boot=500, seed=3
    )
    assert (pai_1.gains["hgb"].mean, pai_1.gains["hgb"].won) == (1.5, 3)
    assert (pai_3.gains["hgb"].mean, pai_3.gains["hgb"].won) == (0.375, 2)

    lines = comparison_table([base, hgb], pai_3, [pai_1]).splitlines()
    assert lines[0].endswith(
        "| deviance | paired gain vs prior_52w, PAI@3 [95% CI] (weeks won) "
        "| paired gain vs prior_52w, PAI@1 [95% CI] (weeks won) |"
    )
    assert lines[1] == "|---|---|---|---|---|---|---|---|---|"
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ")[7:] for line in lines[2:]}
    assert rows == {
        "hgb": [paired_cell(pai_3.gains["hgb"]), f"{paired_cell(pai_1.gains['hgb'])} |"],
        "prior_52w": ["0 (reference)", "0 (reference) |"],
    }
    section = paired_section(pai_3, [pai_1])
    assert f"| hgb | {paired_cell(pai_3.gains['hgb'])} | {paired_cell(pai_1.gains['hgb'])} |" in section
    assert "The same gain at PAI@1 is shown beside it; the gate decides on PAI@3 only." in section
    assert "|---|---|---|\n| hgb |" in section
    # without others, the section says nothing of them
    assert "shown beside it" not in paired_section(pai_3)


@pytest.mark.parametrize(
    ("state", "said"),
    [
        (("0123456789abcdef", False), "Code: commit `0123456789ab`, with no uncommitted changes"),
        (("0123456789abcdef", True), "Code: commit `0123456789ab` **with uncommitted changes**"),
        ((None, None), "Code: not run from a git checkout"),
    ],
)
def test_the_gate_section_names_the_code_that_trained_the_version(monkeypatch, state, said):
    monkeypatch.setattr(model_card, "code_state", lambda: state)
    best = _result("hgb_poisson", "candidate", [5.0, 6.0])
    section = gate_decision("riskradar-burglary", best, "3", "champion", "it beats the baseline", "3")
    (line,) = [line for line in section.splitlines() if line.startswith("Code: ")]
    assert line.startswith(said)
    assert ("do not promote it" in line) is (state[1] is True)
