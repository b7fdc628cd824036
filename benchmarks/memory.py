"""Peak resident memory of this process and all its children (the Spark JVM), sampled; and the
wall time, CPU time and peak memory of a command run as a child (`measure`)."""

from __future__ import annotations

import resource
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil


class PeakMemory:
    """Samples RSS of the process tree every `interval` seconds while in use, and the CPU time
    each process of it has used so far (`cpu_seconds`)."""

    def __init__(self, interval: float = 0.2):
        self.interval = interval
        self.peak_bytes = 0
        self.peak_detail: list[tuple[str, int]] = []  # (process, RSS bytes) at the peak sample
        self._cpu: dict[tuple[int, float], float] = {}  # (pid, start) -> user + system seconds seen
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
                times = child.cpu_times()
                self._cpu[(child.pid, child.create_time())] = times.user + times.system
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

    def cpu_seconds(self, *, excluding: int | None = None) -> float:
        """CPU seconds (user + system) of this process's descendants, each as last sampled (one
        that ended between samples loses at most `interval` of it), but `excluding`'s own."""
        return sum(cpu for (pid, _), cpu in self._cpu.items() if pid != excluding)


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


@dataclass(frozen=True)
class Measured:
    wall_s: float
    cpu_s: float  # CPU seconds of the command's process tree
    peak_gib: float  # peak resident memory of the process tree


def measure(argv: list[str], log: Path, cwd: Path | None = None) -> Measured:
    """Run a command with its output in `log`: its wall time, the CPU time of its process tree
    (the command's own, exact, with that of the processes it waited for, plus each other
    descendant's as last sampled: the Spark JVM and its Python workers) and the tree's peak
    resident memory. Raises on failure, with the log's tail. The processes at the peak are
    appended to the log."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with log.open("w") as out, PeakMemory() as mem:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
        returncode = proc.wait()
        wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    with log.open("a") as out:
        for name, rss in mem.peak_detail:
            out.write(f"peak memory: {rss / 2**30:.2f} GiB {name}\n")
    if returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-30:])
        raise SystemExit(f"{' '.join(argv)} failed ({returncode}); log {log}:\n{tail}")
    return Measured(wall, own + mem.cpu_seconds(excluding=proc.pid), mem.peak_gib)


def run_measured(argv: list[str], log: Path, cwd: Path | None = None) -> tuple[float, float]:
    """`measure`'s (wall seconds, peak GiB of the process tree)."""
    result = measure(argv, log, cwd)
    return result.wall_s, result.peak_gib
