"""PROTOCOL §2: tokens, refresh tokens, session keys (and admin tokens) are
stored only as hashes; app and session secrets only encrypted; passwords only
as Argon2 hashes. Checked on the bytes of the SQLite files, WAL included, and
on a pg_dump of every PostgreSQL table (the data store's included) — also
after ``openplatform secrets rotate`` re-encrypted everything under a new key
— and on the schema: every column named like a secret holds a hash or a
ciphertext, and every ciphertext column is one the rotation re-encrypts."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from openplatform.storage.apps import AppSettings
from openplatform.storage.crypto import SecretBox, hash_token
from openplatform.storage.data_store import PropType, Tenant
from openplatform.storage.database import Database
from openplatform.storage.models import Base
from openplatform.storage.secret_rotation import ENCRYPTED_COLUMNS, rotate_secrets
from tests.conftest import TEST_SECRET_KEY, fresh_database_url

NEW_KEY = "new-key-" + "n" * 32
# Columns named like a secret that hold public values.
PUBLIC_COLUMNS = {
    ("apps", "api_key"),  # sent in the clear with every call
    ("platform_settings", "key"),
    ("api_call_stats", "error_code"),
    ("authorization_codes", "code_challenge"),  # S256 only: a hash of the verifier
    ("authorization_codes", "code_challenge_method"),
    ("data_hash_values", "hash_key"),  # an app's own key into its data
}
SECRET_LIKE = re.compile(r"secret|token|code|pass|key|sig|nonce|verifier")


def test_every_secret_column_is_hashed_or_encrypted() -> None:
    secret_like = {
        (table.name, column.name)
        for table in Base.metadata.sorted_tables
        for column in table.columns
        if SECRET_LIKE.search(column.name)
    }
    stored_safely = {name for name in secret_like if name[1].endswith(("_hash", "_encrypted"))}
    assert secret_like - stored_safely == PUBLIC_COLUMNS
    encrypted = {name for name in secret_like if name[1].endswith("_encrypted")}
    rotated = {(column.class_.__tablename__, column.key) for _, column in ENCRYPTED_COLUMNS}
    assert (
        encrypted
        == rotated
        == {
            ("apps", "secret_encrypted"),
            ("access_tokens", "session_secret_encrypted"),
        }
    )


async def rotate_to_new_key(url: str) -> None:
    """``openplatform secrets rotate`` with ``NEW_KEY`` listed first."""
    box = SecretBox(f"{NEW_KEY},{TEST_SECRET_KEY}")
    async with Database(url, box) as database:
        report = await rotate_secrets(database.sessions, box)
    assert (report.reencrypted, report.current) == (2, 0)  # the app secret, the session secret


async def store_data(database: Database, app_id: int, marker: str) -> None:
    """A hash value in the app's data store (so the data-store tables hold rows)."""
    store, tenant = database.data_store, Tenant(app_id, 10**6)
    await store.create_type(tenant, "kv")
    await store.define_property(tenant, "kv", "v", PropType.STRING)
    await store.set_hash_value(tenant, "kv", "k", "v", marker)


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
        code = await database.tokens.create_code(app.id, user.uid, None, "basic", None, None, 600)
        admin_token = await database.admin_tokens.create("ops")
        await database.users.authenticate("alice", password)
        await store_data(database, app.id, "data-store-marker")
        assert Path(f"{path}-wal").exists(), "expected WAL mode"
        written_while_open = database_bytes(path)
    finally:
        await database.close()
    assert not Path(f"{path}-wal").exists(), "closing did not checkpoint the WAL"
    at_rest = database_bytes(path)
    assert b"data-store-marker" in at_rest  # the data store's rows are in these bytes
    await rotate_to_new_key(f"sqlite:///{path}")
    after_rotation = database_bytes(path)

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
        "authorization code": code,
        "admin token": admin_token,
    }
    secrets["new secret key"] = NEW_KEY
    for contents in (written_while_open, at_rest, after_rotation):
        for name, value in {**secrets, **tokens}.items():
            assert value.encode() not in contents, f"{name} found in plaintext"
    for name, value in tokens.items():
        for contents in (written_while_open, at_rest, after_rotation):
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
        await database.users.authenticate("alice", password)
        await store_data(database, app.id, "data-store-marker")
    finally:
        await database.close()

    def dump() -> bytes:
        return subprocess.run(
            [pg_dump, "--data-only", "--no-owner", url],
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout

    before_rotation = dump()
    await rotate_to_new_key(url)
    after_rotation = dump()
    for contents in (before_rotation, after_rotation):
        assert hash_token(issued.access_token).encode() in contents  # the dump holds the rows
        assert b"data-store-marker" in contents  # ... the data store's too
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
        "new secret key": NEW_KEY,
    }
    for name, value in plaintext.items():
        assert value is not None
        for contents in (before_rotation, after_rotation):
            assert value.encode() not in contents, f"{name} found in plaintext"
