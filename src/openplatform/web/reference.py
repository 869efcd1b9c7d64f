"""The references (PROTOCOL §5), public pages rendered from the data that
the server itself runs on: the method reference from the method registry
(parameters, limits, scopes, errors, a signed call in curl and with the
Python SDK), the bilingual error-code reference from the catalogue, and the
admin API reference from its OpenAPI document."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from openplatform.admin.api import OPERATIONS
from openplatform.admin.openapi import openapi_document
from openplatform.errors import CATALOGUE, Code, Entry
from openplatform.json_schema import JsonSchema
from openplatform.methods import default_registry
from openplatform.methods.registry import MethodSpec, Param, ParamType
from openplatform.web.pages import WebPages

__all__ = ["COMMON_ERRORS", "Reference", "sdk_example"]

# What any signed call may answer before its method runs (PROTOCOL §3.3).
COMMON_ERRORS = (
    Code.SERVICE_UNAVAILABLE,
    Code.REQUEST_LIMIT_REACHED,
    Code.UNAUTHORIZED_CLIENT_IP,
    Code.NO_PERMISSION_REFERER,
    Code.INVALID_PARAMETER,
    Code.INVALID_API_KEY,
    Code.INVALID_SESSION_KEY,
    Code.INVALID_CALL_ID,
    Code.INCORRECT_SIGNATURE,
    Code.TOO_MANY_PARAMETERS,
    Code.UNSUPPORTED_SIGNATURE_METHOD,
    Code.INVALID_TIMESTAMP,
    Code.INVALID_ACCESS_TOKEN,
    Code.ACCESS_TOKEN_EXPIRED,
    Code.SESSION_KEY_EXPIRED,
    Code.INVALID_IP,
    Code.NO_SUCH_APPLICATION,
)


def _limits(param: Param) -> str:
    parts = []
    if param.min_value is not None:
        parts.append(f"≥ {param.min_value}")
    if param.max_value is not None:
        parts.append(f"≤ {param.max_value}")
    if param.max_items is not None:
        parts.append(f"≤ {param.max_items} items")
    parts.append(f"≤ {param.max_length} chars")
    return ", ".join(parts)


def _example(param: Param) -> str:
    """A plausible value of the parameter, for the examples."""
    if param.type in (ParamType.INT, ParamType.INT_LIST):
        return str(max(param.min_value or 1, 1))
    if param.type is ParamType.BOOL:
        return "true"
    if param.type.value.startswith("json"):
        return "[]" if param.type.value.endswith("array") else "{}"
    if param.name == "fields":
        return "uid,username"
    return param.name


def _python_value(param: Param) -> str:
    text = _example(param)
    if param.type is ParamType.INT:
        return text
    if param.type is ParamType.INT_LIST:
        return f"[{text}]"
    if param.type is ParamType.BOOL:
        return "True"
    if param.type.value.startswith("json"):
        return text
    if param.type.value.endswith("list"):
        return repr(text.split(","))
    return repr(text)


def curl_example(spec: MethodSpec, base: str) -> str:
    args = [
        f"{p.name}={_example(p)}" for p in spec.params if p.required or p.name in ("uids", "fields")
    ]
    query = "&".join(
        ["api_key=API_KEY", "call_id=CALL_ID", *args, "timestamp=TIMESTAMP", "v=2.0", "sig=SIG"]
    )
    return (
        "# sig = md5(the parameters but sig, sorted by key, as key=value, joined, + SECRET)\n"
        f"curl '{base}/rest/2.0/{spec.name}?{query}'"
    )


def sdk_example(spec: MethodSpec, base: str) -> str:
    """The method called with the Python SDK (``openplatform_client``)."""
    args = [
        f"{p.name}={_python_value(p)}"
        for p in spec.params
        if p.required or p.name in ("uids", "fields")
    ]
    credentials = (
        "API_KEY, SECRET, access_token=ACCESS_TOKEN" if spec.needs_user else "API_KEY, SECRET"
    )
    return (
        "from openplatform_client import Client\n\n"
        f'with Client({credentials}, base_url="{base}") as client:\n'
        f'    print(client.call("{spec.name}"{"".join(", " + a for a in args)}))'
    )


@dataclass(frozen=True, slots=True)
class SchemaRow:
    """One field of a JSON Schema, flattened for a table."""

    name: str
    type: str
    required: bool
    limits: str
    description: str


def _type(schema: JsonSchema) -> str:
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "anyOf" in schema:
        options = schema["anyOf"]
        assert isinstance(options, list)
        return " | ".join(_type(option) for option in options)
    kind = str(schema.get("type", "any"))
    if kind == "array":
        items = schema.get("items", {})
        assert isinstance(items, dict)
        return f"array of {_type(items)}"
    return kind


def _schema_limits(schema: JsonSchema) -> str:
    parts = []
    if "enum" in schema:
        values = schema["enum"]
        assert isinstance(values, list)
        parts.append(" | ".join(str(v) for v in values))
    for key, label in (
        ("minimum", "≥"),
        ("maximum", "≤"),
        ("minLength", "length ≥"),
        ("maxLength", "length ≤"),
        ("maxItems", "items ≤"),
    ):
        if key in schema:
            parts.append(f"{label} {schema[key]}")
    if "pattern" in schema and "enum" not in schema:
        parts.append(f"pattern {schema['pattern']}")
    if "default" in schema:
        parts.append(f"default {schema['default']!r}")
    if "anyOf" in schema:
        options = schema["anyOf"]
        assert isinstance(options, list)
        inner = [_schema_limits(option) for option in options if isinstance(option, dict)]
        parts.extend(part for part in inner if part)
    return "; ".join(parts)


def schema_rows(schema: JsonSchema, prefix: str = "") -> list[SchemaRow]:
    """The fields of an object schema, nested objects and lists of objects
    as ``parent.child`` and ``parent[].child``."""
    rows: list[SchemaRow] = []
    properties = schema.get("properties", {})
    required = schema.get("required", [])
    assert isinstance(properties, dict) and isinstance(required, list)
    for name, field in properties.items():
        assert isinstance(field, dict)
        rows.append(
            SchemaRow(
                prefix + name,
                _type(field),
                name in required,
                _schema_limits(field),
                str(field.get("description", "")),
            )
        )
        items = field.get("items")
        if field.get("type") == "array" and isinstance(items, dict) and "properties" in items:
            rows.extend(schema_rows(items, f"{prefix}{name}[]."))
        elif field.get("type") == "object":
            rows.extend(schema_rows(field, f"{prefix}{name}."))
    return rows


class Reference:
    def __init__(self, web: WebPages) -> None:
        self.web = web
        self.registry = default_registry()

    async def methods(self, request: Request) -> Response:
        page = self.web.page(request)
        groups: dict[str, list[MethodSpec]] = {}
        for spec in self.registry:
            groups.setdefault(spec.name.split(".", 1)[0], []).append(spec)
        return await page.render("docs_methods.html", groups=groups)

    async def method(self, request: Request) -> Response:
        page = self.web.page(request)
        spec = self.registry.get(request.path_params["name"])
        if spec is None:
            return await page.not_found()
        base = self.web.services.issuer.rstrip("/")
        return await page.render(
            "docs_method.html",
            spec=spec,
            params=[(p, _limits(p)) for p in spec.params],
            errors=[CATALOGUE[int(code)] for code in spec.error_codes()],
            common=[CATALOGUE[int(code)] for code in COMMON_ERRORS],
            curl=curl_example(spec, base),
            sdk=sdk_example(spec, base),
        )

    async def errors(self, request: Request) -> Response:
        page = self.web.page(request)
        families: dict[str, list[Entry]] = {"api": [], "oauth": []}
        for item in CATALOGUE.values():
            families[item.family].append(item)
        for items in families.values():
            items.sort(key=lambda item: item.code)
        return await page.render("docs_errors.html", families=families)

    async def admin_api(self, request: Request) -> Response:
        page = self.web.page(request)
        document = openapi_document(OPERATIONS, self.web.services.issuer)
        schemas = document["components"]
        assert isinstance(schemas, dict)
        components = schemas["schemas"]
        assert isinstance(components, dict)
        operations = []
        for operation in OPERATIONS:
            paths = document["paths"]
            assert isinstance(paths, dict)
            described = paths[operation.path][operation.method.lower()]
            body = None
            if operation.body is not None and operation.body.title:
                body = (operation.body.title, schema_rows(components[operation.body.title]))
            answers = []
            for status, response in described["responses"].items():
                content = response.get("content", {}).get("application/json", {})
                ref = content.get("schema", {}).get("$ref", "")
                answers.append((status, response["description"], ref.rsplit("/", 1)[-1]))
            operations.append(
                {
                    "op": operation,
                    "parameters": described.get("parameters", []),
                    "body": body,
                    "answers": answers,
                }
            )
        shown = {
            name: schema_rows(schema)
            for name, schema in components.items()
            if name
            not in ("AppSettings", "AppSettingsPatch", "NewUser", "UserPatch", "MaintenanceSwitch")
        }
        return await page.render(
            "docs_admin_api.html", operations=operations, schemas=shown, type_of=_type
        )
