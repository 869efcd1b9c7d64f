"""What every server-rendered page of the front door, the developer console,
the account page and the references shares: the signed-in user, CSRF on
every form, the language, and rendering with the page security headers.

Sign-in is the platform's one sign-in cookie (:mod:`openplatform.oauth.
browser_session`: HttpOnly, SameSite=Lax, Secure when the issuer is https,
void once the user's ``session_epoch`` moves on — a password change or
disabling ends it). Every form carries the double-submit CSRF token of a
cookie of its own (path ``/``), checked before anything else is read.

Pages may run the platform's own scripts and styles only (CSP ``script-src
'self'``: no inline script or handler, no ``unsafe-inline``) and may not be
framed (``frame-ancestors 'none'``, ``X-Frame-Options: DENY``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from openplatform.errors import Lang
from openplatform.errors.render import negotiate_lang
from openplatform.gateway.client_ip import resolve_client_ip
from openplatform.gateway.form import FormParams, parse_urlencoded
from openplatform.oauth.browser_session import SESSION_COOKIE, BrowserSessions
from openplatform.oauth.login_throttle import LoginThrottle
from openplatform.oauth.pages import STATIC_PREFIX
from openplatform.services import Services
from openplatform.storage.users import UserRecord
from openplatform.web.text import TEXT

__all__ = [
    "CSRF_COOKIE",
    "LANG_COOKIE",
    "PAGE_HEADERS",
    "Form",
    "FormExpired",
    "Page",
    "WebPages",
    "local_path",
]

CSRF_COOKIE = "op_web_csrf"
LANG_COOKIE = "op_lang"
MAX_FORM_BYTES = 256 * 1024
MAX_FORM_FIELDS = 1000  # far more than any of the forms has

_TEMPLATES = Path(__file__).resolve().parent / "templates"

PAGE_HEADERS: Mapping[str, str] = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}

_env = Environment(
    loader=FileSystemLoader(_TEMPLATES),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def local_path(value: str | None, default: str) -> str:
    """``value`` when it is a path on this site (after sign-in: never an
    open redirect to another host), else ``default``."""
    if (
        not value
        or not value.startswith("/")
        or value.startswith("//")
        or "\\" in value
        or any(ord(c) < 0x21 for c in value)
        or len(value) > 500
    ):
        return default
    return value


class FormExpired(Exception):
    """A form without a valid CSRF token."""


@dataclass(frozen=True, slots=True)
class Form:
    """A posted form: the first value of each field, and every value."""

    values: Mapping[str, list[str]]

    def get(self, name: str, default: str = "") -> str:
        values = self.values.get(name)
        return values[0] if values else default

    def getlist(self, name: str) -> list[str]:
        return list(self.values.get(name, []))


class WebPages:
    """Per process: the services, the sign-in cookie signer, the sign-in limits."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.browser = BrowserSessions(services.settings.secret_key_material())
        self.throttle = LoginThrottle.from_settings(services.shared_state, services.settings)
        self.secure_cookies = services.issuer.startswith("https://")

    def page(self, request: Request) -> Page:
        return Page(self, request)


