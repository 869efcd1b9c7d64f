"""One API call as the client prepares it, before credentials and signature."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["IDEMPOTENT_METHODS", "PreparedCall", "is_idempotent", "raw_call"]

T = TypeVar("T")

# Methods that may be sent again after an answer that leaves open whether
# they ran (2 from an outage, 805, a lost connection): sending them twice has
# the same effect, and the same answer, as sending them once. Reads, and
# writes that set a given value. Not in it: creations (a second one answers
# 804 or makes a second object), deletions and renames (a second one answers
# 803), increments (a second one adds again), associations (their time
# defaults to "now").
IDEMPOTENT_METHODS = frozenset(
    {
        "users.getInfo",
        "users.getLoggedInUser",
        "users.hasAppPermission",
        "users.isAppUser",
        "application.getPublicInfo",
        "data.getUserPreference",
        "data.getUserPreferences",
        "data.setUserPreference",
        "data.setUserPreferences",
        "data.getObjectTypes",
        "data.getObjectType",
        "data.getObject",
        "data.getObjects",
        "data.getObjectProperty",
        "data.setObjectProperty",
        "data.updateObject",
        "data.getHashValue",
        "data.setHashValue",
        "data.getAssociationDefinition",
        "data.getAssociationDefinitions",
        "data.getAssociatedObjects",
        "data.getAssociatedObjectCount",
        "data.getAssociatedObjectCounts",
        "data.getAssociations",
    }
)


def is_idempotent(method: str) -> bool:
    return method in IDEMPOTENT_METHODS


def _identity(result: object) -> object:
    return result


@dataclass(frozen=True, slots=True)
class PreparedCall(Generic[T]):
    """``method`` with its encoded parameters, how to read its result, and
    whether it may be sent again after an answer that leaves open whether it
    ran (see :data:`IDEMPOTENT_METHODS`)."""

    method: str
    params: dict[str, str]
    decode: Callable[[object], T]
    idempotent: bool


def raw_call(method: str, params: dict[str, str], idempotent: bool | None) -> PreparedCall[object]:
    """A call whose result is returned as the server sent it (decoded JSON)."""
    return PreparedCall(
        method, params, _identity, is_idempotent(method) if idempotent is None else idempotent
    )
