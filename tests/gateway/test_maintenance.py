"""Check 1 (PROTOCOL §3.3): the maintenance switch, stored in the database and
cached per process; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from openplatform.errors import ApiError, Code
from openplatform.gateway import set_maintenance
from openplatform.gateway.maintenance import (
    SETTING_KEY,
    MaintenanceState,
    MaintenanceSwitch,
    check_maintenance,
    current_maintenance,
)
from openplatform.storage.crypto import SecretBox
from openplatform.storage.database import Database
from openplatform.storage.errors import DatabaseUnavailable
from openplatform.storage.platform_settings import PlatformSettingsRepository
from tests.conftest import TEST_SECRET_KEY
from tests.gateway.world import World

ME = "users.getLoggedInUser"
ON = MaintenanceState(enabled=True)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingStore(PlatformSettingsRepository):
    """The real repository, counting its reads; ``down`` makes them fail."""

    def __init__(self, database: Database) -> None:
        super().__init__(database.sessions)
        self.reads = 0
        self.down = False

    async def get(self, key: str) -> dict[str, object] | None:
        self.reads += 1
        if self.down:
            raise DatabaseUnavailable("connection refused")
        return await super().get(key)


async def eventually(check: Callable[[], Awaitable[bool]], within_s: float = 1.5) -> float:
    """Seconds until ``check()`` holds (polling every 20 ms); fails after ``within_s``."""
    start = time.monotonic()
    while not await check():
        assert time.monotonic() - start < within_s, "not seen in time"
        await asyncio.sleep(0.02)
    return time.monotonic() - start


async def settle(switch: MaintenanceSwitch) -> None:
    """Let a background read in flight finish."""
    for _ in range(200):
        if switch._loading is None:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the background read never ended")


# --- the state ---------------------------------------------------------------


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


def test_json_round_trip_and_malformed_values() -> None:
    state = MaintenanceState(True, frozenset({"data.*", "users.getInfo"}))
    assert MaintenanceState.from_json(state.to_json()) == state
    bad_values: list[dict[str, object]] = [
        {},
        {"enabled": "yes", "methods": []},
        {"enabled": True, "methods": [1]},
    ]
    for bad in bad_values:
        with pytest.raises(ValueError, match="must be"):
            MaintenanceState.from_json(bad)


# --- the switch over a real database -------------------------------------------


async def test_off_by_default(database: Database, tmp_path: Path) -> None:
    switch = MaintenanceSwitch(database.platform_settings, signal=tmp_path / "m.changed")
    assert await switch.current() == MaintenanceState()


async def test_another_host_sees_a_switch_within_the_refresh_interval(
    database: Database, database_url: str, tmp_path: Path
) -> None:
    """Two hosts: two ``Database`` objects, two data directories, one database."""
    here = MaintenanceSwitch(database.platform_settings, signal=tmp_path / "a" / "m.changed")
    async with Database(database_url, SecretBox(TEST_SECRET_KEY)) as other_db:
        there = MaintenanceSwitch(
            other_db.platform_settings, signal=tmp_path / "b" / "m.changed", refresh_s=0.2
        )
        assert await there.current() == MaintenanceState()
        blocked = MaintenanceState(True, frozenset({"data.*"}))
        await here.set(blocked)
        assert await there.current() == MaintenanceState()  # cached: no query per call

        async def there_blocked() -> bool:
            return (await there.current()).blocks("data.getHashValue")

        assert await eventually(there_blocked) < 1.0
        assert not (await there.current()).blocks("users.getInfo")
        await here.set(MaintenanceState())

        async def there_open() -> bool:
            return not (await there.current()).enabled

        assert await eventually(there_open) < 1.0


async def test_same_host_workers_see_it_on_the_next_call(
    database: Database, database_url: str, tmp_path: Path
) -> None:
    """Two workers of one ``serve``: one data directory, so the file signal
    makes the other read the database at once (no refresh interval here)."""
    signal = tmp_path / "maintenance.changed"
    writer = MaintenanceSwitch(database.platform_settings, signal=signal, refresh_s=3600)
    async with Database(database_url, SecretBox(TEST_SECRET_KEY)) as worker_db:
        worker = MaintenanceSwitch(worker_db.platform_settings, signal=signal, refresh_s=3600)
        assert await worker.current() == MaintenanceState()
        await writer.set(ON)
        assert await worker.current() == ON
        await writer.set(MaintenanceState())
        assert await worker.current() == MaintenanceState()


async def test_a_switch_in_another_process_is_seen_at_once(
    database: Database, database_url: str, tmp_path: Path
) -> None:
    signal = tmp_path / "maintenance.changed"
    reader = MaintenanceSwitch(database.platform_settings, signal=signal, refresh_s=3600)
    assert not (await reader.current()).enabled
    script = (
        "import asyncio, sys; from pathlib import Path;"
        "from openplatform.gateway.maintenance import MaintenanceSwitch, MaintenanceState;"
        "from openplatform.storage.crypto import SecretBox;"
        "from openplatform.storage.database import Database\n"
        "async def main():\n"
        "    async with Database(sys.argv[1], SecretBox(sys.argv[2])) as db:\n"
        "        await MaintenanceSwitch(db.platform_settings, signal=Path(sys.argv[3])).set("
        "MaintenanceState(sys.argv[4] == 'on', frozenset(sys.argv[5:])))\n"
        "asyncio.run(main())"
    )
    args = [sys.executable, "-c", script, database_url, TEST_SECRET_KEY, str(signal)]
    await asyncio.to_thread(subprocess.run, [*args, "on", "users.getInfo"], check=True)
    assert await reader.current() == MaintenanceState(True, frozenset({"users.getInfo"}))
    await asyncio.to_thread(subprocess.run, [*args, "off"], check=True)
    assert await reader.current() == MaintenanceState()


async def test_state_survives_a_restart(database_url: str, tmp_path: Path) -> None:
    state = MaintenanceState(True, frozenset({"data.*", ME}))
    async with Database(database_url, SecretBox(TEST_SECRET_KEY)) as before:
        await MaintenanceSwitch(before.platform_settings, signal=tmp_path / "m.changed").set(state)
    async with Database(database_url, SecretBox(TEST_SECRET_KEY)) as after:
        fresh = MaintenanceSwitch(after.platform_settings, signal=tmp_path / "new" / "m.changed")
        assert await fresh.current() == state


async def test_one_read_per_refresh_interval_and_never_two_at_once(database: Database) -> None:
    store = CountingStore(database)
    clock = FakeClock()
    switch = MaintenanceSwitch(store, refresh_s=1.0, clock=clock)
    for _ in range(50):
        assert await switch.current() == MaintenanceState()
    assert store.reads == 1
    await database.platform_settings.set(SETTING_KEY, ON.to_json())
    clock.now += 0.9
    assert await switch.current() == MaintenanceState()
    assert store.reads == 1
    clock.now += 0.2
    # The calls that find the interval passed answer from the cache while one
    # read runs in the background.
    states = await asyncio.gather(*(switch.current() for _ in range(20)))
    assert set(states) <= {MaintenanceState(), ON}
    await settle(switch)
    assert store.reads == 2
    assert await switch.current() == ON
    assert store.reads == 2


async def test_database_outage_keeps_the_last_known_state(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    await database.platform_settings.set(SETTING_KEY, ON.to_json())
    store = CountingStore(database)
    clock = FakeClock()
    switch = MaintenanceSwitch(store, refresh_s=1.0, clock=clock)
    assert await switch.current() == ON
    store.down = True
    clock.now += 1.5
    with caplog.at_level(logging.WARNING, "openplatform.gateway.maintenance"):
        assert await switch.current() == ON
        await settle(switch)
        assert await switch.current() == ON
    assert store.reads == 2  # no retry before the next interval
    assert "keeping the last known" in caplog.text
    store.down = False
    await database.platform_settings.set(SETTING_KEY, MaintenanceState().to_json())
    clock.now += 1.5
    await switch.current()
    await settle(switch)
    assert await switch.current() == MaintenanceState()


async def test_outage_on_the_first_call_means_no_maintenance(
    database: Database, tmp_path: Path
) -> None:
    store = CountingStore(database)
    store.down = True
    switch = MaintenanceSwitch(store, signal=tmp_path / "m.changed", clock=FakeClock())
    assert await switch.current() == MaintenanceState()
    assert await switch.current() == MaintenanceState()
    assert store.reads == 1


async def test_a_malformed_stored_value_is_ignored(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    switch = MaintenanceSwitch(database.platform_settings, clock=clock)
    await switch.set(ON)
    await database.platform_settings.set(SETTING_KEY, {"enabled": "sure"})
    clock.now += 5
    with caplog.at_level(logging.ERROR, "openplatform.gateway.maintenance"):
        await switch.current()
        await settle(switch)
    assert await switch.current() == ON
    assert "malformed maintenance state" in caplog.text


async def test_a_read_begun_before_a_switch_does_not_undo_it(database: Database) -> None:
    """This process's own switch wins over an older read still in flight."""
    gate = asyncio.Event()

    class SlowStore(PlatformSettingsRepository):
        async def get(self, key: str) -> dict[str, object] | None:
            value = await super().get(key)
            await gate.wait()
            return value

    clock = FakeClock()
    switch = MaintenanceSwitch(SlowStore(database.sessions), clock=clock)
    first = asyncio.create_task(switch.current())
    await asyncio.sleep(0.05)
    await switch.set(ON)
    gate.set()
    await first
    assert await switch.current() == ON


