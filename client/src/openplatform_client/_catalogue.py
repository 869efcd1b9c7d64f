"""The error catalogue (PROTOCOL §1), as ``GET /api/error-codes`` serves it.

The SDK ships a copy (``catalogue.json``, loaded once) so that an error
carries both messages although the server answers in one language per
request, and so that errors are classified by their code alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Literal

__all__ = ["CATALOGUE", "CatalogueEntry", "Lang", "catalogue_entry"]

Lang = Literal["en", "zh"]


@dataclass(frozen=True, slots=True)
class CatalogueEntry:
    """One code of the catalogue: its family, OAuth name, HTTP status and texts."""

    code: int
    family: Literal["oauth", "api"]
    error: str | None
    http_status: int
    en: str
    zh: str

    def message(self, lang: Lang) -> str:
        """The text in ``lang``; a ``%s`` the server would fill (code 5: the
        client IP) is left out, since only the server knows its value."""
        text = self.zh if lang == "zh" else self.en
        return text.replace("%s", "")


def _load() -> dict[int, CatalogueEntry]:
    raw = resources.files(__package__).joinpath("catalogue.json").read_text("utf-8")
    return {item["code"]: CatalogueEntry(**item) for item in json.loads(raw)}


CATALOGUE: dict[int, CatalogueEntry] = _load()


def catalogue_entry(code: int) -> CatalogueEntry | None:
    """The entry of ``code``, or None for a code this copy does not know
    (a newer server)."""
    return CATALOGUE.get(code)
