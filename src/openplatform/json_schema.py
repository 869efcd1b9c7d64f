"""Declared JSON shapes: one declaration both checks a value and describes it.

A :class:`Shape` checks a decoded JSON value — raising :class:`ApiError` 100
(or the code it declares: 114 for an IP address) whose ``field`` is the path
at fault, e.g. ``ip_allowlist[1]`` — and renders itself as JSON Schema 2020-12,
the dialect of OpenAPI 3.1. App settings, users and every admin API request
are declared with shapes, and the admin API's OpenAPI document is built from
the same declarations (STYLE rule 7: one source of truth), so the document
cannot describe a rule that the server does not apply, or miss one it does.

Rules JSON Schema cannot say (an IP network, a redirect URI's scheme) are a
shape's ``refine`` function; its ``description`` says them in words.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from openplatform.errors import ApiError, Code

__all__ = [
    "MISSING",
    "Array",
    "Boolean",
    "Integer",
    "JsonSchema",
    "Nullable",
    "Number",
    "Object",
    "Shape",
    "Text",
    "invalid",
]

JsonSchema = dict[str, object]


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()  # a shape without a default


def invalid(path: str, why: str, code: Code = Code.INVALID_PARAMETER) -> ApiError:
    """The error for the input at ``path`` (``why`` reads after the path)."""
    return ApiError(code, f"{path} {why}" if path else why, field=path or None)


@dataclass(frozen=True, kw_only=True)
class Shape(abc.ABC):
    """What a JSON value must be. ``default`` is documented (and filled in by
    objects with ``fill_defaults``)."""

    description: str = ""
    default: object = MISSING

    @abc.abstractmethod
    def check(self, value: object, path: str) -> object:
        """``value`` checked (and normalized); raises ``ApiError`` naming ``path``."""

    @abc.abstractmethod
    def _schema(self) -> JsonSchema: ...

    def json_schema(self) -> JsonSchema:
        """This shape as JSON Schema 2020-12."""
        schema = self._schema()
        if self.description:
            schema["description"] = self.description
        if self.default is not MISSING:
            schema["default"] = self.default
        return schema


@dataclass(frozen=True, kw_only=True)
class Text(Shape):
    """A string. ``pattern`` must match the whole string; ``refine`` applies a
    rule of its own to the (stripped, when ``strip``) value and may normalize it."""

    max_length: int
    min_length: int = 0
    not_blank: bool = False
    strip: bool = False
    enum: tuple[str, ...] = ()
    pattern: str | None = None
    pattern_hint: str = ""
    format: str | None = None
    refine: Callable[[str, str], str] | None = None
    _compiled: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.pattern is not None:
            object.__setattr__(self, "_compiled", re.compile(self.pattern))

    def check(self, value: object, path: str) -> str:
        if not isinstance(value, str):
            raise invalid(path, "must be a string")
        if "\x00" in value:
            # no text column can hold it (PostgreSQL refuses it outright)
            raise invalid(path, "must not contain NUL characters")
        if self.enum and value not in self.enum:
            shown = repr(value) if len(value) <= 40 else repr(value[:40] + "…")
            raise invalid(path, f"must be one of {', '.join(self.enum)}, got {shown}")
        if self.not_blank and not value.strip():
            raise invalid(path, "must not be empty")
        if len(value) < self.min_length:
            raise invalid(path, f"must be at least {self.min_length} characters")
        if len(value) > self.max_length:
            raise invalid(path, f"must be at most {self.max_length} characters")
        if self._compiled is not None and not self._compiled.fullmatch(value):
            raise invalid(path, self.pattern_hint or f"must match {self.pattern}")
        if self.strip:
            value = value.strip()
        if self.refine is not None:
            value = self.refine(path, value)
        return value

    def _schema(self) -> JsonSchema:
        schema: JsonSchema = {"type": "string", "maxLength": self.max_length}
        if self.enum:
            schema["enum"] = list(self.enum)
        if self.min_length:
            schema["minLength"] = self.min_length
        if self.pattern is not None:
            schema["pattern"] = f"^(?:{self.pattern})$"
        elif self.not_blank:
            schema["pattern"] = r"\S"
        if self.format is not None:
            schema["format"] = self.format
        return schema


@dataclass(frozen=True, kw_only=True)
class Integer(Shape):
    """A whole number (not a boolean, not a float, not a string of digits)."""

    minimum: int
    maximum: int
    unit: str = ""

    def check(self, value: object, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid(path, "must be a whole number")
        if not self.minimum <= value <= self.maximum:
            raise invalid(
                path, f"must be between {self.minimum} and {self.maximum}{self.unit}, got {value}"
            )
        return value

    def _schema(self) -> JsonSchema:
        return {"type": "integer", "minimum": self.minimum, "maximum": self.maximum}


@dataclass(frozen=True, kw_only=True)
class Number(Shape):
    """A number, whole or not (not a boolean)."""

    minimum: float
    maximum: float

    def check(self, value: object, path: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise invalid(path, "must be a number")
        if not self.minimum <= value <= self.maximum:
            raise invalid(path, f"must be between {self.minimum} and {self.maximum}, got {value}")
        return value

    def _schema(self) -> JsonSchema:
        return {"type": "number", "minimum": self.minimum, "maximum": self.maximum}


@dataclass(frozen=True, kw_only=True)
class Boolean(Shape):
    def check(self, value: object, path: str) -> bool:
        if not isinstance(value, bool):
            raise invalid(path, "must be true or false")
        return value

    def _schema(self) -> JsonSchema:
        return {"type": "boolean"}


@dataclass(frozen=True, kw_only=True)
class Array(Shape):
    """A list of ``items``; ``dedupe`` drops repeated items (first one kept)."""

    items: Shape
    max_items: int
    dedupe: bool = False

    def check(self, value: object, path: str) -> list[object]:
        if not isinstance(value, list | tuple):
            raise invalid(path, "must be a list")
        if len(value) > self.max_items:
            raise invalid(path, f"may hold at most {self.max_items} items")
        checked = [self.items.check(item, f"{path}[{i}]") for i, item in enumerate(value)]
        if self.dedupe:
            checked = list(dict.fromkeys(checked))
        return checked

    def _schema(self) -> JsonSchema:
        return {"type": "array", "items": self.items.json_schema(), "maxItems": self.max_items}


@dataclass(frozen=True, kw_only=True)
class Nullable(Shape):
    """``inner``, or ``null``."""

    inner: Shape

    def check(self, value: object, path: str) -> object:
        return None if value is None else self.inner.check(value, path)

    def _schema(self) -> JsonSchema:
        return {"anyOf": [self.inner.json_schema(), {"type": "null"}]}


@dataclass(frozen=True, kw_only=True)
class Object(Shape):
    """A JSON object with the declared ``properties`` and no others. ``title``
    names it in the OpenAPI document's components; ``fill_defaults`` fills
    the defaults of missing properties."""

    properties: Mapping[str, Shape]
    required: tuple[str, ...] = ()
    title: str = ""
    fill_defaults: bool = False

    def check(self, value: object, path: str) -> dict[str, object]:
        if not isinstance(value, Mapping):
            raise invalid(path, "must be a JSON object")
        prefix = f"{path}." if path else ""
        unknown = [key for key in value if key not in self.properties]
        if unknown:
            key = str(unknown[0])
            why = f"unknown field {key!r}"
            raise ApiError(
                Code.INVALID_PARAMETER, f"{path}: {why}" if path else why, field=prefix + key
            )
        for name in self.required:
            if name not in value:
                raise invalid(prefix + name, "is required")
        checked: dict[str, object] = {}
        for name, shape in self.properties.items():
            if name in value:
                checked[name] = shape.check(value[name], prefix + name)
            elif self.fill_defaults and shape.default is not MISSING:
                checked[name] = shape.default
        return checked

    def partial(self, title: str = "") -> Object:
        """The same object with every property optional (a PATCH body)."""
        return replace(self, required=(), title=title)

    def _schema(self) -> JsonSchema:
        schema: JsonSchema = {
            "type": "object",
            "properties": {name: shape.json_schema() for name, shape in self.properties.items()},
            "additionalProperties": False,
        }
        if self.required:
            schema["required"] = list(self.required)
        if self.title:
            schema["title"] = self.title
        return schema
