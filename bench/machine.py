"""Facts about the machine a benchmark ran on."""

from __future__ import annotations

import os
import platform
import subprocess
import threading
import time
from pathlib import Path
from typing import Any


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def _python_version(python: Path) -> str:
    try:
        result = subprocess.run(
            [str(python), "-c", "import platform; print(platform.python_version())"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return result.stdout.strip()


def _cpu_times() -> tuple[int, int] | None:
    try:
        fields = [
            int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        ]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields), idle


def busy_fraction(seconds: float = 1.0) -> float | None:
    """How busy the machine's CPUs were over the next ``seconds`` (0..1), from /proc/stat."""
    before = _cpu_times()
    time.sleep(seconds)
    after = _cpu_times()
    if before is None or after is None or after[0] == before[0]:
        return None
    total, idle = after[0] - before[0], after[1] - before[1]
    return round(1 - idle / total, 3)


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (other work on the machine skews the figures)."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def machine_facts(runtime_python: Path) -> dict[str, Any]:
    """CPUs usable here, CPU model, memory, kernel, and both Pythons' versions."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpus": usable,
        "cpuModel": _cpu_model(),
        "memoryGb": round(_memory_gb(), 1),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "runtimePython": _python_version(runtime_python),
    }


def _process_table() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds so far) of every process readable in /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    table: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        table[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks)
    return table


class ForeignLoad:
    """CPU time used during a run by processes outside this process's tree (other work on the
    machine), sampled every ``interval`` seconds from /proc; processes that live shorter than
    an interval are missed. ``with ForeignLoad() as load: ...``, then :meth:`to_json`."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self.cpu_seconds = 0.0
        self.busiest: dict[str, float] = {}
        self._last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = 0.0
        self._elapsed = 0.0

    def _ours(self, pid: int, table: dict[int, tuple[int, float]]) -> bool:
        own = os.getpid()
        for _ in range(64):
            if pid == own:
                return True
            parent = table.get(pid)
            if parent is None or parent[0] <= 1:
                return False
            pid = parent[0]
        return False

    def _sample(self) -> None:
        table = _process_table()
        current: dict[int, float] = {}
        for pid, (_parent, cpu) in table.items():
            if self._ours(pid, table):
                continue
            current[pid] = cpu
            before = self._last.get(pid)
            if before is not None and cpu > before:
                self.cpu_seconds += cpu - before
                name = _command(pid)
                self.busiest[name] = self.busiest.get(name, 0.0) + cpu - before
        self._last = current

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> ForeignLoad:
        self._started = time.monotonic()
        self._sample()
        self._thread = threading.Thread(target=self._run, name="foreign-load", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._sample()
        self._elapsed = time.monotonic() - self._started

    def to_json(self) -> dict[str, Any]:
        """CPU seconds of other processes, their share of the machine, the busiest of them."""
        cpus = os.cpu_count() or 1
        share = self.cpu_seconds / (self._elapsed * cpus) if self._elapsed > 0 else None
        top = sorted(self.busiest.items(), key=lambda item: -item[1])[:3]
        return {
            "cpuSeconds": round(self.cpu_seconds, 1),
            "machineShare": None if share is None else round(share, 3),
            "busiest": [{"command": name, "cpuSeconds": round(cpu, 1)} for name, cpu in top],
        }


def _command(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        text = " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)
        return (text or "[" + Path(f"/proc/{pid}/comm").read_text().strip() + "]")[:80]
    except OSError:
        return f"pid {pid}"
