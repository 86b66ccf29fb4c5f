"""CPU time and memory read from /proc: a process and its descendants, and the whole machine."""

import os
from dataclasses import dataclass
from pathlib import Path

TICKS_PER_S = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


def _stat_fields(pid: str) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name, or None if it is gone."""
    try:
        text = (PROC / pid / "stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def tree_cpu_s(root: int) -> float:
    """User plus system CPU seconds of ``root`` and every live descendant."""
    # After the name: state, ppid, …; utime and stime are fields 14 and 15 of stat.
    ticks = {pid: int(fields[11]) + int(fields[12]) for pid, fields in _tree(root).items()}
    return sum(ticks.values()) / TICKS_PER_S


def tree_rss_mb(root: int) -> float:
    """Resident memory of ``root`` and every live descendant, in MiB."""
    pages = sum(int(fields[21]) for fields in _tree(root).values())
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _tree(root: int) -> dict[int, list[str]]:
    """The stat fields of ``root`` and its live descendants, by pid."""
    stats: dict[int, list[str]] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit() and (fields := _stat_fields(entry.name)) is not None:
            stats[int(entry.name)] = fields
    tree = {root}
    grew = True
    while grew:
        children = {pid for pid, fields in stats.items() if int(fields[1]) in tree} - tree
        tree |= children
        grew = bool(children)
    return {pid: stats[pid] for pid in tree if pid in stats}


def machine_busy_s() -> float:
    """CPU seconds all cores spent on anything but idle and I/O wait since boot."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(value) for value in (PROC / "stat").read_text().split()[1:9]
    )
    return (user + nice + system + irq + softirq + steal) / TICKS_PER_S


@dataclass
class CpuMeter:
    """CPU used by a process tree and by the machine between ``start`` and ``stop``."""

    root: int
    tree_s: float = 0.0
    machine_s: float = 0.0

    def start(self) -> None:
        self.tree_s, self.machine_s = tree_cpu_s(self.root), machine_busy_s()

    def stop(self) -> None:
        self.tree_s = tree_cpu_s(self.root) - self.tree_s
        self.machine_s = machine_busy_s() - self.machine_s