# --- through the gateway --------------------------------------------------------


async def test_gateway_sees_a_switch_made_on_another_host(world: World, tmp_path: Path) -> None:
    """The admin API of another host (its own data directory) switches; this
    gateway answers 2 within its refresh interval, for the globbed methods only."""
    token = {"access_token": world.alice_basic.access_token}
    assert (await world.client.call(ME, token)).status_code == 200
    url = world.services.settings.database_url
    async with Database(url, SecretBox(TEST_SECRET_KEY)) as other_db:
        other = MaintenanceSwitch(other_db.platform_settings, signal=tmp_path / "other" / "m")
        await other.set(MaintenanceState(True, frozenset({"users.getLogged*"})))

        async def blocked() -> bool:
            return bool((await world.client.call(ME, token)).json().get("error_code") == 2)

        await eventually(blocked)
        r = await world.client.call("users.isAppUser", {"uid": str(world.alice.uid)})
        assert r.status_code == 200, r.text
        await other.set(MaintenanceState())

        async def open_again() -> bool:
            return (await world.client.call(ME, token)).status_code == 200

        await eventually(open_again)


async def test_gateway_sees_its_own_host_switch_on_the_next_call(world: World) -> None:
    await set_maintenance(world.services, enabled=True, methods=["users.*"])
    assert current_maintenance(world.services).blocks(ME)
    r = await world.client.call(ME, {"access_token": world.alice_basic.access_token})
    assert r.json()["error_code"] == 2
    r = await world.client.call("application.getPublicInfo")
    assert r.json().get("error_code") != 2, r.text
    await set_maintenance(world.services, enabled=False, methods=[])
    r = await world.client.call(ME, {"access_token": world.alice_basic.access_token})
    assert r.status_code == 200
