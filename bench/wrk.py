"""Run ``wrk`` (https://github.com/wg/wrk) and read its summary."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

__all__ = ["WrkError", "WrkResult", "parse_wrk_output", "run_wrk"]

_REQUESTS_PER_SECOND = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_P99 = re.compile(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_REQUESTS = re.compile(r"^\s+(\d+) requests in", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


class WrkError(Exception):
    """wrk failed, or its output could not be read."""


@dataclass(frozen=True)
class WrkResult:
    requests_per_second: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: int


def parse_wrk_output(output: str) -> WrkResult:
    """Read the summary ``wrk --latency`` prints."""
    rps = _REQUESTS_PER_SECOND.search(output)
    p99 = _P99.search(output)
    requests = _REQUESTS.search(output)
    if rps is None or p99 is None or requests is None:
        raise WrkError(f"unreadable wrk output:\n{output}")
    non_2xx = _NON_2XX.search(output)
    errors = _SOCKET_ERRORS.search(output)
    return WrkResult(
        requests_per_second=float(rps.group(1)),
        p99_ms=float(p99.group(1)) * _UNIT_MS[p99.group(2)],
        requests=int(requests.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
    )


def run_wrk(
    url: str,
    *,
    duration: float,
    connections: int,
    threads: int = 1,
    cpu: int | None = None,
) -> WrkResult:
    """Load ``url`` for ``duration`` seconds (pinned to ``cpu`` with taskset if given)."""
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--latency",
        url,
    ]
    if cpu is not None:
        command = ["taskset", "-c", str(cpu), *command]
    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=duration + 60, check=False
    )
    if completed.returncode != 0:
        raise WrkError(f"{' '.join(command)} exited {completed.returncode}: {completed.stderr}")
    return parse_wrk_output(completed.stdout)
