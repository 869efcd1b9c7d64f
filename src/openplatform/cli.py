"""The command line (PROTOCOL §6): serve, migrate, and make apps, users and
admin tokens — human output by default, one JSON object with ``--json``."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Coroutine
from functools import wraps
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer

from openplatform.config import (
    DEFAULT_HEADER_TIMEOUT_S,
    DEFAULT_SHUTDOWN_TIMEOUT_S,
    Settings,
    SettingsError,
)
from openplatform.errors import ApiError

if TYPE_CHECKING:
    from openplatform.storage.apps import AppRecord
    from openplatform.storage.database import Database
    from openplatform.storage.users import UserRecord

__all__ = ["main"]

app = typer.Typer(
    help="openplatform: an open-platform server (apps, OAuth 2.0, signed open API).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema and housekeeping.", no_args_is_help=True)
apps_app = typer.Typer(help="Third-party apps.", no_args_is_help=True)
users_app = typer.Typer(help="End users.", no_args_is_help=True)
admin_token_app = typer.Typer(help="Admin API tokens.", no_args_is_help=True)
secrets_app = typer.Typer(help="Secrets at rest.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(apps_app, name="apps")
app.add_typer(users_app, name="users")
app.add_typer(admin_token_app, name="admin-token")
app.add_typer(secrets_app, name="secrets")

P = ParamSpec("P")
R = TypeVar("R")

Repeated = list[str] | None
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object (for scripts).")]


class CommandError(Exception):
    """A failure the user can act on: printed as one line, exit status 1."""


def fail(message: str) -> None:
    typer.echo(f"openplatform: error: {message}", err=True)
    raise typer.Exit(1)


def one_line_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Expected failures become one clear line on stderr and exit status 1."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from sqlalchemy.exc import DBAPIError

        from openplatform.storage.errors import StorageError

        try:
            return func(*args, **kwargs)
        except (SettingsError, CommandError, StorageError) as exc:
            fail(str(exc))
        except ApiError as exc:
            fail(exc.detail or str(exc))
        except (DBAPIError, OSError) as exc:
            fail(f"database or file not reachable: {str(exc).splitlines()[0]}")
        raise AssertionError("unreachable")

    return wrapper


def run(coro: Coroutine[Any, Any, R]) -> R:
    return asyncio.run(coro)


def settings() -> Settings:
    return Settings.from_env()


async def with_database(settings: Settings, work: Callable[[Database], Awaitable[R]]) -> R:
    """Migrate (SQLite only, as the server does on first start) and run ``work``."""
    from openplatform.storage.database import open_database
    from openplatform.storage.migrate import upgrade_async

    if settings.is_sqlite:
        await upgrade_async(settings)
    database = open_database(settings)
    try:
        return await work(database)
    finally:
        await database.close()


def emit(as_json: bool, payload: dict[str, Any], human: str) -> None:
    typer.echo(json.dumps(payload, ensure_ascii=False) if as_json else human)


@app.command()
@one_line_errors
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(help="Server processes.", min=1, max=64)] = 1,
    server: Annotated[
        str, typer.Option(help="ASGI server: granian or uvicorn.", case_sensitive=False)
    ] = "granian",
    demo: Annotated[
        bool, typer.Option(help="Create (first run) and print a demo app and user.")
    ] = False,
) -> None:
    """Serve the platform."""
    if server not in ("granian", "uvicorn"):
        raise CommandError(f"--server must be granian or uvicorn, not {server!r}")
    config = settings()
    if workers > 1 and config.cache_url.startswith("memory://"):
        raise CommandError(
            f"--workers {workers} needs a shared cache: with OPENPLATFORM_CACHE_URL=memory:// "
            "replay, call_id and rate-limit state would not be shared between processes; "
            "set OPENPLATFORM_CACHE_URL=redis://… or use --workers 1"
        )
    ensure_port_free(host, port)
    issuer = config.issuer_for(host, port)
    os.environ["OPENPLATFORM_ISSUER"] = issuer
    from openplatform.storage.migrate import upgrade_async

    run(upgrade_async(config))
    if demo:
        from openplatform.demo import ensure_demo

        os.environ["OPENPLATFORM_DEMO"] = "1"

        typer.echo(run(ensure_demo(config, issuer)))
    typer.echo(f"openplatform serving on {issuer} ({workers} worker(s), {server})")
    sys.stdout.flush()
    run_server(
        server,
        host,
        port,
        workers,
        shutdown_timeout_s=config.shutdown_timeout_s,
        header_timeout_s=config.header_timeout_s,
    )


def ensure_port_free(host: str, port: int) -> None:
    """Refuse a port another process listens on. The servers bind with
    SO_REUSEPORT (for their own workers), so without this check a second
    ``serve`` would silently share the port and take half the requests."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CommandError(f"{host}:{port} is already in use by another process") from None
            raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def run_server(
    server: str,
    host: str,
    port: int,
    workers: int,
    *,
    shutdown_timeout_s: int = DEFAULT_SHUTDOWN_TIMEOUT_S,
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S,
) -> None:
    """Serve until SIGTERM or SIGINT; then stop accepting connections, let the
    requests in flight finish for up to ``shutdown_timeout_s``
    (``OPENPLATFORM_SHUTDOWN_TIMEOUT_S``) and stop: Granian kills a worker
    still busy after that long (``workers_kill_timeout``), Uvicorn cancels
    what is left (``timeout_graceful_shutdown``). Both close a connection
    that has not brought a request's headers within ``header_timeout_s``
    (``OPENPLATFORM_HEADER_TIMEOUT_S``; the application times the body)."""
    target = "openplatform.app:app_from_env"
    if server == "uvicorn":
        import uvicorn

        # One uvicorn process re-raises the SIGTERM it shut down on, once it
        # has (its way of reporting it): exit 0 then, as Granian does.
        signal.signal(signal.SIGTERM, _exit_cleanly)
        from openplatform.uvicorn_protocol import HeaderTimeoutH11Protocol

        # what the protocol of each (spawned) worker process reads
        os.environ["OPENPLATFORM_HEADER_TIMEOUT_S"] = str(header_timeout_s)

        # proxy_headers=False: the app alone decides whom to believe (PROTOCOL
        # §3.3, OPENPLATFORM_TRUSTED_PROXIES); uvicorn's default rewrites the
        # peer from X-Forwarded-For for any loopback client. Granian does not.
        uvicorn.run(
            target,
            factory=True,
            host=host,
            port=port,
            workers=workers,
            access_log=False,
            proxy_headers=False,
            timeout_graceful_shutdown=shutdown_timeout_s,
            http=HeaderTimeoutH11Protocol,
        )
        return
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings

    Granian(
        target,
        address=host,
        port=port,
        workers=workers,
        interface=Interfaces.ASGI,
        factory=True,
        log_access=False,
        workers_kill_timeout=shutdown_timeout_s,
        # HTTP/1.1 only: in "auto" mode Granian first sniffs for HTTP/2, and a
        # connection that sends nothing is never timed out while it does.
        http=HTTPModes.http1,
        http1_settings=HTTP1Settings(header_read_timeout=round(header_timeout_s * 1000)),
    ).serve()


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


