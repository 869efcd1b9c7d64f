"""Storage-level failures. Callers map them onto the error catalogue at their
boundary (e.g. :class:`DuplicateError` → 804 in the admin API)."""

from __future__ import annotations

__all__ = [
    "DatabaseUnavailable",
    "DuplicateError",
    "NotFoundError",
    "StorageError",
    "UserDisabled",
]


class StorageError(Exception):
    """Base class of the errors the repositories raise on purpose."""


class DuplicateError(StorageError):
    """A unique value (e.g. a username) is already taken; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


class NotFoundError(StorageError):
    """The row to change does not exist (or, for apps, was deleted)."""


class UserDisabled(StorageError):
    """Nothing may be issued for this user: disabled (or deleted)."""


class DatabaseUnavailable(StorageError):
    """The database cannot be reached or is too busy right now (connection
    refused or lost, pool exhausted, lock wait timed out). Callers answer
    "service temporarily unavailable" (code 2) rather than an unknown error."""
