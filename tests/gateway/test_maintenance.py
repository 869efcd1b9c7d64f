"""Check 1 (PROTOCOL §3.3): the maintenance switch, shared through the data directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from openplatform.errors import ApiError, Code
from openplatform.gateway.maintenance import (
    MaintenanceState,
    MaintenanceSwitch,
    check_maintenance,
)


def test_off_by_default(tmp_path: Path) -> None:
    assert MaintenanceSwitch(tmp_path / "m.json").current() == MaintenanceState()


def test_whole_platform_or_some_methods() -> None:
    everything = MaintenanceState(enabled=True)
    assert everything.blocks("users.getInfo") and everything.blocks("")
    some = MaintenanceState(enabled=True, methods=frozenset({"users.getInfo", "data.*"}))
    assert some.blocks("users.getInfo") and some.blocks("data.getHashValue")
    assert not some.blocks("users.isAppUser")
    assert not MaintenanceState(enabled=False, methods=frozenset({"x"})).blocks("x")


def test_check_raises_2_with_retry_after() -> None:
    with pytest.raises(ApiError) as caught:
        check_maintenance(MaintenanceState(enabled=True), "users.getInfo")
    assert caught.value.code == Code.SERVICE_UNAVAILABLE
    assert caught.value.headers["Retry-After"] == "60"
    check_maintenance(MaintenanceState(), "users.getInfo")


def test_a_switch_in_another_process_is_seen_at_once(tmp_path: Path) -> None:
    path = tmp_path / "maintenance.json"
    reader = MaintenanceSwitch(path)
    assert not reader.current().enabled
    script = (
        "import sys; from pathlib import Path;"
        "from openplatform.gateway.maintenance import MaintenanceSwitch, MaintenanceState;"
        "MaintenanceSwitch(Path(sys.argv[1])).set("
        "MaintenanceState(enabled=sys.argv[2] == 'on', methods=frozenset(sys.argv[3:])))"
    )
    subprocess.run([sys.executable, "-c", script, str(path), "on", "users.getInfo"], check=True)
    assert reader.current() == MaintenanceState(True, frozenset({"users.getInfo"}))
    subprocess.run([sys.executable, "-c", script, str(path), "off"], check=True)
    assert reader.current() == MaintenanceState()


def test_unreadable_file_means_no_maintenance(tmp_path: Path) -> None:
    path = tmp_path / "maintenance.json"
    path.write_text("{not json")
    assert MaintenanceSwitch(path).current() == MaintenanceState()