class Page:
    """One request to a page."""

    def __init__(self, web: WebPages, request: Request) -> None:
        self.web = web
        self.request = request
        self.services = web.services
        asked = request.query_params.get("lang")
        self.set_lang = asked if asked in ("en", "zh") else None
        self.lang: Lang = negotiate_lang(
            asked or request.cookies.get(LANG_COOKIE), request.headers.get("accept-language")
        )
        self.t = TEXT[self.lang]
        existing = request.cookies.get(CSRF_COOKIE)
        self._csrf_cookie = existing if existing and 20 <= len(existing) <= 128 else None
        self._new_csrf = self._csrf_cookie is None
        if self._csrf_cookie is None:
            self._csrf_cookie = BrowserSessions.new_csrf_cookie()
        self._user: UserRecord | None = None
        self._user_read = False

    # -- who ---------------------------------------------------------------

    async def user(self) -> UserRecord | None:
        """The signed-in user: a valid cookie of their current session epoch,
        and not disabled."""
        if not self._user_read:
            self._user_read = True
            cookie = self.request.cookies.get(SESSION_COOKIE)
            signed_in = self.web.browser.read_session(cookie, int(time.time()))
            if signed_in is not None:
                user = await self.services.database.users.get(signed_in.uid)
                if (
                    user is not None
                    and not user.disabled
                    and user.session_epoch == signed_in.session_epoch
                ):
                    self._user = user
        return self._user

    def client_ip(self) -> str:
        request = self.request
        return resolve_client_ip(
            request.client.host if request.client else None,
            request.headers.getlist("x-forwarded-for"),
            self.services.settings.trusted_proxies,
        )

    def sign_in_redirect(self) -> Response:
        """To the sign-in page, coming back here afterwards."""
        here = self.request.url.path
        if self.request.url.query:
            here += "?" + self.request.url.query
        return self.redirect("/signin?" + urlencode({"next": here}))

    # -- forms -------------------------------------------------------------

    @property
    def csrf_token(self) -> str:
        assert self._csrf_cookie is not None
        return self.web.browser.csrf_token(self._csrf_cookie)

    async def form(self) -> Form:
        """The posted form, once its CSRF token is checked (``FormExpired``
        otherwise). Malformed or oversized bodies are an expired form too."""
        declared = self.request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
            raise FormExpired
        body = b""
        async for chunk in self.request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                raise FormExpired
        parsed = FormParams(keep=MAX_FORM_FIELDS)  # the rest counted, not kept
        parse_urlencoded(body, parsed)
        if parsed.count > MAX_FORM_FIELDS:
            raise FormExpired
        values: dict[str, list[str]] = {}
        for key, value in parsed.pairs:
            values.setdefault(key, []).append(value)
        token = values.get("csrf_token", [""])[0]
        cookie = None if self._new_csrf else self._csrf_cookie
        if parsed.problem or not self.web.browser.check_csrf(cookie, token):
            raise FormExpired
        return Form(values)

    # -- answers -----------------------------------------------------------

    def switch_lang_url(self) -> str:
        other = "en" if self.lang == "zh" else "zh"
        pairs = [(k, v) for k, v in self.request.query_params.multi_items() if k != "lang"]
        return self.request.url.path + "?" + urlencode([*pairs, ("lang", other)])

    async def render(self, template: str, status: int = 200, /, **context: object) -> HTMLResponse:
        return await self.render_context(template, status, context)

    async def render_context(
        self,
        template: str,
        status: int,
        context: Mapping[str, object],
        headers: Mapping[str, str] | None = None,
    ) -> HTMLResponse:
        html = _env.get_template(template).render(
            lang=self.lang,
            t=self.t,
            static_prefix=STATIC_PREFIX,
            switch_lang_url=self.switch_lang_url(),
            csrf_token=self.csrf_token,
            user=await self.user(),
            path=self.request.url.path,
            **context,
        )
        all_headers = dict(PAGE_HEADERS)
        if status < 400:
            all_headers["X-Error-Code"] = "0"
        if headers:
            all_headers.update(headers)
        response = HTMLResponse(html, status, all_headers)
        self._cookies(response)
        return response

    def redirect(self, location: str) -> Response:
        """303: a form post is followed by a GET."""
        response = RedirectResponse(location, 303, headers={"Cache-Control": "no-store"})
        self._cookies(response)
        return response

    def _cookies(self, response: Response) -> None:
        if self._new_csrf:
            assert self._csrf_cookie is not None
            response.set_cookie(
                CSRF_COOKIE,
                self._csrf_cookie,
                httponly=True,
                secure=self.web.secure_cookies,
                samesite="lax",
                path="/",
            )
        if self.set_lang is not None:
            response.set_cookie(
                LANG_COOKIE,
                self.set_lang,
                max_age=365 * 86_400,
                httponly=True,
                secure=self.web.secure_cookies,
                samesite="lax",
                path="/",
            )

    def sign_in(self, response: Response, user: UserRecord) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            self.web.browser.session_cookie(user.uid, int(time.time()), user.session_epoch),
            max_age=self.web.browser.max_age_s,
            httponly=True,
            secure=self.web.secure_cookies,
            samesite="lax",
            path="/",
        )

    def sign_out(self, response: Response) -> None:
        response.delete_cookie(
            SESSION_COOKIE,
            path="/",
            httponly=True,
            secure=self.web.secure_cookies,
            samesite="lax",
        )

    async def not_found(self) -> HTMLResponse:
        return await self.render("not_found.html", 404)

    async def expired(self, template: str, **context: object) -> HTMLResponse:
        """A form refused for its CSRF token: shown again, 403."""
        return await self.render_context(
            template, 403, {**context, "form_message": self.t["form_expired"]}
        )
