"""End users: profile fields of PROTOCOL §4, visibility, disabled flag, and
password sign-in (Argon2id, see :mod:`openplatform.storage.passwords`)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from sqlalchemy import Row, bindparam, select
from sqlalchemy.exc import IntegrityError

from openplatform.json_schema import Boolean, Integer, Nullable, Object, Text, invalid
from openplatform.storage.changes import AppChanges
from openplatform.storage.engine import Sessions
from openplatform.storage.errors import DuplicateError, NotFoundError
from openplatform.storage.models import User, utcnow
from openplatform.storage.passwords import (
    hash_password,
    needs_rehash,
    verify_dummy,
    verify_password,
)
from openplatform.storage.tokens import revoke_user_credentials_in

__all__ = [
    "NEW_USER",
    "PROFILE_FIELDS",
    "USER_PATCH",
    "ProfileVisibility",
    "UserRecord",
    "UserRepository",
]

ProfileVisibility = Literal["public", "private"]

# The fields users.getInfo may return (PROTOCOL §4), in that order.
PROFILE_FIELDS = (
    "uid",
    "username",
    "display_name",
    "avatar_url",
    "sex",
    "birthday",
    "locale",
    "email",
    "mobile",
)

_USERNAME = r"[^\W_][\w.@-]{0,63}"
_EMAIL = r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+"
_MOBILE = r"\+?[0-9][0-9 -]{2,30}"
_LOCALE = r"[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})*"
MAX_PASSWORD_LENGTH = 1024


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A user as stored (without the password hash); ``uid`` is the public id."""

    uid: int
    username: str
    display_name: str
    email: str | None
    mobile: str | None
    avatar_url: str
    sex: int  # 0 unknown, 1 male, 2 female
    birthday: str  # YYYY-MM-DD or ""
    locale: str
    profile_visibility: ProfileVisibility
    disabled: bool
    created_at: dt.datetime
    session_epoch: int = 0  # the generation of the user's browser sessions

    @property
    def private(self) -> bool:
        return self.profile_visibility == "private"

    def profile(self) -> dict[str, str | int | None]:
        """Every PROTOCOL §4 profile field; callers pick the requested ones."""
        return {
            "uid": self.uid,
            "username": self.username,
            "display_name": self.display_name,
            "avatar_url": self.avatar_url,
            "sex": self.sex,
            "birthday": self.birthday,
            "locale": self.locale,
            "email": self.email,
            "mobile": self.mobile,
        }


# A user as UserRecord needs it, in the order of its fields (not the password
# hash); by uid, by uids.
_USER_COLUMNS = (
    User.id,
    User.username,
    User.display_name,
    User.email,
    User.mobile,
    User.avatar_url,
    User.sex,
    User.birthday,
    User.locale,
    User.profile_visibility,
    User.disabled,
    User.created_at,
    User.session_epoch,
)
_GET_USER = select(*_USER_COLUMNS).where(User.id == bindparam("uid"))
_GET_USERS = select(*_USER_COLUMNS).where(User.id.in_(bindparam("uids", expanding=True)))


def _record_of_row(row: Row[*tuple[Any, ...]]) -> UserRecord:
    """A row of ``_USER_COLUMNS`` (unpacked: a Row's attribute lookups cost more)."""
    return UserRecord(*row)


def _record(row: User) -> UserRecord:
    return UserRecord(
        uid=row.id,
        username=row.username,
        display_name=row.display_name,
        email=row.email,
        mobile=row.mobile,
        avatar_url=row.avatar_url,
        sex=row.sex,
        birthday=row.birthday,
        locale=row.locale,
        profile_visibility=cast(ProfileVisibility, row.profile_visibility),
        disabled=row.disabled,
        created_at=row.created_at,
        session_epoch=row.session_epoch,
    )


def _birthday(path: str, text: str) -> str:
    if text:
        try:
            dt.date.fromisoformat(text)
        except ValueError:
            raise invalid(path, "must be a date YYYY-MM-DD") from None
    return text


