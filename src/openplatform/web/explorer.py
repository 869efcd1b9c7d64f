"""The API explorer (``/console/explorer``): pick one of your apps and a
method of the registry, fill a form built from the method's declared
parameters, and send a real signed call through the gateway — shown side by
side: the canonical string (PROTOCOL §3.2), what is hashed, the signature,
and the answer. The secret never leaves the server."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx
import orjson
from starlette.requests import Request
from starlette.responses import Response

from openplatform.gateway.signature import SIGN_METHODS, SignMethod, canonical_string, sign
from openplatform.methods import default_registry
from openplatform.methods.registry import MethodSpec, ParamType
from openplatform.storage.apps import AppRecord
from openplatform.web.pages import Form, FormExpired, Page, WebPages

__all__ = ["Explorer", "ExplorerCall"]

FORMATS = ("json", "xml")
TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class ExplorerCall:
    """A call sent and its answer, as the page shows them."""

    url: str
    body: str
    canonical: str
    hashed: str
    sig: str
    status: int
    error_code: str
    request_id: str
    answer: str


def _input_kind(kind: ParamType) -> str:
    if kind is ParamType.BOOL:
        return "bool"
    if kind.value.startswith("json"):
        return "json"
    return "text"


class Explorer:
    def __init__(self, web: WebPages) -> None:
        self.web = web
        self.registry = default_registry()

    async def _apps(self, page: Page, uid: int) -> list[AppRecord]:
        apps = await self.web.services.database.apps.list(owner_id=uid)
        return [app for app in apps if app.status != "deleted"]

    def _choice(
        self, apps: list[AppRecord], app_raw: str, method_raw: str
    ) -> tuple[AppRecord | None, MethodSpec]:
        app = next((a for a in apps if str(a.id) == app_raw), apps[0] if apps else None)
        spec = self.registry.get(method_raw) or self.registry.get("users.getInfo")
        if spec is None:  # a registry without users.getInfo: its first method
            spec = next(iter(self.registry))
        return app, spec

    async def show(self, request: Request) -> Response:
        page = self.web.page(request)
        user = await page.user()
        if user is None:
            return page.sign_in_redirect()
        apps = await self._apps(page, user.uid)
        app, spec = self._choice(
            apps, request.query_params.get("app", ""), request.query_params.get("method", "")
        )
        return await self._render(page, apps, app, spec, Form({}), None)

    async def send(self, request: Request) -> Response:
        page = self.web.page(request)
        user = await page.user()
        if user is None:
            return page.sign_in_redirect()
        apps = await self._apps(page, user.uid)
        try:
            form = await page.form()
        except FormExpired:
            app, spec = self._choice(apps, "", "")
            return await self._render(page, apps, app, spec, Form({}), None, 403, expired=True)
        app, spec = self._choice(apps, form.get("app"), form.get("method"))
        if app is None or str(app.id) != form.get("app"):
            return await page.not_found()
        call = await self._call(page, app, spec, form)
        return await self._render(page, apps, app, spec, form, call)

    async def _call(self, page: Page, app: AppRecord, spec: MethodSpec, form: Form) -> ExplorerCall:
        chosen = form.get("sign_method")
        sign_method: SignMethod = "hmac-sha256" if chosen == "hmac-sha256" else "md5"
        fmt = "xml" if form.get("format") == "xml" else "json"
        pairs = [
            ("method", spec.name),
            ("api_key", app.api_key),
            ("v", "2.0"),
            ("timestamp", str(int(time.time()))),
            ("call_id", str(time.time_ns() // 1000)),
            ("format", fmt),
        ]
        if sign_method != "md5":
            pairs.append(("sign_method", sign_method))
        if page.lang == "zh":
            pairs.append(("lang", "zh"))
        token = form.get("access_token").strip()
        if token:
            pairs.append(("access_token", token))
        for param in spec.params:
            value = form.get(f"p_{param.name}")
            if value != "":
                pairs.append((param.name, value))
        canonical = canonical_string(pairs).decode("utf-8")
        sig = sign(pairs, app.secret, sign_method)
        if sign_method == "md5":
            hashed = f"md5( {canonical}‹secret› )"
        else:
            hashed = f"HMAC-SHA256( key=‹secret›, message={canonical} )"
        body = urlencode([*pairs, ("sig", sig)])
        issuer = self.web.services.issuer.rstrip("/")
        transport = httpx.ASGITransport(app=page.request.app, client=(page.client_ip(), 0))
        async with httpx.AsyncClient(
            transport=transport, base_url=issuer, timeout=TIMEOUT_S
        ) as client:
            answer = await client.post(
                "/rest/2.0/",
                content=body.encode(),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
        text = answer.text
        if answer.headers.get("content-type", "").startswith("application/json"):
            with contextlib.suppress(orjson.JSONDecodeError):
                pretty = orjson.dumps(orjson.loads(answer.content), option=orjson.OPT_INDENT_2)
                text = pretty.decode()
        return ExplorerCall(
            url=f"{issuer}/rest/2.0/",
            body=body,
            canonical=canonical,
            hashed=hashed,
            sig=sig,
            status=answer.status_code,
            error_code=answer.headers.get("x-error-code", ""),
            request_id=answer.headers.get("x-request-id", ""),
            answer=text,
        )

    async def _render(
        self,
        page: Page,
        apps: list[AppRecord],
        app: AppRecord | None,
        spec: MethodSpec,
        form: Form,
        call: ExplorerCall | None,
        status: int = 200,
        *,
        expired: bool = False,
    ) -> Response:
        params = [
            {
                "name": p.name,
                "kind": _input_kind(p.type),
                "type": p.type.value,
                "required": p.required,
                "description": p.description,
                "value": form.get(f"p_{p.name}"),
            }
            for p in spec.params
        ]
        context: dict[str, object] = {
            "apps": apps,
            "app": app,
            "methods": [s.name for s in self.registry],
            "spec": spec,
            "params": params,
            "sign_methods": SIGN_METHODS,
            "formats": FORMATS,
            "chosen_sign_method": form.get("sign_method", "md5"),
            "chosen_format": form.get("format", "json"),
            "access_token": form.get("access_token"),
            "call": call,
        }
        if expired:
            context["form_message"] = page.t["form_expired"]
        return await page.render_context("console_explorer.html", status, context)
