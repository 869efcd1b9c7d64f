"""AppRepository on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC

import pytest

from openplatform.errors import ApiError, Code
from openplatform.storage.apps import AppSettings
from openplatform.storage.database import Database
from openplatform.storage.errors import NotFoundError


async def test_create_and_get(database: Database) -> None:
    created = await database.apps.create(
        AppSettings.from_mapping({"name": "Demo", "redirect_uris": ["https://a.example/cb"]})
    )
    assert created.api_key.startswith("ak_")
    assert len(created.secret) == 64
    assert created.status == "active"
    assert created.active
    assert created.created_at.tzinfo is UTC
    assert created.secret not in repr(created)

    by_id = await database.apps.get(created.id)
    by_key = await database.apps.get_by_api_key(created.api_key)
    assert by_id == created
    assert by_key == created
    assert by_id is not None
    assert by_id.settings.redirect_uris == ("https://a.example/cb",)
    assert await database.apps.get(created.id + 1000) is None
    assert await database.apps.get_by_api_key("ak_unknown") is None


async def test_api_keys_and_secrets_differ(database: Database) -> None:
    first = await database.apps.create(AppSettings(name="one"))
    second = await database.apps.create(AppSettings(name="two"))
    assert first.api_key != second.api_key
    assert first.secret != second.secret
    assert [app.name for app in await database.apps.list()] == ["one", "two"]


async def test_update_validates_and_persists(database: Database) -> None:
    app = await database.apps.create(AppSettings(name="Old"))
    updated = await database.apps.update(
        app.id, {"name": "New", "status": "suspended", "scopes": ["basic", "data"]}
    )
    assert (updated.name, updated.status) == ("New", "suspended")
    assert updated.settings.scopes == ("basic", "data")
    assert updated.updated_at >= app.updated_at
    assert await database.apps.get(app.id) == updated

    with pytest.raises(ApiError) as info:
        await database.apps.update(app.id, {"ip_allowlist": ["not-an-ip"]})
    assert info.value.code == Code.INVALID_IP
    with pytest.raises(ApiError) as info:
        await database.apps.update(app.id, {"bogus": 1})
    assert info.value.code == Code.INVALID_PARAMETER
    assert await database.apps.get(app.id) == updated

    with pytest.raises(NotFoundError):
        await database.apps.update(app.id + 1000, {"name": "x"})


async def test_rotate_secret(database: Database) -> None:
    app = await database.apps.create(AppSettings(name="A"))
    secret = await database.apps.rotate_secret(app.id)
    assert secret != app.secret
    assert len(secret) == 64
    stored = await database.apps.get(app.id)
    assert stored is not None
    assert stored.secret == secret


async def test_delete_marks_deleted_and_removes_tokens(database: Database) -> None:
    app = await database.apps.create(AppSettings(name="A"))
    other = await database.apps.create(AppSettings(name="B"))
    user = await database.users.create("carol", "pw")
    issued = []
    for each in (app, other):
        grant = await database.tokens.create_grant(each.id, user.uid, "basic", "authorization_code")
        tokens = await database.tokens.issue(grant, each.id, user.uid, "basic", 3600, 60, True)
        issued.append(tokens)
        await database.consents.grant(user.uid, each.id, "basic")

    await database.apps.delete(app.id)

    deleted = await database.apps.get(app.id)
    assert deleted is not None
    assert deleted.status == "deleted"
    assert not deleted.active
    by_key = await database.apps.get_by_api_key(app.api_key)
    assert by_key is not None
    assert by_key.status == "deleted"
    assert await database.tokens.find_access_token(issued[0].access_token) is None
    assert issued[0].session_key is not None
    assert await database.tokens.find_session(issued[0].session_key) is None
    assert await database.consents.get(user.uid, app.id) is None
    assert [a.id for a in await database.apps.list()] == [other.id]
    assert app.id in [a.id for a in await database.apps.list(include_deleted=True)]
    # The other app is untouched.
    assert await database.tokens.find_access_token(issued[1].access_token) is not None
    assert await database.consents.get(user.uid, other.id) is not None

    for action in (
        database.apps.delete(app.id),
        database.apps.update(app.id, {"name": "again"}),
        database.apps.rotate_secret(app.id),
    ):
        with pytest.raises(NotFoundError):
            await action


async def test_list_by_owner(database: Database) -> None:
    owner = await database.users.create("owner", "pw")
    mine = await database.apps.create(AppSettings(name="mine"), owner_id=owner.uid)
    await database.apps.create(AppSettings(name="theirs"))
    assert [app.id for app in await database.apps.list(owner_id=owner.uid)] == [mine.id]


async def test_concurrent_patches_of_one_app_all_land(
    database: Database, database_url: str
) -> None:
    """Read-modify-write of the settings is atomic: patches of different fields
    from two workers at once lose none (SQLite: BEGIN IMMEDIATE; PostgreSQL:
    row lock)."""
    from openplatform.storage.crypto import SecretBox
    from tests.conftest import TEST_SECRET_KEY

    app = await database.apps.create(AppSettings(name="A"))
    patches: list[dict[str, object]] = [
        {"require_signature": True},
        {"legacy_http_200": True},
        {"require_call_id": True},
        {"allow_missing_referer": True},
        {"description": "described"},
        {"icon_url": "https://cdn.example.com/i.png"},
        {"access_token_ttl_s": 600},
        {"storage_quota_bytes": 1},
        {"refresh_reuse_grace_s": 0},
        {"scopes": ["basic", "data"]},
    ]
    second = Database(database_url, SecretBox(TEST_SECRET_KEY))
    try:
        await asyncio.gather(
            *(
                (database if i % 2 else second).apps.update(app.id, patch)
                for i, patch in enumerate(patches)
            )
        )
    finally:
        await second.close()
    stored = await database.apps.get(app.id)
    assert stored is not None
    settings = stored.settings.to_json()
    for patch in patches:
        for key, value in patch.items():
            assert settings[key] == value, key


@pytest.mark.parametrize("api_key", ["", "\x00", "ak_\x00", "k" * 65])
async def test_impossible_api_keys_find_nothing(database: Database, api_key: str) -> None:
    """Found by fuzzing: a NUL reached PostgreSQL, which refused the query."""
    assert await database.apps.get_by_api_key(api_key) is None
