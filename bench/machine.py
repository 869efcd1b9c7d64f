"""What the bench reads about the machine (Linux ``/proc``): how busy the cores
are, and how much memory a server's processes hold."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["IdleWait", "group_rss_mb", "wait_for_idle_cores"]


@dataclass(frozen=True)
class IdleWait:
    waited_s: float
    busy: dict[int, float]  # per core, the share of the last sample not idle
    idle: bool  # False: the timeout passed with a core still busy


def _core_times() -> dict[int, tuple[int, int]]:
    """(idle + iowait, total) jiffies per core since boot."""
    times = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *fields = line.split()
        if name.startswith("cpu") and name != "cpu":
            ticks = [int(f) for f in fields[:8]]  # user nice system idle iowait irq softirq steal
            times[int(name[3:])] = (ticks[3] + ticks[4], sum(ticks))
    return times


def _busy_shares(sample_s: float) -> dict[int, float]:
    before = _core_times()
    time.sleep(sample_s)
    after = _core_times()
    shares = {}
    for core, (idle, total) in after.items():
        idle_before, total_before = before[core]
        elapsed = total - total_before
        shares[core] = 1 - (idle - idle_before) / elapsed if elapsed else 0.0
    return shares


def wait_for_idle_cores(
    cores: Sequence[int], *, threshold: float, timeout_s: float, sample_s: float = 0.5
) -> IdleWait:
    """Sample ``/proc/stat`` until every core of ``cores`` is busy less than
    ``threshold`` (0-1) over one sample, or ``timeout_s`` passed."""
    started = time.monotonic()
    while True:
        shares = _busy_shares(sample_s)
        busy = {core: shares.get(core, 0.0) for core in cores}
        waited = time.monotonic() - started
        if all(share < threshold for share in busy.values()):
            return IdleWait(waited, busy, idle=True)
        if waited >= timeout_s:
            return IdleWait(waited, busy, idle=False)


def group_rss_mb(pgid: int) -> float:
    """The resident memory of the largest process in process group ``pgid``
    (a server's worker; its supervisor is smaller), in MB."""
    largest = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            if os.getpgid(int(status.parent.name)) != pgid:
                continue
            text = status.read_text()
        except (OSError, ValueError):
            continue
        for line in text.splitlines():
            if line.startswith("VmRSS:"):
                largest = max(largest, int(line.split()[1]))
    return largest / 1024
