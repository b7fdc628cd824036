"""riskradar.log: one line per message in one format, levels, step timings, progress."""

from __future__ import annotations

import logging
import re
import time

from riskradar.log import Progress, configure, level_of, run_context, step

LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (INFO |WARNING|DEBUG) (\w+)\[(\w+|-)\] (.*)$")


def _lines(capsys) -> list[tuple[str, ...]]:
    out = capsys.readouterr().out.splitlines()
    parsed = [LINE.match(line) for line in out]
    assert all(parsed), out
    return [m.groups() for m in parsed]


def test_each_message_is_one_line_with_the_job_and_run_id_however_often_configured(capsys):
    configure(level_of())
    configure(level_of())  # every job's main configures; a demo runs several in one process
    with run_context("train", "3f2a9c1b0d4e"):
        logging.getLogger("models.backtest").info("fit %d/%d", 1, 7)
    logging.getLogger("intake.ingestion").info("outside a run")
    assert _lines(capsys) == [
        ("INFO ", "train", "3f2a9c1b0d4e", "fit 1/7"),
        ("INFO ", "riskradar", "-", "outside a run"),
    ]


def test_quiet_keeps_warnings_and_verbose_adds_details(capsys):
    log = logging.getLogger("jobs.score")
    try:
        configure(level_of(quiet=True))
        log.info("hidden")
        log.warning("shown")
        configure(level_of(verbose=True))
        log.debug("detail")
    finally:
        configure(level_of())
    assert [(level, text) for level, _, _, text in _lines(capsys)] == [
        ("WARNING", "shown"),
        ("DEBUG", "detail"),
    ]


def test_a_step_logs_its_start_and_end_and_keeps_its_duration(capsys):
    configure(level_of())
    timings: dict[str, float] = {}
    with run_context("build_features", "r1", timings), step("read silver"):
        time.sleep(0.05)
    assert [text for *_, text in _lines(capsys)] == ["read silver ...", "read silver: done in 0 s"]
    assert list(timings) == ["read silver"] and timings["read silver"] >= 0.05


def test_a_long_step_says_it_is_still_at_work_in_its_run(capsys):
    configure(level_of())
    with run_context("build_features", "r3"), step("build and publish the panel", every_s=0.05):
        time.sleep(0.18)
    lines = _lines(capsys)
    texts = [text for *_, text in lines]
    assert texts[0] == "build and publish the panel ..." and texts[-1].endswith("done in 0 s")
    beats = texts[1:-1]
    assert len(beats) >= 2 and all(
        t == "build and publish the panel: still at work, 0 s elapsed" for t in beats
    )
    assert {(job, run_id) for _, job, run_id, _ in lines} == {("build_features", "r3")}


def test_progress_counts_its_parts_and_its_heartbeat_speaks_between_them(capsys):
    configure(level_of())
    with run_context("train", "r2"), Progress("fit", 2, every_s=0.05) as progress:
        time.sleep(0.2)  # one long part: the heartbeat says the step is still at work
        progress.advance("for burglary")
        progress.advance("for burglary")
    lines = _lines(capsys)
    texts = [text for *_, text in lines]
    assert texts[0].startswith("fit: still at work on 1/2, ")  # from the timer's thread, in the run's context
    assert "fit 1/2 for burglary, 0 s elapsed" in texts and texts[-1] == "fit 2/2 for burglary, 0 s elapsed"
    assert {(job, run_id) for _, job, run_id, _ in lines} == {("train", "r2")}


def test_a_job_run_as_a_script_logs_its_own_lines(tmp_path):
    """spark-submit runs jobs/<job>.py as a script: its module logger is `__main__`, and its
    lines (train's fits, build-features' steps and heartbeats) reach the task log like the
    others. They were dropped: an Airflow training logged nothing of its own for 50 minutes."""
    import subprocess
    import sys

    job = tmp_path / "a_job.py"
    job.write_text(
        "import logging\n"
        "from riskradar.log import configure, run_context\n"
        "log = logging.getLogger(__name__)\n"
        "configure()\n"
        "with run_context('train', '0123456789ab'):\n"
        "    log.info('fit %d/%d', 1, 7)\n"
        "    log.debug('not at the default level')\n",
        encoding="utf-8",
    )
    out = subprocess.run([sys.executable, str(job)], capture_output=True, text=True, check=True, timeout=120)
    lines = [LINE.match(line) for line in out.stdout.splitlines()]
    assert [m.groups() for m in lines if m] == [("INFO ", "train", "0123456789ab", "fit 1/7")], out


def test_the_heartbeat_is_silent_once_every_part_is_done(capsys):
    """A step that lingers after its last part (logging, registration) is not "still at work on
    2/2": the heartbeat said so when a loaded machine let it speak between the last part and the end."""
    configure(level_of())
    with run_context("train", "r3"), Progress("fit", 2, every_s=0.05) as progress:
        progress.advance("for burglary")
        progress.advance("for burglary")
        time.sleep(0.3)
    texts = [text for *_, text in _lines(capsys)]
    assert texts == ["fit 1/2 for burglary, 0 s elapsed", "fit 2/2 for burglary, 0 s elapsed"]