def _avatar_url(path: str, text: str) -> str:
    if text and not text.startswith(("http://", "https://")):
        raise invalid(path, "must be an http(s) URL")
    return text


USERNAME = Text(
    max_length=64,
    pattern=_USERNAME,
    pattern_hint="must be 1-64 characters: letters, digits and _ . @ - "
    "(starting with a letter or a digit)",
)
PASSWORD = Text(min_length=1, max_length=MAX_PASSWORD_LENGTH, format="password")

# The fields of a user that can be changed (PROTOCOL §4 profile, §5 users API).
PROFILE = {
    "display_name": Text(max_length=100),
    "email": Nullable(
        inner=Text(
            max_length=254, pattern=f"({_EMAIL})?", pattern_hint="must be an e-mail address"
        ),
        description='an e-mail address; null or "" for none',
    ),
    "mobile": Nullable(
        inner=Text(
            max_length=32,
            pattern=f"({_MOBILE})?",
            pattern_hint="must be a phone number (digits, optional leading +)",
        ),
        description='a phone number; null or "" for none',
    ),
    "avatar_url": Text(max_length=2000, refine=_avatar_url, description="an http(s) URL"),
    "sex": Integer(minimum=0, maximum=2, description="0 unknown, 1 male, 2 female"),
    "birthday": Text(
        max_length=10,
        pattern=r"([0-9]{4}-[0-9]{2}-[0-9]{2})?",
        pattern_hint="must be a date YYYY-MM-DD",
        refine=_birthday,
        description='YYYY-MM-DD, or ""',
    ),
    "locale": Text(
        max_length=16,
        pattern=f"({_LOCALE})?",
        pattern_hint="must look like en, zh_CN or en-US",
    ),
    "profile_visibility": Text(max_length=8, enum=("public", "private"), default="public"),
}
NEW_USER = Object(
    title="NewUser",
    required=("username", "password"),
    properties={
        "username": USERNAME,
        "password": PASSWORD,
        "email": PROFILE["email"],
        "mobile": PROFILE["mobile"],
        "profile_visibility": PROFILE["profile_visibility"],
    },
)
USER_PATCH = Object(
    title="UserPatch",
    description="disabling revokes every credential of the user at once; a password "
    "change ends their browser sessions",
    properties={
        **PROFILE,
        "disabled": Boolean(),
        "password": PASSWORD,
    },
)


def validate_username(value: object) -> str:
    return USERNAME.check(value, "username")


def validate_password(value: object) -> str:
    return PASSWORD.check(value, "password")


def _profile_value(key: str, value: object) -> object:
    """One changeable profile field, checked (PROTOCOL §4, §5 users API)."""
    shape = USER_PATCH.properties.get(key)
    if shape is None or key == "password":
        raise invalid(key, "is not a user field that can be changed so")
    checked = shape.check(value, key)
    return None if checked == "" and key in ("email", "mobile") else checked


