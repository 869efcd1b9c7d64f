"""The declarative method registry (PROTOCOL §3.3 check 14, §4).

A method is a :class:`MethodSpec`: its name, its typed parameters with their
limits, the scope a user credential must carry, whether ``batch.run`` may call
it, and the coroutine that answers it. The registry drives validation (sizes
at check 4, types and ranges at check 14), and lists itself for docs, the
console's explorer and the OpenAPI document.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from openplatform.errors import ApiError, Code, Lang

if TYPE_CHECKING:
    from openplatform.services import Services
    from openplatform.storage.apps import AppRecord

__all__ = [
    "Arguments",
    "BatchPlan",
    "Handler",
    "MethodCall",
    "MethodRegistry",
    "MethodSpec",
    "Param",
    "ParamType",
]

_INT = re.compile(r"-?[0-9]{1,19}")
# Every integer parameter fits a 64-bit database column, bounds declared or not.
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# Names of data-store types, properties and associations (PROTOCOL §4 "data").
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,31}")
_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})


class ParamType(enum.Enum):
    """How a parameter's text is read. Lists are JSON arrays or comma lists;
    booleans are ``true|false|1|0``; names match ``[a-z][a-z0-9_]{0,31}``
    (PROTOCOL §4)."""

    STR = "string"
    INT = "integer"
    BOOL = "boolean"
    NAME = "name"
    INT_LIST = "integer list"
    STR_LIST = "string list"
    NAME_LIST = "name list"
    JSON = "json"
    JSON_OBJECT = "json object"
    JSON_ARRAY = "json array"


@dataclass(frozen=True, slots=True)
class Param:
    """One declared parameter. ``invalid_code`` is the code a malformed or
    out-of-range value gets (100 unless the method says otherwise, e.g. 108 for
    user ids)."""

    name: str
    type: ParamType = ParamType.STR
    required: bool = False
    max_length: int = 1024
    min_value: int | None = None
    max_value: int | None = None
    max_items: int | None = None
    invalid_code: Code = Code.INVALID_PARAMETER
    description: str = ""

    def parse(self, text: str) -> object:
        """The typed value of ``text``; 100 (or ``invalid_code``) when it is not one."""
        kind = self.type
        if kind is ParamType.STR:
            return text
        if kind is ParamType.INT:
            return self._int(text)
        if kind is ParamType.BOOL:
            lowered = text.strip().lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise self._invalid("must be true, false, 1 or 0")
        if kind is ParamType.NAME:
            return self._name(text)
        if kind in (ParamType.JSON, ParamType.JSON_OBJECT, ParamType.JSON_ARRAY):
            return self._json(text)
        items = self._items(text)
        self._check_count(items)
        if kind is ParamType.INT_LIST:
            return [self._int(item) for item in items]
        if kind is ParamType.NAME_LIST:
            return [self._name(item) for item in items]
        return items

    def _json(self, text: str) -> object:
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise self._invalid("must be JSON") from None
        if self.type is ParamType.JSON_OBJECT and not isinstance(value, dict):
            raise self._invalid("must be a JSON object")
        if self.type is ParamType.JSON_ARRAY:
            if not isinstance(value, list):
                raise self._invalid("must be a JSON array")
            self._check_count(value)
        return value

    def _check_count(self, items: list[Any]) -> None:
        if self.max_items is not None and len(items) > self.max_items:
            # Too many items is the request's fault, whatever the items are.
            raise ApiError(Code.INVALID_PARAMETER, f"{self.name}: at most {self.max_items} items")

    def _name(self, text: str) -> str:
        if not NAME_PATTERN.fullmatch(text):
            raise self._invalid("must match [a-z][a-z0-9_]{0,31}")
        return text

    def _items(self, text: str) -> list[str]:
        stripped = text.strip()
        if stripped.startswith("["):
            try:
                loaded = orjson.loads(stripped)
            except orjson.JSONDecodeError:
                raise self._invalid("must be a JSON array or a comma list") from None
            if not isinstance(loaded, list) or not all(
                isinstance(item, str | int) and not isinstance(item, bool) for item in loaded
            ):
                raise self._invalid("must be a list of strings or numbers")
            return [str(item) for item in loaded]
        if not stripped:
            return []
        return [item.strip() for item in stripped.split(",")]

    def _int(self, text: str) -> int:
        if not _INT.fullmatch(text.strip()):
            raise self._invalid("must be an integer")
        value = int(text)
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise self._invalid("is out of range")
        if self.min_value is not None and value < self.min_value:
            raise self._invalid(f"must be at least {self.min_value}")
        if self.max_value is not None and value > self.max_value:
            raise self._invalid(f"must be at most {self.max_value}")
        return value

    def _invalid(self, why: str) -> ApiError:
        return ApiError(self.invalid_code, f"{self.name}: {why}")

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "type": self.type.value,
            "required": self.required,
            "max_length": self.max_length,
            "min_value": self.min_value,
            "max_value": self.max_value,
            "max_items": self.max_items,
            "description": self.description,
        }


class Arguments:
    """A method's validated arguments, read with typed accessors."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, object]) -> None:
        self._values = dict(values)

    def __contains__(self, name: str) -> bool:
        return name in self._values

    def get_str(self, name: str, default: str | None = None) -> str | None:
        value = self._values.get(name, default)
        assert value is None or isinstance(value, str), name
        return value

    def get_int(self, name: str, default: int | None = None) -> int | None:
        value = self._values.get(name, default)
        assert value is None or isinstance(value, int), name
        return value

    def get_bool(self, name: str, default: bool | None = None) -> bool | None:
        value = self._values.get(name, default)
        assert value is None or isinstance(value, bool), name
        return value

    def get_int_list(self, name: str) -> list[int] | None:
        value = self._values.get(name)
        assert value is None or isinstance(value, list), name
        return value

    def get_str_list(self, name: str) -> list[str] | None:
        value = self._values.get(name)
        assert value is None or isinstance(value, list), name
        return value

    def get_json(self, name: str) -> object:
        return self._values.get(name)

    def get_json_object(self, name: str) -> dict[str, object] | None:
        value = self._values.get(name)
        assert value is None or isinstance(value, dict), name
        return value

    def get_json_array(self, name: str) -> list[object] | None:
        value = self._values.get(name)
        assert value is None or isinstance(value, list), name
        return value


