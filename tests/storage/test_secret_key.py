"""The key that encrypts secrets at rest (PROTOCOL §6 ``OPENPLATFORM_SECRET_KEY``):
generated into the data directory on first use when unset, reused after."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from openplatform.config import Settings
from openplatform.storage.apps import AppSettings
from openplatform.storage.crypto import SecretKeyMismatch
from openplatform.storage.database import open_database
from openplatform.storage.migrate import upgrade_async


def settings_for(data_dir: Path, **extra: str) -> Settings:
    return Settings.from_env({"OPENPLATFORM_DATA_DIR": str(data_dir), **extra})


async def test_key_file_is_generated_once_and_reused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    settings = settings_for(data_dir)
    await upgrade_async(settings)
    key_file = data_dir / "secret.key"
    assert not key_file.exists()

    database = open_database(settings)
    try:
        app = await database.apps.create(AppSettings(name="A"))
    finally:
        await database.close()
    assert key_file.exists()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text()
    assert len(key.strip()) >= 43

    database = open_database(settings_for(data_dir))
    try:
        again = await database.apps.get(app.id)
    finally:
        await database.close()
    assert key_file.read_text() == key
    assert again is not None
    assert again.secret == app.secret


async def test_configured_key_is_used_and_no_file_is_written(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    settings = settings_for(data_dir, OPENPLATFORM_SECRET_KEY="from-the-environment")
    await upgrade_async(settings)
    database = open_database(settings)
    try:
        app = await database.apps.create(AppSettings(name="A"))
    finally:
        await database.close()
    assert not (data_dir / "secret.key").exists()

    database = open_database(settings_for(data_dir, OPENPLATFORM_SECRET_KEY="another-key"))
    try:
        with pytest.raises(SecretKeyMismatch, match="OPENPLATFORM_SECRET_KEY"):
            await database.apps.get(app.id)
    finally:
        await database.close()
