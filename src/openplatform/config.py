"""Settings from the environment (PROTOCOL §6), validated once at start."""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "DEFAULT_BODY_TIMEOUT_S",
    "DEFAULT_CACHE_TIMEOUT_S",
    "DEFAULT_DB_TIMEOUT_S",
    "DEFAULT_HEADER_TIMEOUT_S",
    "DEFAULT_SHUTDOWN_TIMEOUT_S",
    "IPNetwork",
    "Settings",
    "SettingsError",
    "parse_networks",
]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

PREFIX = "OPENPLATFORM_"
DEFAULT_DB_TIMEOUT_S = 5.0
DEFAULT_CACHE_TIMEOUT_S = 5.0
DEFAULT_SHUTDOWN_TIMEOUT_S = 30
DEFAULT_HEADER_TIMEOUT_S = 10.0
DEFAULT_BODY_TIMEOUT_S = 30.0


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


def parse_networks(text: str, *, name: str) -> tuple[IPNetwork, ...]:
    """A comma list of IPs and CIDRs (v4 or v6)."""
    networks = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise SettingsError(f"{name}: {item!r} is not an IP address or CIDR") from None
    return tuple(networks)


def _int(
    env: Mapping[str, str], name: str, default: int, minimum: int = 1, maximum: int | None = None
) -> int:
    raw = env.get(PREFIX + name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise SettingsError(f"{PREFIX}{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{PREFIX}{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise SettingsError(f"{PREFIX}{name} must be at most {maximum}, got {value}")
    return value


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(PREFIX + name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise SettingsError(f"{PREFIX}{name} must be a number of seconds, got {raw!r}") from None
    if not 0 < value <= 3600:
        raise SettingsError(f"{PREFIX}{name} must be more than 0 and at most 3600, got {raw!r}")
    return value


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = (env.get(PREFIX + name) or "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise SettingsError(f"{PREFIX}{name} must be 1 or 0 (true or false), got {raw!r}")


def database_url_for_driver(url: str) -> str:
    """Map ``sqlite://`` and ``postgresql://`` URLs onto their async drivers."""
    for plain, driver in (
        ("sqlite://", "sqlite+aiosqlite://"),
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    if url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        return url
    scheme = url.split(":")[0]
    raise SettingsError(
        f"{PREFIX}DATABASE_URL must start with sqlite:// or postgresql://, got {scheme!r}"
    )


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    cache_url: str
    issuer: str | None
    max_params: int = 50
    timestamp_window_s: int = 600
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    secret_key: str | None = None
    trusted_proxies: tuple[IPNetwork, ...] = ()
    # PROTOCOL §2 sign-in limits: failed password checks per account and per
    # client IP in their windows (0 turns a limit off)
    login_failures_per_account: int = 10
    login_account_window_s: int = 900
    login_failures_per_ip: int = 100
    login_ip_window_s: int = 300
    # the longest wait on the database (a connection, a round trip, a lock)
    db_timeout_s: float = DEFAULT_DB_TIMEOUT_S
    # the longest wait for a Redis reply or connection (a ``socket_timeout``
    # option in the cache URL takes precedence)
    cache_timeout_s: float = DEFAULT_CACHE_TIMEOUT_S
    # when the shared state (Redis) is unreachable, serve calls that need it
    # for rate limits only (see Gateway._shared_state); off: fail closed with 2
    rate_limits_fail_open: bool = False
    # seconds ``serve`` lets requests in flight finish after SIGTERM
    shutdown_timeout_s: int = DEFAULT_SHUTDOWN_TIMEOUT_S
    # Slow clients: a request's headers, and then its body, must arrive within
    # these (the connection is closed, or the request answered 100)
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S
    # Days of per-minute call statistics kept (PROTOCOL §5 usage); 0 keeps them forever
    stats_retention_days: int = 30
    # Housekeeping (openplatform.housekeeping): a pass every prune_interval_s
    # seconds (0: none; `openplatform db prune` still runs one), deleting at
    # most prune_batch_rows rows per transaction, and only credentials that
    # expired or were revoked more than prune_margin_days ago
    prune_interval_s: int = 600
    prune_batch_rows: int = 1000
    prune_margin_days: int = 7
    demo: bool = False  # OPENPLATFORM_DEMO=1: serve the demo app's callback page

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        data_dir = Path(env.get(PREFIX + "DATA_DIR") or "data").expanduser()
        database_url = (
            env.get(PREFIX + "DATABASE_URL") or f"sqlite:///{data_dir / 'openplatform.db'}"
        )
        database_url = database_url_for_driver(database_url)
        cache_url = env.get(PREFIX + "CACHE_URL") or "memory://"
        if not cache_url.startswith(
            ("memory://", "redis://", "rediss://", "unix://", "redis+cluster://")
        ):
            raise SettingsError(
                f"{PREFIX}CACHE_URL must start with memory://, redis:// or redis+cluster://, "
                f"got {cache_url!r}"
            )
        if not cache_url.startswith("memory://"):
            from openplatform.cache.redis_cluster import cluster_addresses
            from openplatform.cache.redis_connection import RedisAddress

            try:
                if cache_url.startswith("redis+cluster://"):
                    cluster_addresses(cache_url)
                else:
                    RedisAddress.from_url(cache_url)
            except ValueError as exc:
                raise SettingsError(f"{PREFIX}CACHE_URL: {exc}") from None
        tz_name = env.get(PREFIX + "TIMEZONE") or "UTC"
        try:
            timezone = ZoneInfo(tz_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise SettingsError(f"{PREFIX}TIMEZONE: unknown time zone {tz_name!r}") from None
        issuer = env.get(PREFIX + "ISSUER") or None
        if issuer is not None and not issuer.startswith(("http://", "https://")):
            raise SettingsError(f"{PREFIX}ISSUER must be an http(s) URL, got {issuer!r}")
        return cls(
            data_dir=data_dir,
            database_url=database_url,
            cache_url=cache_url,
            issuer=issuer,
            max_params=_int(env, "MAX_PARAMS", 50),
            timestamp_window_s=_int(env, "TIMESTAMP_WINDOW_S", 600),
            timezone=timezone,
            secret_key=env.get(PREFIX + "SECRET_KEY") or None,
            trusted_proxies=parse_networks(
                env.get(PREFIX + "TRUSTED_PROXIES", ""), name=PREFIX + "TRUSTED_PROXIES"
            ),
            login_failures_per_account=_int(env, "LOGIN_FAILURES_PER_ACCOUNT", 10, minimum=0),
            login_account_window_s=_int(env, "LOGIN_ACCOUNT_WINDOW_S", 900),
            login_failures_per_ip=_int(env, "LOGIN_FAILURES_PER_IP", 100, minimum=0),
            login_ip_window_s=_int(env, "LOGIN_IP_WINDOW_S", 300),
            db_timeout_s=_seconds(env, "DB_TIMEOUT_S", DEFAULT_DB_TIMEOUT_S),
            cache_timeout_s=_seconds(env, "CACHE_TIMEOUT_S", DEFAULT_CACHE_TIMEOUT_S),
            rate_limits_fail_open=_flag(env, "RATE_LIMITS_FAIL_OPEN"),
            shutdown_timeout_s=_int(env, "SHUTDOWN_TIMEOUT_S", DEFAULT_SHUTDOWN_TIMEOUT_S),
            header_timeout_s=_seconds(env, "HEADER_TIMEOUT_S", DEFAULT_HEADER_TIMEOUT_S),
            body_timeout_s=_seconds(env, "BODY_TIMEOUT_S", DEFAULT_BODY_TIMEOUT_S),
            stats_retention_days=_int(env, "STATS_RETENTION_DAYS", 30, minimum=0),
            prune_interval_s=_int(env, "PRUNE_INTERVAL_S", 600, minimum=0, maximum=7 * 86_400),
            prune_batch_rows=_int(env, "PRUNE_BATCH_ROWS", 1000, maximum=10_000),
            prune_margin_days=_int(env, "PRUNE_MARGIN_DAYS", 7, maximum=3660),
            demo=env.get(PREFIX + "DEMO", "") not in ("", "0"),
        )

    def issuer_for(self, host: str, port: int) -> str:
        """PROTOCOL §2: ``OPENPLATFORM_ISSUER`` verbatim, else ``http://host:port``."""
        if self.issuer:
            return self.issuer
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host  # noqa: S104
        if ":" in shown:
            shown = f"[{shown}]"
        return f"http://{shown}:{port}"

    def secret_key_material(self) -> str:
        """The key that encrypts secrets at rest: the setting, else a file in the data dir
        (generated on first use, readable by the owner only)."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret.key"
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key + "\n")
        return key

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
