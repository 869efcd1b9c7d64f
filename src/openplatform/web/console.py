"""The developer console ``/console`` (PROTOCOL §5): a developer's apps —
list, register, every setting, the secret (revealed or rotated after the
password is entered again), deletion, and usage charts from the real
statistics. A developer sees only their own apps: another one's app id is
404 (no hint that it exists)."""

from __future__ import annotations

import time
from collections import defaultdict

from starlette.requests import Request
from starlette.responses import Response

from openplatform.errors import CATALOGUE, entry
from openplatform.gateway.call_counter import call_counter
from openplatform.oauth.scopes import scope_text
from openplatform.storage.apps import KNOWN_GRANTS, KNOWN_SCOPES, AppRecord, AppSettings
from openplatform.storage.call_stats import LatencyHistogram
from openplatform.storage.errors import NotFoundError
from openplatform.storage.users import UserRecord
from openplatform.web.app_form import AppForm
from openplatform.web.charts import bar_chart, line_chart
from openplatform.web.pages import Form, FormExpired, Page, WebPages

__all__ = ["Console"]

NEW_APP_FIELDS = ("name", "description", "public", "redirect_uris", "scopes")
SETTINGS_FIELDS = (
    "name",
    "description",
    "icon_url",
    "redirect_uris",
    "public",
    "scopes",
    "grants",
    "ip_allowlist",
    "referer_allowlist",
    "allow_missing_referer",
    "rate_limits",
    "require_signature",
    "legacy_http_200",
    "require_pkce",
    "require_call_id",
    "access_token_ttl_s",
    "refresh_token_ttl_s",
    "refresh_reuse_grace_s",
)
USAGE_WINDOWS_H = (1, 6, 24)


