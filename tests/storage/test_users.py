"""UserRepository on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC

import pytest

from openplatform.errors import ApiError, Code
from openplatform.storage.database import Database
from openplatform.storage.errors import DuplicateError, NotFoundError


async def test_create_and_get(database: Database) -> None:
    user = await database.users.create(
        "alice",
        "s3cret pw",
        email="alice@example.com",
        mobile="+86 138 0000 0000",
        display_name="Alice",
        sex=2,
        birthday="1990-05-17",
        locale="zh_CN",
        avatar_url="https://cdn.example.com/a.png",
    )
    assert user.uid > 0
    assert user.profile_visibility == "public"
    assert not user.private
    assert not user.disabled
    assert user.created_at.tzinfo is UTC
    assert await database.users.get(user.uid) == user
    assert await database.users.get_by_username("alice") == user
    assert await database.users.get(user.uid + 1000) is None
    assert await database.users.get_by_username("bob") is None
    assert user.profile() == {
        "uid": user.uid,
        "username": "alice",
        "display_name": "Alice",
        "avatar_url": "https://cdn.example.com/a.png",
        "sex": 2,
        "birthday": "1990-05-17",
        "locale": "zh_CN",
        "email": "alice@example.com",
        "mobile": "+86 138 0000 0000",
    }


async def test_private_profile(database: Database) -> None:
    user = await database.users.create("hidden", "pw", private=True)
    assert user.profile_visibility == "private"
    assert user.private


async def test_duplicate_username(database: Database) -> None:
    await database.users.create("dup", "pw")
    with pytest.raises(DuplicateError) as info:
        await database.users.create("dup", "other")
    assert info.value.field == "username"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"username": ""}, "username"),
        ({"username": "with space"}, "username"),
        ({"username": "x" * 65}, "username"),
        ({"password": ""}, "password"),
        ({"email": "not-an-email"}, "email"),
        ({"mobile": "call me"}, "mobile"),
        ({"birthday": "1990-13-01"}, "birthday"),
        ({"sex": 3}, "sex"),
        ({"locale": "english please"}, "locale"),
        ({"avatar_url": "ftp://x"}, "avatar_url"),
        ({"email": "a\x00@example.com"}, "email"),
        ({"display_name": "a\x00b"}, "display_name"),
    ],
)
async def test_malformed_fields_are_100(
    database: Database, kwargs: dict[str, object], field: str
) -> None:
    arguments: dict[str, object] = {"username": "valid", "password": "pw", **kwargs}
    with pytest.raises(ApiError) as info:
        await database.users.create(**arguments)  # type: ignore[arg-type]
    assert info.value.code == Code.INVALID_PARAMETER
    assert field in (info.value.detail or "")


async def test_get_many(database: Database) -> None:
    first = await database.users.create("u1", "pw")
    second = await database.users.create("u2", "pw")
    found = await database.users.get_many([second.uid, first.uid, 999_999, second.uid])
    assert found == {first.uid: first, second.uid: second}
    assert await database.users.get_many([]) == {}


async def test_password_is_hashed_and_authenticates(database: Database) -> None:
    user = await database.users.create("bob", "correct horse")
    assert await database.users.authenticate("bob", "correct horse") == user
    assert await database.users.authenticate("bob", "wrong") is None
    assert await database.users.authenticate("nobody", "correct horse") is None


async def test_a_username_with_a_nul_is_nobody(database: Database) -> None:
    """PostgreSQL cannot compare text with a NUL: it once answered code 1."""
    await database.users.create("bob", "correct horse")
    assert await database.users.authenticate("bob\x00", "correct horse") is None
    assert await database.users.get_by_username("bob\x00") is None


async def test_disabled_user_cannot_sign_in(database: Database) -> None:
    user = await database.users.create("dave", "pw")
    disabled = await database.users.update(user.uid, {"disabled": True})
    assert disabled.disabled
    assert await database.users.authenticate("dave", "pw") is None
    await database.users.update(user.uid, {"disabled": False})
    assert await database.users.authenticate("dave", "pw") is not None


async def test_update(database: Database) -> None:
    user = await database.users.create("erin", "old", email="e@example.com")
    updated = await database.users.update(
        user.uid,
        {"profile_visibility": "private", "display_name": "Erin", "email": None, "password": "new"},
    )
    assert updated.private
    assert updated.display_name == "Erin"
    assert updated.email is None
    assert await database.users.get(user.uid) == updated
    assert await database.users.authenticate("erin", "old") is None
    assert await database.users.authenticate("erin", "new") == updated

    for patch in ({"username": "x"}, {"profile_visibility": "friends"}, {"disabled": "yes"}):
        with pytest.raises(ApiError) as info:
            await database.users.update(user.uid, patch)
        assert info.value.code == Code.INVALID_PARAMETER
    with pytest.raises(NotFoundError):
        await database.users.update(user.uid + 1000, {"display_name": "x"})