class UserRepository:
    """End users (PROTOCOL §4, §5 admin API, §6 CLI)."""

    def __init__(self, sessions: Sessions, changes: AppChanges | None = None) -> None:
        self._sessions = sessions
        self._changes = changes or AppChanges()

    async def create(
        self,
        username: str,
        password: str,
        email: str | None = None,
        mobile: str | None = None,
        private: bool = False,
        display_name: str = "",
        avatar_url: str = "",
        sex: int = 0,
        birthday: str = "",
        locale: str = "",
    ) -> UserRecord:
        """A new user. Raises ``ApiError`` 100 for a malformed field and
        :class:`DuplicateError` (``field="username"``) when the name is taken."""
        fields = {
            "display_name": display_name,
            "email": email,
            "mobile": mobile,
            "avatar_url": avatar_url,
            "sex": sex,
            "birthday": birthday,
            "locale": locale,
        }
        checked = {key: _profile_value(key, value) for key, value in fields.items()}
        row = User(
            username=validate_username(username),
            password_hash=await asyncio.to_thread(hash_password, validate_password(password)),
            profile_visibility="private" if private else "public",
            disabled=False,
            created_at=utcnow(),
            **checked,
        )
        try:
            async with self._sessions.write() as session:
                session.add(row)
                await session.flush()
        except IntegrityError:
            raise DuplicateError("username", f"username {username!r} is taken") from None
        return _record(row)

    async def get(self, uid: int) -> UserRecord | None:
        row = await self._sessions.first(_GET_USER, {"uid": uid})
        return None if row is None else _record_of_row(row)

    async def get_many(self, uids: Iterable[int]) -> dict[int, UserRecord]:
        """The users among ``uids`` that exist, by uid (one SELECT)."""
        wanted = sorted(set(uids))
        if not wanted:
            return {}
        if len(wanted) == 1:
            row = await self._sessions.first(_GET_USER, {"uid": wanted[0]})
            return {} if row is None else {row[0]: _record_of_row(row)}
        rows = await self._sessions.all(_GET_USERS, {"uids": wanted})
        return {row[0]: _record_of_row(row) for row in rows}

    async def page(self, *, after: int = 0, limit: int = 50) -> list[UserRecord]:
        """Up to ``limit`` users with uids above ``after``, by uid (keyset
        pagination: the last uid is the next page's ``after``)."""
        query = select(*_USER_COLUMNS).where(User.id > after).order_by(User.id).limit(limit)
        async with self._sessions.read() as session:
            rows = (await session.execute(query)).all()
        return [_record_of_row(row) for row in rows]

    async def get_by_username(self, username: str) -> UserRecord | None:
        if "\x00" in username:  # no username has one (PostgreSQL cannot even compare it)
            return None
        async with self._sessions.read() as session:
            row = await session.scalar(select(User).where(User.username == username))
        return None if row is None else _record(row)

    async def authenticate(self, username: str, password: str) -> UserRecord | None:
        """The user with these credentials, or None for an unknown user, a wrong
        password or a disabled user. Takes one Argon2 verification either way,
        so timing does not tell which usernames exist."""
        row = None
        if "\x00" not in username:  # no username has one (PostgreSQL cannot compare it)
            async with self._sessions.read() as session:
                row = await session.scalar(select(User).where(User.username == username))
        if row is None:
            await asyncio.to_thread(verify_dummy, password)
            return None
        if not await asyncio.to_thread(verify_password, row.password_hash, password):
            return None
        if row.disabled:
            return None
        if needs_rehash(row.password_hash):
            await self._set_password(row.id, password)
        return _record(row)

    async def _set_password(self, uid: int, password: str) -> None:
        password_hash = await asyncio.to_thread(hash_password, password)
        async with self._sessions.write() as session:
            row = await session.get(User, uid, with_for_update=True)
            if row is not None:
                row.password_hash = password_hash

    async def update(self, uid: int, patch: Mapping[str, object]) -> UserRecord:
        """Change profile fields, ``profile_visibility``, ``disabled`` or
        ``password``. Unknown or malformed fields are ``ApiError`` 100; an
        unknown uid is :class:`NotFoundError`.

        PROTOCOL §5: disabling revokes, in the same transaction, every
        credential the user holds (tokens, session keys, refresh tokens,
        unredeemed codes — enabling again brings none back) and ends their
        browser sessions; a password change ends their browser sessions."""
        changes: dict[str, object] = {}
        for key, value in patch.items():
            if key == "password":
                changes["password_hash"] = await asyncio.to_thread(
                    hash_password, validate_password(value)
                )
            else:
                changes[key] = _profile_value(key, value)
        disabling = changes.get("disabled") is True
        revoked_apps: set[int] = set()
        async with self._sessions.write() as session:
            row = await session.get(User, uid, with_for_update=True)
            if row is None:
                raise NotFoundError(f"no user {uid}")
            if disabling:
                revoked_apps = await revoke_user_credentials_in(session, uid)
            if disabling or "password_hash" in changes:
                changes["session_epoch"] = row.session_epoch + 1
            for key, value in changes.items():
                setattr(row, key, value)
        await self._changes.publish(revoked_apps)
        return _record(row)
