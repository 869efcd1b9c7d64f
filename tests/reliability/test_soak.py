"""``scripts/soak`` in a short mode: 25 s of mixed load against two server
processes while database connections are killed and Redis restarts; no
acknowledged write may be lost and every answer must be an expected one."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.reliability.soak import EXPECTED

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

ROOT = Path(__file__).resolve().parents[2]


def test_25_seconds_of_chaos_lose_no_acknowledged_write(postgres_url: str) -> None:
    done = subprocess.run(
        [str(ROOT / "scripts" / "soak"), "--seconds", "25", "--clients", "8", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.stdout.strip(), done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["lost_writes"] == 0, report
    assert report["counter_errors"] == 0, report
    assert report["unexpected"] == 0, report["unexpected_samples"]
    assert done.returncode == 0, done.stderr[-3000:]
    # both kinds of chaos happened, and the load was real
    assert report["chaos"]["database connections killed"] >= 1, report
    assert report["chaos"]["Redis restarts"] >= 1, report
    assert report["acknowledged"]["createObject"] > 0, report
    assert report["acknowledged"]["batch items"] > 0, report
    assert report["acknowledged"]["incHashValue"] > 0, report
    assert report["requests_by_kind"]["oauth.refresh"] > 0, report
    assert report["no_answer"] == 0, report
    assert {int(code) for code in report["codes"]} <= EXPECTED, report
    assert {int(code) for code in report["batch_item_codes"]} <= EXPECTED, report
