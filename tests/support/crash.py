"""Jobs run in a process of their own that kills itself at a chosen step (the runners beside
this file), for the tests that a killed run leaves the state before it or the state after."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from builders import ROOT
from support.cluster import C1_ONLY


def start_runner(runner: Path, args: list[str], output: Path) -> subprocess.Popen:
    """`runner` with `args` in a process of its own, its output to the file `output`, on this
    checkout's code; its short-lived Spark JVM starts quicker with the C1 compiler only
    (support.cluster.C1_ONLY), which changes nothing it computes."""
    env = {**os.environ, "JDK_JAVA_OPTIONS": C1_ONLY, "PYTHONPATH": str(ROOT)}
    with open(output, "w") as out:
        return subprocess.Popen(
            [sys.executable, str(runner), *args], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )


def wait_killed(process: subprocess.Popen, output: Path, name: str) -> None:
    """Wait for a runner that was to kill itself; fail with its output if it did not."""
    try:
        process.wait(timeout=300)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the {name} run did not end in 300 s; its output:\n{output.read_text()}")
    assert process.returncode == -signal.SIGKILL, output.read_text()
