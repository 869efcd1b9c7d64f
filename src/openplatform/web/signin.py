"""Sign in, sign up and sign out, for the developer console and the account
page alike: developers are users (apps' ``owner_id``), with one sign-in.

Sign-in counts against the limits of PROTOCOL §2 (:class:`LoginThrottle`:
failed password checks per account and per client IP, shared with the
authorization page and the password grant); a right password clears the
account's failures. Sign-up is limited per client IP.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from openplatform.cache import RateLimitRule
from openplatform.errors import ApiError
from openplatform.storage.errors import DuplicateError
from openplatform.storage.users import USERNAME
from openplatform.web.pages import FormExpired, Page, WebPages, local_path

__all__ = ["MIN_PASSWORD_LENGTH", "SignIn", "password_problem"]

MIN_PASSWORD_LENGTH = 10
SIGN_UPS_PER_IP = 20
SIGN_UP_WINDOW_S = 3600


def password_problem(username: str, password: str) -> str | None:
    """The text key of what is wrong with a new password, or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return "password_short"
    if username and username.lower() in password.lower():
        return "password_has_username"
    return None


class SignIn:
    def __init__(self, web: WebPages) -> None:
        self.web = web

    async def sign_in(self, request: Request) -> Response:
        page = self.web.page(request)
        after = local_path(request.query_params.get("next"), "/console")
        if request.method == "GET":
            if await page.user() is not None:
                return page.redirect(after)
            return await page.render("signin.html", next=after, username="")
        try:
            form = await page.form()
        except FormExpired:
            return await page.expired("signin.html", next=after, username="")
        username = form.get("username").strip()
        password = form.get("password")
        after = local_path(form.get("next"), after)
        attempt = await self.web.throttle.attempt(username, page.client_ip())
        if attempt.retry_after_s:
            message = page.t["too_many_attempts"].format(seconds=attempt.retry_after_s)
            context = {"next": after, "username": username, "form_message": message}
            headers = {**attempt.headers(), "X-Error-Code": "4"}
            return await page.render_context("signin.html", 429, context, headers)
        user = None
        if username and password:
            user = await self.web.services.database.users.authenticate(username, password)
        if user is None:
            context = {
                "next": after,
                "username": username,
                "form_message": page.t["wrong_credentials"],
            }
            return await page.render_context("signin.html", 401, context, attempt.headers())
        await self.web.throttle.succeeded(attempt)
        response = page.redirect(after)
        page.sign_in(response, user)
        return response

    async def sign_up(self, request: Request) -> Response:
        page = self.web.page(request)
        after = local_path(request.query_params.get("next"), "/console")
        if request.method == "GET":
            return await page.render("signup.html", next=after, values={}, errors={})
        try:
            form = await page.form()
        except FormExpired:
            return await page.expired("signup.html", next=after, values={}, errors={})
        after = local_path(form.get("next"), after)
        username = form.get("username").strip()
        password = form.get("password")
        email = form.get("email").strip()
        values = {"username": username, "email": email}
        errors = self._check(page, username, password, form.get("password_again"))
        if not errors:
            limits = [
                RateLimitRule(f"signup:ip:{page.client_ip()}", SIGN_UPS_PER_IP, SIGN_UP_WINDOW_S)
            ]
            verdict = await self.web.services.shared_state.hit_rate_limits("web-signup", limits)
            if verdict.rate is not None and verdict.rate.retry_after_s:
                message = page.t["too_many_sign_ups"].format(seconds=verdict.rate.retry_after_s)
                context = {"next": after, "values": values, "errors": {}, "form_message": message}
                headers = {**verdict.rate.headers(), "X-Error-Code": "4"}
                return await page.render_context("signup.html", 429, context, headers)
            try:
                user = await self.web.services.database.users.create(
                    username=username, password=password, email=email or None
                )
            except DuplicateError:
                errors["username"] = page.t["username_taken"]
            except ApiError as error:
                errors[(error.field or "username").split("[")[0]] = error.detail or ""
            else:
                response = page.redirect(after)
                page.sign_in(response, user)
                return response
        return await page.render("signup.html", 400, next=after, values=values, errors=errors)

    @staticmethod
    def _check(page: Page, username: str, password: str, again: str) -> dict[str, str]:
        errors: dict[str, str] = {}
        if not username:
            errors["username"] = page.t["required"]
        else:
            try:
                USERNAME.check(username, "username")
            except ApiError:
                errors["username"] = page.t["username_hint"]
        problem = password_problem(username, password)
        if problem:
            errors["password"] = page.t[problem]
        elif password != again:
            errors["password_again"] = page.t["password_mismatch"]
        return errors

    async def sign_out(self, request: Request) -> Response:
        page = self.web.page(request)
        try:
            await page.form()
        except FormExpired:
            return page.redirect("/")
        response = page.redirect("/")
        page.sign_out(response)
        return response
