"""Run ``wrk`` (https://github.com/wg/wrk) and read its summary."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["WrkError", "WrkResult", "parse_wrk_output", "run_wrk"]

_REQUESTS_PER_SECOND = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_PERCENTILE = re.compile(r"^\s+(50|90|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_REQUESTS = re.compile(r"^\s+(\d+) requests in", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
# Printed by requests.lua's done(): answers without the expected text, and
# requests sent after a once-only request list ran out.
_UNEXPECTED = re.compile(r"^unexpected answers: (\d+)$", re.MULTILINE)
_EXHAUSTED = re.compile(r"^requests past the end: (\d+)$", re.MULTILINE)
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


class WrkError(Exception):
    """wrk failed, or its output could not be read."""


@dataclass(frozen=True)
class WrkResult:
    requests_per_second: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: int
    unexpected: int = 0
    exhausted: int = 0

    @property
    def errors(self) -> int:
        """Answers that were not what the case expects, plus failed sockets."""
        return self.non_2xx + self.socket_errors + self.unexpected + self.exhausted


def parse_wrk_output(output: str) -> WrkResult:
    """Read the summary ``wrk --latency`` prints."""
    rps = _REQUESTS_PER_SECOND.search(output)
    percentiles = {
        m.group(1): float(m.group(2)) * _UNIT_MS[m.group(3)] for m in _PERCENTILE.finditer(output)
    }
    requests = _REQUESTS.search(output)
    if rps is None or requests is None or set(percentiles) != {"50", "90", "99"}:
        raise WrkError(f"unreadable wrk output:\n{output}")
    non_2xx = _NON_2XX.search(output)
    errors = _SOCKET_ERRORS.search(output)
    unexpected = _UNEXPECTED.search(output)
    exhausted = _EXHAUSTED.search(output)
    return WrkResult(
        requests_per_second=float(rps.group(1)),
        p50_ms=percentiles["50"],
        p90_ms=percentiles["90"],
        p99_ms=percentiles["99"],
        requests=int(requests.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
        unexpected=int(unexpected.group(1)) if unexpected else 0,
        exhausted=int(exhausted.group(1)) if exhausted else 0,
    )


def run_wrk(
    url: str,
    *,
    duration: float,
    connections: int,
    threads: int = 1,
    cpu: int | None = None,
    script: Path | None = None,
    script_env: Mapping[str, str] | None = None,
    timeout_s: float = 2,
) -> WrkResult:
    """Load ``url`` for ``duration`` seconds (pinned to ``cpu`` with taskset if
    given), optionally through a Lua ``script`` that reads ``script_env``. A request not
    answered within ``timeout_s`` counts as a socket error."""
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        f"--timeout={max(1, round(timeout_s))}s",
        "--latency",
    ]
    if script is not None:
        command += ["-s", str(script)]
    command.append(url)
    if cpu is not None:
        command = ["taskset", "-c", str(cpu), *command]
    completed = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=duration + 120,
        check=False,
        env={**os.environ, **(script_env or {})},
    )
    if completed.returncode != 0:
        raise WrkError(f"{' '.join(command)} exited {completed.returncode}: {completed.stderr}")
    return parse_wrk_output(completed.stdout)
