"""PROTOCOL §2: tokens, refresh tokens, session keys (and admin tokens) are
stored only as hashes; app and session secrets only encrypted; passwords only
as Argon2 hashes. Checked on the bytes of the SQLite files, WAL included, and
on a pg_dump of every PostgreSQL table."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from openplatform.storage.apps import AppSettings
from openplatform.storage.crypto import SecretBox, hash_token
from openplatform.storage.database import Database
from tests.conftest import TEST_SECRET_KEY, fresh_database_url


def database_bytes(path: Path) -> bytes:
    """The main file and, if present, its WAL and shared-memory files."""
    files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
    return b"".join(file.read_bytes() for file in files if file.exists())


async def test_no_secret_in_plaintext_in_the_sqlite_files(
    sqlite_template: Path, tmp_path: Path
) -> None:
    path = tmp_path / "openplatform.db"
    shutil.copyfile(sqlite_template, path)
    database = Database(f"sqlite:///{path}", SecretBox(TEST_SECRET_KEY))
    password = "correct-horse-battery-staple-Ω"
    try:
        app = await database.apps.create(AppSettings(name="A"))
        rotated = await database.apps.rotate_secret(app.id)
        user = await database.users.create("alice", password)
        grant = await database.tokens.create_grant(app.id, user.uid, "basic", "authorization_code")
        issued = await database.tokens.issue(grant, app.id, user.uid, "basic", 3600, 600, True)
        admin_token = await database.admin_tokens.create("ops")
        await database.users.authenticate("alice", password)
        assert Path(f"{path}-wal").exists(), "expected WAL mode"
        written_while_open = database_bytes(path)
    finally:
        await database.close()
    assert not Path(f"{path}-wal").exists(), "closing did not checkpoint the WAL"
    at_rest = database_bytes(path)

    assert issued.refresh_token is not None
    assert issued.session_key is not None
    assert issued.session_secret is not None
    secrets = {
        "app secret": app.secret,
        "rotated app secret": rotated,
        "session secret": issued.session_secret,
        "password": password,
        "secret key": TEST_SECRET_KEY,
    }
    tokens = {
        "access token": issued.access_token,
        "refresh token": issued.refresh_token,
        "session key": issued.session_key,
        "admin token": admin_token,
    }
    for contents in (written_while_open, at_rest):
        for name, value in {**secrets, **tokens}.items():
            assert value.encode() not in contents, f"{name} found in plaintext"
    for name, value in tokens.items():
        for contents in (written_while_open, at_rest):
            assert hash_token(value).encode() in contents, f"{name} not stored as its hash"


@pytest.mark.postgres
async def test_no_secret_in_plaintext_in_a_postgresql_dump(
    postgres_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Every table of a PostgreSQL database, dumped with ``pg_dump``, holds
    no app secret, session secret, token, code, session key or password."""
    pg_dump = shutil.which("pg_dump")
    assert pg_dump, "pg_dump is part of the PostgreSQL client tools CI runs with"
    url = fresh_database_url("postgres", request, tmp_path)
    database = Database(url, SecretBox(TEST_SECRET_KEY))
    password = "correct-horse-battery-staple-Ω"
    try:
        app = await database.apps.create(AppSettings(name="A"))
        rotated = await database.apps.rotate_secret(app.id)
        user = await database.users.create("alice", password)
        grant = await database.tokens.create_grant(app.id, user.uid, "basic", "authorization_code")
        issued = await database.tokens.issue(grant, app.id, user.uid, "basic", 3600, 600, True)
        code = await database.tokens.create_code(app.id, user.uid, None, "basic", None, None, 600)
        admin_token = await database.admin_tokens.create("ops")
    finally:
        await database.close()
    dump = subprocess.run(
        [pg_dump, "--data-only", "--no-owner", url],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    assert hash_token(issued.access_token).encode() in dump  # the dump holds the rows
    plaintext = {
        "app secret": app.secret,
        "rotated app secret": rotated,
        "session secret": issued.session_secret,
        "password": password,
        "secret key": TEST_SECRET_KEY,
        "access token": issued.access_token,
        "refresh token": issued.refresh_token,
        "session key": issued.session_key,
        "authorization code": code,
        "admin token": admin_token,
    }
    for name, value in plaintext.items():
        assert value is not None
        assert value.encode() not in dump, f"{name} found in plaintext"
