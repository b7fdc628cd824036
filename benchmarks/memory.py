"""Peak resident memory of this process and all its children (the Spark JVM), sampled."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import psutil


class PeakMemory:
    """Samples RSS of the process tree every `interval` seconds while in use."""

    def __init__(self, interval: float = 0.2):
        self.interval = interval
        self.peak_bytes = 0
        self.peak_detail: list[tuple[str, int]] = []  # (process, RSS bytes) at the peak sample
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        me = psutil.Process()
        detail = [(_label(me), me.memory_info().rss)]
        for child in me.children(recursive=True):
            try:
                # A process forked by its parent and not yet exec'd (the JVM forks for shell
                # commands) shares the parent's pages: counting its RSS would count them twice.
                parent = child.parent()
                if parent is not None and child.cmdline() == parent.cmdline():
                    continue
                detail.append((_label(child), child.memory_info().rss))
            except psutil.Error:
                pass
        total = sum(rss for _, rss in detail)
        if total > self.peak_bytes:
            self.peak_bytes, self.peak_detail = total, detail
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            time.sleep(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    @property
    def peak_gib(self) -> float:
        return self.peak_bytes / 2**30


def _label(proc: psutil.Process) -> str:
    """A short name: the executable and, for Java, its main class."""
    try:
        cmd = proc.cmdline()
    except psutil.Error:
        return proc.name()
    if cmd and cmd[0].endswith("java"):
        main = next((a for a in cmd if a.startswith("org.apache.spark.")), "java")
        return f"java {main}"
    return " ".join(cmd[:3])[:80]


def run_measured(argv: list[str], log: Path, cwd: Path | None = None) -> tuple[float, float]:
    """Run a command with its output in `log`; returns (wall seconds, peak GiB of its process
    tree). Raises on failure, with the log's tail. The processes at the peak are appended to
    the log."""
    with log.open("w") as out, PeakMemory() as mem:
        start = time.perf_counter()
        proc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, check=False)
        wall = time.perf_counter() - start
    with log.open("a") as out:
        for name, rss in mem.peak_detail:
            out.write(f"peak memory: {rss / 2**30:.2f} GiB {name}\n")
    if proc.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-30:])
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}); log {log}:\n{tail}")
    return wall, mem.peak_gib
