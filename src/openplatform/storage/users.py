"""End users: profile fields of PROTOCOL §4, visibility, disabled flag, and
password sign-in (Argon2id, see :mod:`openplatform.storage.passwords`)."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from sqlalchemy import Row, bindparam, select
from sqlalchemy.exc import IntegrityError

from openplatform.errors import ApiError, Code
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

__all__ = ["PROFILE_FIELDS", "ProfileVisibility", "UserRecord", "UserRepository"]

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

_USERNAME = re.compile(r"^[^\W_][\w.@-]{0,63}$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
_MOBILE = re.compile(r"^\+?[0-9][0-9 -]{2,30}$")
_LOCALE = re.compile(r"^[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})*$")
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


def _invalid(detail: str) -> ApiError:
    return ApiError(Code.INVALID_PARAMETER, detail)


def _text(name: str, value: object, max_length: int) -> str:
    if not isinstance(value, str):
        raise _invalid(f"{name} must be a string")
    if len(value) > max_length:
        raise _invalid(f"{name} must be at most {max_length} characters")
    return value


def validate_username(value: object) -> str:
    if not isinstance(value, str) or not _USERNAME.match(value):
        raise _invalid(
            "username must be 1-64 characters: letters, digits and _ . @ - "
            "(starting with a letter or a digit)"
        )
    return value


def validate_password(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise _invalid("password must be a non-empty string")
    if len(value) > MAX_PASSWORD_LENGTH:
        raise _invalid(f"password must be at most {MAX_PASSWORD_LENGTH} characters")
    return value


def _profile_value(key: str, value: object) -> object:
    """One changeable profile field, checked (PROTOCOL §4, §5 users API)."""
    if key == "display_name":
        return _text(key, value, 100)
    if key == "email":
        if value is None or value == "":
            return None
        text = _text(key, value, 254)
        if not _EMAIL.match(text):
            raise _invalid("email must be an e-mail address")
        return text
    if key == "mobile":
        if value is None or value == "":
            return None
        text = _text(key, value, 32)
        if not _MOBILE.match(text):
            raise _invalid("mobile must be a phone number (digits, optional leading +)")
        return text
    if key == "avatar_url":
        text = _text(key, value, 2000)
        if text and not text.startswith(("http://", "https://")):
            raise _invalid("avatar_url must be an http(s) URL")
        return text
    if key == "sex":
        if isinstance(value, bool) or value not in (0, 1, 2):
            raise _invalid("sex must be 0 (unknown), 1 (male) or 2 (female)")
        return value
    if key == "birthday":
        text = _text(key, value, 10)
        if text:
            try:
                dt.date.fromisoformat(text)
            except ValueError:
                raise _invalid("birthday must be a date YYYY-MM-DD") from None
            if len(text) != 10:
                raise _invalid("birthday must be a date YYYY-MM-DD")
        return text
    if key == "locale":
        text = _text(key, value, 16)
        if text and not _LOCALE.match(text):
            raise _invalid("locale must look like en, zh_CN or en-US")
        return text
    if key == "profile_visibility":
        if value not in ("public", "private"):
            raise _invalid("profile_visibility must be 'public' or 'private'")
        return value
    if key == "disabled":
        if not isinstance(value, bool):
            raise _invalid("disabled must be true or false")
        return value
    raise _invalid(f"unknown user field {key!r}")


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

    async def get_by_username(self, username: str) -> UserRecord | None:
        async with self._sessions.read() as session:
            row = await session.scalar(select(User).where(User.username == username))
        return None if row is None else _record(row)

    async def authenticate(self, username: str, password: str) -> UserRecord | None:
        """The user with these credentials, or None for an unknown user, a wrong
        password or a disabled user. Takes one Argon2 verification either way,
        so timing does not tell which usernames exist."""
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
