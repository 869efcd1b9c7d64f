"""``/account`` (PROTOCOL §5): the apps an end user authorized, with their
scopes and dates, and revocation — which kills, in one transaction, every
token, refresh token, session key and pending code of the user for the app
(:meth:`ConsentRepository.revoke`), so ``users.isAppUser`` turns false and
the next authorization asks for consent again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from starlette.requests import Request
from starlette.responses import Response

from openplatform.oauth.scopes import scope_text
from openplatform.web.pages import FormExpired, WebPages

__all__ = ["AccountPage"]


@dataclass(frozen=True, slots=True)
class _Grant:
    app_id: int
    name: str
    description: str
    scopes: list[tuple[str, str]]
    created_at: datetime
    updated_at: datetime


class AccountPage:
    def __init__(self, web: WebPages) -> None:
        self.web = web

    async def show(self, request: Request) -> Response:
        page = self.web.page(request)
        user = await page.user()
        if user is None:
            return page.sign_in_redirect()
        database = self.web.services.database
        grants = []
        for consent in await database.consents.list_for_user(user.uid):
            app = await database.apps.get(consent.app_id)
            if app is None or app.status == "deleted":
                continue
            grants.append(
                _Grant(
                    app.id,
                    app.name,
                    app.description,
                    [(scope, scope_text(scope, page.lang)) for scope in sorted(consent.scopes)],
                    consent.created_at,
                    consent.updated_at,
                )
            )
        notice = ""
        revoked = request.query_params.get("revoked", "")
        if revoked.isdigit() and len(revoked) < 19:
            gone = await database.apps.get(int(revoked))
            if gone is not None and all(grant.app_id != gone.id for grant in grants):
                notice = page.t["revoked"].format(name=gone.name)
        return await page.render("account.html", grants=grants, notice=notice)

    async def revoke(self, request: Request) -> Response:
        page = self.web.page(request)
        user = await page.user()
        if user is None:
            return page.sign_in_redirect()
        try:
            await page.form()
        except FormExpired:
            return page.redirect("/account")
        raw = request.path_params["app_id"]
        database = self.web.services.database
        app = await database.apps.get(int(raw)) if raw.isdigit() and len(raw) < 19 else None
        if app is None or await database.consents.get(user.uid, app.id) is None:
            return await page.not_found()
        await database.consents.revoke(user.uid, app.id)
        return page.redirect(f"/account?revoked={app.id}")