class Console:
    def __init__(self, web: WebPages) -> None:
        self.web = web

    # -- helpers -----------------------------------------------------------

    async def _own_app(self, page: Page, user: UserRecord) -> AppRecord | None:
        """The app of the URL when it is this developer's, else None (404)."""
        raw = page.request.path_params["app_id"]
        if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
            return None
        app = await self.web.services.database.apps.get(int(raw))
        if app is None or app.status == "deleted" or app.owner_id != user.uid:
            return None
        return app

    async def _own_app_page(
        self, request: Request
    ) -> tuple[Page, UserRecord, AppRecord] | Response:
        """The page, its signed-in developer and the app of the URL — or the
        answer when one is missing: the sign-in page, or 404 for an app that
        is not theirs."""
        page = self.web.page(request)
        user = await page.user()
        if user is None:
            return page.sign_in_redirect()
        app = await self._own_app(page, user)
        if app is None:
            return await page.not_found()
        return page, user, app

    async def _check_password(self, page: Page, user: UserRecord, password: str) -> str | None:
        """The message when the password is wrong or too many were; None when
        right. Counted like any sign-in (PROTOCOL §2 limits)."""
        attempt = await self.web.throttle.attempt(user.username, page.client_ip())
        if attempt.retry_after_s:
            return page.t["too_many_attempts"].format(seconds=attempt.retry_after_s)
        if (
            not password
            or await self.web.services.database.users.authenticate(user.username, password) is None
        ):
            return page.t["wrong_password"]
        await self.web.throttle.succeeded(attempt)
        return None

    def _context(self, page: Page, app: AppRecord) -> dict[str, object]:
        return {"app": app, "tab": page.request.url.path.rsplit("/", 1)[-1]}

    # -- the apps ----------------------------------------------------------

    async def apps(self, request: Request) -> Response:
        page = self.web.page(request)
        user = await page.user()
        if user is None:
            return page.sign_in_redirect()
        apps = await self.web.services.database.apps.list(owner_id=user.uid)
        notice = page.t["app_deleted"] if request.query_params.get("deleted") else ""
        return await page.render("console_apps.html", apps=apps, notice=notice)

    async def new_app(self, request: Request) -> Response:
        page = self.web.page(request)
        user = await page.user()
        if user is None:
            return page.sign_in_redirect()
        context = {"scope_choices": self._scopes(page)}
        if request.method == "GET":
            return await page.render(
                "console_new_app.html", form=AppForm.of(AppSettings(name="")), **context
            )
        try:
            posted = await page.form()
        except FormExpired:
            blank = AppForm.of(AppSettings(name=""))
            return await page.expired("console_new_app.html", form=blank, **context)
        form, settings = AppForm.read(posted, None, page.lang, fields=NEW_APP_FIELDS)
        if settings is None:
            return await page.render("console_new_app.html", 400, form=form, **context)
        app = await self.web.services.database.apps.create(settings, owner_id=user.uid)
        return page.redirect(f"/console/apps/{app.id}?created=1")

    @staticmethod
    def _scopes(page: Page) -> list[tuple[str, str]]:
        return [(scope, scope_text(scope, page.lang)) for scope in KNOWN_SCOPES]

    async def app(self, request: Request) -> Response:
        """The overview: ids, status, credentials."""
        found = await self._own_app_page(request)
        if isinstance(found, Response):
            return found
        page, _, app = found
        notice = page.t["app_created"] if request.query_params.get("created") else ""
        return await page.render(
            "console_app.html", notice=notice, secret=None, errors={}, **self._context(page, app)
        )

    async def secret(self, request: Request) -> Response:
        """``POST …/secret``: reveal (``action=reveal``) or rotate
        (``action=rotate``) after the password is entered again. Rotation
        makes the old secret stop working at once (the repository publishes
        the change: every process reads the app afresh on its next call)."""
        found = await self._own_app_page(request)
        if isinstance(found, Response):
            return found
        page, user, app = found
        context = self._context(page, app) | {"tab": ""}
        try:
            form = await page.form()
        except FormExpired:
            return await page.expired("console_app.html", secret=None, errors={}, **context)
        problem = await self._check_password(page, user, form.get("password"))
        if problem is not None:
            status = 429 if problem != page.t["wrong_password"] else 401
            return await page.render(
                "console_app.html", status, secret=None, errors={"password": problem}, **context
            )
        secret = app.secret
        notice = ""
        if form.get("action") == "rotate":
            try:
                secret = await self.web.services.database.apps.rotate_secret(app.id)
            except NotFoundError:
                return await page.not_found()
            notice = page.t["rotated"]
        return await page.render(
            "console_app.html", secret=secret, errors={}, notice=notice, **context
        )

    async def settings(self, request: Request) -> Response:
        found = await self._own_app_page(request)
        if isinstance(found, Response):
            return found
        page, _, app = found
        context = self._context(page, app) | {
            "scope_choices": self._scopes(page),
            "grant_choices": KNOWN_GRANTS,
        }
        if request.method == "GET":
            notice = page.t["saved"] if request.query_params.get("saved") else ""
            return await page.render(
                "console_settings.html", form=AppForm.of(app.settings), notice=notice, **context
            )
        try:
            posted = await page.form()
        except FormExpired:
            return await page.expired(
                "console_settings.html", form=AppForm.of(app.settings), **context
            )
        form, settings = AppForm.read(posted, app.settings, page.lang, fields=SETTINGS_FIELDS)
        if settings is None:
            return await page.render(
                "console_settings.html",
                400,
                form=form,
                form_message=page.t["fix_errors"],
                **context,
            )
        try:
            await self.web.services.database.apps.update(app.id, _changes(app.settings, settings))
        except NotFoundError:
            return await page.not_found()
        return page.redirect(f"/console/apps/{app.id}/settings?saved=1")

    async def delete(self, request: Request) -> Response:
        found = await self._own_app_page(request)
        if isinstance(found, Response):
            return found
        page, user, app = found
        context = self._context(page, app) | {"tab": ""}
        try:
            form: Form = await page.form()
        except FormExpired:
            return await page.expired("console_app.html", secret=None, errors={}, **context)
        problem = await self._check_password(page, user, form.get("delete_password"))
        if problem is not None:
            return await page.render(
                "console_app.html", 401, secret=None, errors={"delete_password": problem}, **context
            )
        database = self.web.services.database
        try:
            await database.apps.delete(app.id)
        except NotFoundError:
            return await page.not_found()
        await database.call_stats.delete_app(app.id)
        return page.redirect("/console?deleted=1")

    # -- usage -------------------------------------------------------------

    async def usage(self, request: Request) -> Response:
        """Calls per minute (succeeded and errors), errors by code, p50/p95
        latency per minute and a table per method, over the last 1, 6 or 24
        hours — from the statistics every process adds up."""
        found = await self._own_app_page(request)
        if isinstance(found, Response):
            return found
        page, _, app = found
        raw = request.query_params.get("hours", "1")
        hours = int(raw) if raw.isdigit() and int(raw) in USAGE_WINDOWS_H else 1
        await call_counter(self.web.services).flush()
        now = int(time.time()) // 60 * 60
        since = now - hours * 3600 + 60
        stats = self.web.services.database.call_stats
        counts = await stats.in_range(app.id, since, now)
        latency = await stats.latency_in_range(app.id, since, now)
        minutes = list(range(since, now + 60, 60))
        index = {minute: i for i, minute in enumerate(minutes)}
        ok = [0] * len(minutes)
        failed = [0] * len(minutes)
        by_code: dict[int, int] = defaultdict(int)
        by_method: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for row in counts:
            i = index.get(row.minute)
            if i is None:
                continue
            (ok if row.error_code == 0 else failed)[i] += row.calls
            by_method[row.method][0] += row.calls
            if row.error_code:
                by_code[row.error_code] += row.calls
                by_method[row.method][1] += row.calls
        per_minute: dict[int, list[LatencyHistogram]] = defaultdict(list)
        per_method: dict[str, list[LatencyHistogram]] = defaultdict(list)
        for item in latency:
            per_minute[item.minute].append(item.histogram)
            per_method[item.method].append(item.histogram)
        merged = {m: LatencyHistogram.merged(h) for m, h in per_minute.items()}
        p50 = [merged[m].percentile_ms(0.5) if m in merged else None for m in minutes]
        p95 = [merged[m].percentile_ms(0.95) if m in merged else None for m in minutes]
        methods = []
        for name in sorted(by_method):
            histogram = LatencyHistogram.merged(per_method.get(name, []))
            calls, errors = by_method[name]
            methods.append(
                {
                    "name": name,
                    "calls": calls,
                    "errors": errors,
                    "p50": histogram.percentile_ms(0.5),
                    "p95": histogram.percentile_ms(0.95),
                    "p99": histogram.percentile_ms(0.99),
                }
            )
        t = page.t
        calls_chart = bar_chart(
            minutes, [("ok", t["ok_calls"], ok), ("failed", t["error_calls"], failed)]
        )
        latency_chart = line_chart(minutes, [("p50", p50), ("p95", p95)])
        codes = [
            (code, count, entry(code).message(page.lang))
            for code, count in sorted(by_code.items(), key=lambda item: (-item[1], item[0]))
            if code in CATALOGUE
        ]
        return await page.render(
            "console_usage.html",
            hours=hours,
            windows=USAGE_WINDOWS_H,
            total=sum(ok) + sum(failed),
            calls_chart=calls_chart,
            latency_chart=latency_chart,
            codes=codes,
            top_code=max((n for _, n, _ in codes), default=0),
            methods=methods,
            **self._context(page, app),
        )


def _changes(before: AppSettings, after: AppSettings) -> dict[str, object]:
    """The settings that differ, as a patch (so a concurrent change to
    another setting is not overwritten with what this form showed)."""
    old, new = before.to_json(), after.to_json()
    return {key: value for key, value in new.items() if old.get(key) != value}