@db_app.command("upgrade")
@one_line_errors
def db_upgrade() -> None:
    """Create or migrate the database schema to the newest version."""
    from openplatform.storage.migrate import upgrade_async

    config = settings()
    run(upgrade_async(config))
    typer.echo("database is up to date")


@db_app.command("prune")
@one_line_errors
def db_prune(
    batch: Annotated[
        int | None,
        typer.Option(
            "--batch-size",
            "--batch",  # the first spelling, kept
            help="Rows deleted per transaction (default: OPENPLATFORM_PRUNE_BATCH_ROWS).",
            min=1,
            max=10_000,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Delete expired and revoked credentials and call statistics past their
    retention, in short batches (servers keep running); one pass, under the
    lease the servers' housekeeping takes, so never two at once."""
    from openplatform.cache import SharedStateUnavailable, open_shared_state
    from openplatform.housekeeping import LEASE, Housekeeping
    from openplatform.services import Services
    from openplatform.storage.prune import PruneReport

    config = settings()

    async def work(database: Database) -> PruneReport | None:
        state = open_shared_state(config.cache_url)
        services = Services(config, database, state, issuer=config.issuer or "")
        try:
            return await Housekeeping.from_services(services, batch_rows=batch).prune_once()
        except SharedStateUnavailable as exc:
            raise CommandError(f"the shared cache is not reachable: {exc}") from None
        finally:
            await state.close()

    report = run(with_database(config, work))
    if report is None:
        raise CommandError(
            f"another process is pruning the database now (it holds the {LEASE!r} lease "
            "in the shared cache); nothing was deleted, try again later"
        )
    emit(as_json, report.counts(), f"pruned {report.summary()}")
    if not report.complete:
        raise CommandError("the pass stopped early: another process took its lease over")


@apps_app.command("create")
@one_line_errors
def apps_create(
    name: Annotated[str, typer.Option(help="The app's name.")],
    redirect_uri: Annotated[
        Repeated, typer.Option("--redirect-uri", help="Registered redirect URI (repeat).")
    ] = None,
    public: Annotated[bool, typer.Option(help="A public client (no secret kept).")] = False,
    scope: Annotated[
        list[str] | None, typer.Option("--scope", help="Allowed scope (repeat).")
    ] = None,
    grant: Annotated[
        list[str] | None, typer.Option("--grant", help="Allowed grant (repeat).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Register a third-party app and print its credentials."""
    from openplatform.storage.apps import AppSettings

    fields: dict[str, Any] = {"name": name, "public": public}
    if redirect_uri:
        fields["redirect_uris"] = redirect_uri
    if scope:
        fields["scopes"] = scope
    if grant:
        fields["grants"] = grant
    app_settings = AppSettings.from_mapping(fields)

    async def work(database: Database) -> AppRecord:
        return await database.apps.create(app_settings)

    record = run(with_database(settings(), work))
    payload = {
        "app_id": record.id,
        "api_key": record.api_key,
        "secret": record.secret,
        "name": record.name,
        "public": record.settings.public,
        "redirect_uris": list(record.settings.redirect_uris),
        "scopes": list(record.settings.scopes),
        "grants": list(record.settings.grants),
    }
    human = (
        f"created app {record.id} ({record.name})\n"
        f"  api_key (client_id): {record.api_key}\n"
        f"  secret:              {record.secret}\n"
        "keep the secret safe: it is shown once (stored encrypted)"
    )
    emit(as_json, payload, human)


@users_app.command("create")
@one_line_errors
def users_create(
    username: Annotated[str, typer.Option(help="Sign-in name.")],
    password: Annotated[str, typer.Option(help="Password (stored as an argon2 hash).")],
    email: Annotated[str | None, typer.Option(help="E-mail address.")] = None,
    mobile: Annotated[str | None, typer.Option(help="Mobile number.")] = None,
    private: Annotated[bool, typer.Option(help="Hide the profile from other users.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Create an end user."""

    async def work(database: Database) -> UserRecord:
        return await database.users.create(
            username=username, password=password, email=email, mobile=mobile, private=private
        )

    user = run(with_database(settings(), work))
    payload = {
        "uid": user.uid,
        "username": user.username,
        "email": user.email,
        "mobile": user.mobile,
        "profile_visibility": user.profile_visibility,
    }
    emit(as_json, payload, f"created user {user.uid} ({user.username})")


@admin_token_app.command("create")
@one_line_errors
def admin_token_create(
    label: Annotated[str, typer.Option(help="What the token is for.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Make an admin API token (shown once; stored as a hash)."""

    async def work(database: Database) -> str:
        return await database.admin_tokens.create(label)

    token = run(with_database(settings(), work))
    emit(as_json, {"token": token}, f"admin token (shown once): {token}")


@secrets_app.command("rotate")
@one_line_errors
def secrets_rotate(
    batch_size: Annotated[
        int, typer.Option(help="Secrets re-encrypted per transaction.", min=1, max=10_000)
    ] = 500,
    as_json: JsonOption = False,
) -> None:
    """Re-encrypt every stored secret with the newest key of OPENPLATFORM_SECRET_KEY
    (the first of its comma-separated keys); servers keep running meanwhile."""
    from openplatform.storage.secret_rotation import RotationReport, rotate_secrets

    async def work(database: Database) -> RotationReport:
        return await rotate_secrets(database.sessions, database.box, batch_size)

    report = run(with_database(settings(), work))
    emit(
        as_json,
        {"reencrypted": report.reencrypted, "current": report.current},
        f"re-encrypted {report.reencrypted} secret(s) with the newest key "
        f"({report.current} already were); older keys may now be dropped",
    )


def main() -> None:
    app()
