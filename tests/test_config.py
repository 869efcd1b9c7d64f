"""Settings from the environment (PROTOCOL §6), validated with clear messages."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from openplatform.config import Settings, SettingsError


def test_defaults(tmp_path: Path) -> None:
    settings = Settings.from_env({"OPENPLATFORM_DATA_DIR": str(tmp_path)})
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path}/openplatform.db"
    assert settings.cache_url == "memory://"
    assert settings.max_params == 50
    assert settings.timestamp_window_s == 600
    assert settings.timezone.key == "UTC"
    assert settings.trusted_proxies == ()
    assert settings.issuer is None
    assert settings.db_timeout_s == 5.0
    assert (settings.prune_interval_s, settings.prune_batch_rows) == (600, 1000)
    assert settings.prune_margin_days == 7
    assert settings.cache_timeout_s == 5.0
    assert settings.rate_limits_fail_open is False
    assert settings.shutdown_timeout_s == 30
    assert (settings.header_timeout_s, settings.body_timeout_s) == (10.0, 30.0)


def test_every_variable_is_read() -> None:
    settings = Settings.from_env(
        {
            "OPENPLATFORM_DATABASE_URL": "postgresql://u@db:5432/op",
            "OPENPLATFORM_CACHE_URL": "redis://cache:6379/1",
            "OPENPLATFORM_ISSUER": "https://open.example.com/",
            "OPENPLATFORM_MAX_PARAMS": "20",
            "OPENPLATFORM_TIMESTAMP_WINDOW_S": "300",
            "OPENPLATFORM_TIMEZONE": "Asia/Shanghai",
            "OPENPLATFORM_SECRET_KEY": "k",
            "OPENPLATFORM_TRUSTED_PROXIES": "10.0.0.0/8, ::1",
            "OPENPLATFORM_DB_TIMEOUT_S": "2.5",
            "OPENPLATFORM_PRUNE_INTERVAL_S": "0",
            "OPENPLATFORM_PRUNE_BATCH_ROWS": "250",
            "OPENPLATFORM_PRUNE_MARGIN_DAYS": "30",
            "OPENPLATFORM_CACHE_TIMEOUT_S": "0.5",
            "OPENPLATFORM_RATE_LIMITS_FAIL_OPEN": "1",
            "OPENPLATFORM_SHUTDOWN_TIMEOUT_S": "12",
            "OPENPLATFORM_HEADER_TIMEOUT_S": "4",
            "OPENPLATFORM_BODY_TIMEOUT_S": "12.5",
        }
    )
    assert settings.database_url == "postgresql+asyncpg://u@db:5432/op"
    assert settings.cache_url == "redis://cache:6379/1"
    assert settings.issuer == "https://open.example.com/"
    assert settings.issuer_for("0.0.0.0", 80) == "https://open.example.com/"
    assert (settings.max_params, settings.timestamp_window_s) == (20, 300)
    assert settings.timezone.key == "Asia/Shanghai"
    assert [str(n) for n in settings.trusted_proxies] == ["10.0.0.0/8", "::1/128"]
    assert settings.db_timeout_s == 2.5
    assert (settings.prune_interval_s, settings.prune_batch_rows) == (0, 250)
    assert settings.prune_margin_days == 30
    assert settings.cache_timeout_s == 0.5
    assert settings.rate_limits_fail_open is True
    assert settings.shutdown_timeout_s == 12
    assert (settings.header_timeout_s, settings.body_timeout_s) == (4, 12.5)


@pytest.mark.parametrize(
    ("host", "port", "issuer"),
    [
        ("0.0.0.0", 8000, "http://127.0.0.1:8000"),
        ("127.0.0.1", 9000, "http://127.0.0.1:9000"),
        ("::1", 8000, "http://[::1]:8000"),
        ("open.local", 80, "http://open.local:80"),
    ],
)
def test_issuer_from_serve_address(host: str, port: int, issuer: str) -> None:
    assert Settings.from_env({}).issuer_for(host, port) == issuer


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("MAX_PARAMS", "lots", "OPENPLATFORM_MAX_PARAMS must be a whole number"),
        ("MAX_PARAMS", "0", "OPENPLATFORM_MAX_PARAMS must be at least 1"),
        ("TIMESTAMP_WINDOW_S", "-5", "OPENPLATFORM_TIMESTAMP_WINDOW_S must be at least 1"),
        ("TIMEZONE", "Mars/Olympus", "unknown time zone"),
        ("DATABASE_URL", "mysql://x/y", "OPENPLATFORM_DATABASE_URL must start with"),
        ("CACHE_URL", "memcached://x", "OPENPLATFORM_CACHE_URL must start with"),
        ("CACHE_URL", "redis://h?socket_timeout=soon", "OPENPLATFORM_CACHE_URL: Redis URL"),
        ("ISSUER", "open.example.com", "OPENPLATFORM_ISSUER must be an http(s) URL"),
        ("TRUSTED_PROXIES", "10.0.0.1, nope", "'nope' is not an IP address or CIDR"),
        ("DB_TIMEOUT_S", "soon", "OPENPLATFORM_DB_TIMEOUT_S must be a number of seconds"),
        ("DB_TIMEOUT_S", "0", "OPENPLATFORM_DB_TIMEOUT_S must be more than 0"),
        ("DB_TIMEOUT_S", "-1", "OPENPLATFORM_DB_TIMEOUT_S must be more than 0"),
        ("PRUNE_INTERVAL_S", "-1", "OPENPLATFORM_PRUNE_INTERVAL_S must be at least 0"),
        ("PRUNE_BATCH_ROWS", "0", "OPENPLATFORM_PRUNE_BATCH_ROWS must be at least 1"),
        ("PRUNE_BATCH_ROWS", "20000", "OPENPLATFORM_PRUNE_BATCH_ROWS must be at most 10000"),
        ("PRUNE_MARGIN_DAYS", "0", "OPENPLATFORM_PRUNE_MARGIN_DAYS must be at least 1"),
        ("CACHE_TIMEOUT_S", "0", "OPENPLATFORM_CACHE_TIMEOUT_S must be more than 0"),
        ("RATE_LIMITS_FAIL_OPEN", "maybe", "OPENPLATFORM_RATE_LIMITS_FAIL_OPEN must be 1 or 0"),
        ("SHUTDOWN_TIMEOUT_S", "0", "OPENPLATFORM_SHUTDOWN_TIMEOUT_S must be at least 1"),
        ("HEADER_TIMEOUT_S", "0", "OPENPLATFORM_HEADER_TIMEOUT_S must be more than 0"),
        ("BODY_TIMEOUT_S", "forever", "OPENPLATFORM_BODY_TIMEOUT_S must be a number of seconds"),
        ("BODY_TIMEOUT_S", "3601", "OPENPLATFORM_BODY_TIMEOUT_S must be more than 0 and at most"),
    ],
)
def test_bad_values_are_named(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)):
        Settings.from_env({f"OPENPLATFORM_{name}": value})


def test_secret_key_generated_once_owner_only(tmp_path: Path) -> None:
    settings = Settings.from_env({"OPENPLATFORM_DATA_DIR": str(tmp_path / "d")})
    key = settings.secret_key_material()
    assert len(key) >= 40
    path = tmp_path / "d" / "secret.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert settings.secret_key_material() == key
    assert Settings.from_env({"OPENPLATFORM_SECRET_KEY": "given"}).secret_key_material() == "given"
