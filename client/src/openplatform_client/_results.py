"""Typed results of the API methods (PROTOCOL §4)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from openplatform_client._exceptions import APIResponseError

__all__ = [
    "ApplicationInfo",
    "AssociatedObject",
    "AssociationDefinition",
    "AssociationType",
    "PropertyDefinition",
    "PropertyType",
    "UserInfo",
    "unexpected",
]


def unexpected(what: str, result: object) -> APIResponseError:
    """The error for a result that does not have the shape PROTOCOL §4 gives."""
    return APIResponseError(
        f"unexpected result: expected {what}", http_status=200, body=repr(result), request_id=None
    )


def as_mapping(result: object, what: str) -> Mapping[str, object]:
    if not isinstance(result, Mapping):
        raise unexpected(what, result)
    return result


def as_list(result: object, what: str) -> list[object]:
    if not isinstance(result, list):
        raise unexpected(what, result)
    return result


class PropertyType(enum.IntEnum):
    """``prop_type`` of an object property."""

    INTEGER = 1
    STRING = 2  # at most 255 characters
    TEXT = 3  # at most 64 KiB


class AssociationType(enum.IntEnum):
    """``assoc_type`` of an association."""

    ONE_WAY = 1
    TWO_WAY_SYMMETRIC = 2
    TWO_WAY_ASYMMETRIC = 3


@dataclass(frozen=True, slots=True)
class UserInfo:
    """A user of ``users.getInfo``: ``uid`` and the fields asked for (the
    others are None; a field the user has not set is ``""``)."""

    uid: int
    username: str | None = None
    display_name: str | None = None
    avatar_url: str | None = None
    sex: int | None = None  # 0 unknown, 1 male, 2 female
    birthday: str | None = None  # YYYY-MM-DD or ""
    locale: str | None = None
    email: str | None = None
    mobile: str | None = None

    @classmethod
    def from_result(cls, item: object) -> UserInfo:
        data = as_mapping(item, "a user object")
        uid = data.get("uid")
        if not isinstance(uid, int):
            raise unexpected("a user object with a uid", item)
        sex = data.get("sex")

        def text(name: str) -> str | None:
            value = data.get(name)
            return None if value is None else str(value)

        return cls(
            uid=uid,
            username=text("username"),
            display_name=text("display_name"),
            avatar_url=text("avatar_url"),
            sex=sex if isinstance(sex, int) else None,
            birthday=text("birthday"),
            locale=text("locale"),
            email=text("email"),
            mobile=text("mobile"),
        )


@dataclass(frozen=True, slots=True)
class ApplicationInfo:
    """``application.getPublicInfo``: what anyone may know of an app."""

    app_id: int
    api_key: str
    name: str
    description: str
    icon_url: str

    @classmethod
    def from_result(cls, result: object) -> ApplicationInfo:
        data = as_mapping(result, "an application object")
        app_id = data.get("app_id")
        if not isinstance(app_id, int):
            raise unexpected("an application object with an app_id", result)
        return cls(
            app_id=app_id,
            api_key=str(data.get("api_key") or ""),
            name=str(data.get("name") or ""),
            description=str(data.get("description") or ""),
            icon_url=str(data.get("icon_url") or ""),
        )


@dataclass(frozen=True, slots=True)
class PropertyDefinition:
    """A property of an object type (``data.getObjectType``)."""

    name: str
    prop_type: PropertyType

    @classmethod
    def from_result(cls, item: object) -> PropertyDefinition:
        data = as_mapping(item, "a property definition")
        return cls(str(data.get("name")), PropertyType(int(str(data.get("prop_type")))))


@dataclass(frozen=True, slots=True)
class AssociationDefinition:
    """An association (``data.getAssociationDefinition(s)``)."""

    name: str
    assoc_type: AssociationType
    assoc_info1: object
    assoc_info2: object
    inverse: str | None

    @classmethod
    def from_result(cls, item: object) -> AssociationDefinition:
        data = as_mapping(item, "an association definition")
        inverse = data.get("inverse")
        return cls(
            name=str(data.get("name")),
            assoc_type=AssociationType(int(str(data.get("assoc_type")))),
            assoc_info1=data.get("assoc_info1"),
            assoc_info2=data.get("assoc_info2"),
            inverse=None if inverse in (None, "") else str(inverse),
        )


@dataclass(frozen=True, slots=True)
class AssociatedObject:
    """One entry of ``data.getAssociatedObjects``."""

    id2: int
    data: str
    time: int

    @classmethod
    def from_result(cls, item: object) -> AssociatedObject:
        entry = as_mapping(item, "an associated object")
        return cls(
            id2=int(str(entry.get("id2"))),
            data=str(entry.get("data") or ""),
            time=int(str(entry.get("time") or 0)),
        )