@dataclass(frozen=True, slots=True)
class MethodCall:
    """Everything a method sees of an authenticated call (after check 13).

    ``user_id`` is the user the credential acts for (None for app-only calls);
    ``scopes`` are the scopes of that user credential (empty for app-only calls);
    ``request_id`` is the ``X-Request-Id`` of the answer (for messages that
    point at the server log).
    """

    services: Services
    app: AppRecord
    user_id: int | None
    scopes: frozenset[str]
    args: Arguments
    client_ip: str
    lang: Lang
    request_id: str = ""
    batch: BatchPlan | None = None  # batch.run only: the items the gateway planned


class BatchPlan(Protocol):
    """The items of a ``batch.run`` call, checked and ready to run."""

    async def run(self, call: MethodCall) -> list[dict[str, object]]:
        """Every item's answer, in feed order; ``call`` is the batch call."""


Handler = Callable[[MethodCall], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class MethodSpec:
    """A method of the open API.

    ``scope``: what a *user* credential (access token or session key) must
    carry to call it (6 otherwise); app-only calls act on the app's own data
    and are not subject to it. ``needs_user``: app-only calls get 6.
    ``errors``: the codes the method itself may answer (its parameters'
    codes and 6 are known from the rest of the declaration).
    """

    name: str
    handler: Handler
    params: tuple[Param, ...] = ()
    scope: str | None = None
    needs_user: bool = False
    batchable: bool = True
    description: str = ""
    errors: tuple[Code, ...] = ()
    _by_name: dict[str, Param] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {param.name: param for param in self.params})

    def param(self, name: str) -> Param | None:
        return self._by_name.get(name)

    @property
    def xml_root(self) -> str:
        """PROTOCOL §3.4: ``users.getInfo`` answers in ``<users_getInfo_response>``."""
        return self.name.replace(".", "_") + "_response"

    def check_permission(self, user_id: int | None, scopes: frozenset[str]) -> None:
        """Check 14, permission: 6 when the credential may not call this method."""
        if self.needs_user and user_id is None:
            raise ApiError(Code.NO_PERMISSION_USER_DATA, f"{self.name} needs a user credential")
        if self.scope is not None and user_id is not None and self.scope not in scopes:
            raise ApiError(
                Code.NO_PERMISSION_USER_DATA, f"{self.name} needs the {self.scope!r} scope"
            )

    def parse_arguments(self, params: Mapping[str, str]) -> Arguments:
        """Check 14, parameters: required ones present, every declared one typed."""
        values: dict[str, object] = {}
        for param in self.params:
            text = params.get(param.name)
            if text is None:
                if param.required:
                    raise ApiError(Code.INVALID_PARAMETER, f"{param.name} is required")
                continue
            values[param.name] = param.parse(text)
        return Arguments(values)

    def error_codes(self) -> tuple[Code, ...]:
        """Every code this method may answer at check 14, sorted."""
        codes = {param.invalid_code for param in self.params} | set(self.errors)
        if self.params:
            codes.add(Code.INVALID_PARAMETER)
        if self.scope is not None or self.needs_user:
            codes.add(Code.NO_PERMISSION_USER_DATA)
        return tuple(sorted(codes))

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "description": self.description,
            "params": [param.describe() for param in self.params],
            "scope": self.scope,
            "needs_user": self.needs_user,
            "batchable": self.batchable,
            "errors": [int(code) for code in self.error_codes()],
        }


class MethodRegistry:
    """Every method by name; registering a name twice is a programming error."""

    def __init__(self, specs: tuple[MethodSpec, ...] = ()) -> None:
        self._specs: dict[str, MethodSpec] = {}
        for spec in specs:
            self.register(spec)

    def register(self, spec: MethodSpec) -> None:
        if spec.name in self._specs:
            raise ValueError(f"method {spec.name!r} is registered twice")
        self._specs[spec.name] = spec

    def get(self, name: str) -> MethodSpec | None:
        return self._specs.get(name)

    def __contains__(self, name: str) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[MethodSpec]:
        return iter(sorted(self._specs.values(), key=lambda spec: spec.name))

    def __len__(self) -> int:
        return len(self._specs)

    def describe(self) -> list[dict[str, object]]:
        """The registry as data, sorted by name (docs, console, OpenAPI)."""
        return [spec.describe() for spec in self]
