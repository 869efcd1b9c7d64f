"""Starlette adapter of the OAuth core (PROTOCOL §2): it parses requests into
:class:`OAuthParams`, calls the framework-agnostic endpoints, and renders
their results, errors and pages. No protocol decision is made here."""

from __future__ import annotations

import time
from collections.abc import Sequence
from urllib.parse import urlencode, urlsplit

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from openplatform.errors import Code, Lang, OAuthError, entry
from openplatform.errors.render import negotiate_lang, oauth_error_response
from openplatform.gateway.client_ip import resolve_client_ip
from openplatform.gateway.credential_cache import credential_cache
from openplatform.gateway.form import MAX_BODY_BYTES, FormParams, parse_urlencoded
from openplatform.oauth.browser_session import CSRF_COOKIE, SESSION_COOKIE, BrowserSessions
from openplatform.oauth.login_throttle import LoginThrottle
from openplatform.oauth.pages import (
    STATIC_DIR,
    STATIC_PREFIX,
    TEXT,
    error_page,
    hidden_fields,
    render_page,
)
from openplatform.oauth.params import OAuthParams
from openplatform.oauth.rfc6749 import (
    CODE_TTL_S,
    AuthorizationRequest,
    TokenEndpoint,
    resolve_client_and_redirect,
    validate_authorization_request,
)
from openplatform.oauth.rfc7009 import RevocationEndpoint
from openplatform.oauth.rfc7662 import IntrospectionEndpoint
from openplatform.oauth.rfc8414 import (
    AUTHORIZE_PATH,
    INTROSPECT_PATH,
    METADATA_PATH,
    REVOKE_PATH,
    TOKEN_PATH,
    server_metadata,
)
from openplatform.oauth.rfc9207 import authorization_response_uri
from openplatform.oauth.scopes import scope_text
from openplatform.oauth.sql_storage import SqlOAuthStorage
from openplatform.oauth.storage import AuthenticatedUser, CodeRequest, OAuthStorage
from openplatform.services import Services
from openplatform.slow_clients import CUT_OFF, BodyTimeout

__all__ = ["OAuthWeb", "oauth_routes"]

_FORM_TYPE = "application/x-www-form-urlencoded"
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def oauth_routes(services: Services, *, throttle: LoginThrottle | None = None) -> list[BaseRoute]:
    """The OAuth endpoints and the static files of their pages. ``throttle``
    replaces the default sign-in limits."""
    storage = SqlOAuthStorage(services.database, credential_cache(services), services.shared_state)
    throttle = throttle or LoginThrottle.from_settings(services.shared_state, services.settings)
    return OAuthWeb(services, storage, throttle).routes()


# Far more parameters than any OAuth request carries.
_MAX_PARAMS = 100


def _request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


def _json(body: object, status: int = 200) -> Response:
    headers = {**_NO_STORE, "X-Error-Code": "0"}
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise OAuthError(Code.INVALID_REQUEST, "request body too large", redirectable=False)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise OAuthError(Code.INVALID_REQUEST, "request body too large", redirectable=False)
            chunks.append(chunk)
    except BodyTimeout as late:
        raise OAuthError(Code.INVALID_REQUEST, str(late), redirectable=False) from None
    except ClientDisconnect:
        raise OAuthError(Code.INVALID_REQUEST, CUT_OFF, redirectable=False) from None
    return b"".join(chunks)


async def read_form(request: Request) -> OAuthParams:
    """RFC 6749 §3.2: an ``application/x-www-form-urlencoded`` body (media type
    parameters such as ``charset=UTF-8`` allowed), strict UTF-8."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != _FORM_TYPE:
        raise OAuthError(Code.INVALID_REQUEST, f"the body must be {_FORM_TYPE}", redirectable=False)
    return _parsed(await _read_body(request))


def _query_params(request: Request) -> OAuthParams:
    return _parsed(request.scope.get("query_string", b""))


def _parsed(data: bytes) -> OAuthParams:
    """Strict UTF-8 pairs; more than :data:`_MAX_PARAMS` are counted, never
    kept (a megabyte of ``a&a&…`` would be half a million pairs in memory)."""
    form = FormParams(keep=_MAX_PARAMS)
    parse_urlencoded(data, form)
    if form.count > _MAX_PARAMS:
        raise OAuthError(
            Code.INVALID_REQUEST,
            f"{form.count} parameters given, at most {_MAX_PARAMS}",
            redirectable=False,
        )
    if form.problem:
        raise OAuthError(Code.INVALID_REQUEST, form.problem, redirectable=False)
    return OAuthParams.from_pairs(form.pairs)


def _pairs(params: OAuthParams) -> list[tuple[str, str]]:
    return [(key, value) for key, values in params.values.items() for value in values]


def _authorize_url(pairs: Sequence[tuple[str, str]], **replace: str) -> str:
    kept = [(key, value) for key, value in pairs if key not in replace]
    return AUTHORIZE_PATH + "?" + urlencode([*kept, *replace.items()])


class OAuthWeb:
    """The route handlers, sharing the endpoints, the storage and the browser
    session signer of one server process."""

    def __init__(self, services: Services, storage: OAuthStorage, throttle: LoginThrottle) -> None:
        self._services = services
        self.issuer = services.issuer
        self.storage = storage
        self.throttle = throttle
        self.browser = BrowserSessions(services.settings.secret_key_material())
        self._token = TokenEndpoint(storage, self.throttle)
        self._revocation = RevocationEndpoint(storage)
        self._introspection = IntrospectionEndpoint(storage, services.issuer)
        self._secure_cookies = services.issuer.startswith("https://")

    def routes(self) -> list[BaseRoute]:
        return [
            Route(METADATA_PATH, self.metadata, methods=["GET"]),
            Route(AUTHORIZE_PATH, self.authorize, methods=["GET", "POST"]),
            Route(TOKEN_PATH, self.token, methods=["POST"]),
            Route(REVOKE_PATH, self.revoke, methods=["POST"]),
            Route(INTROSPECT_PATH, self.introspect, methods=["POST"]),
            Mount(
                STATIC_PREFIX,
                StaticFiles(directory=STATIC_DIR),
                name="static",
            ),
        ]

    # -- helpers -------------------------------------------------------------

    def client_ip(self, request: Request) -> str:
        return resolve_client_ip(
            request.client.host if request.client else None,
            request.headers.getlist("x-forwarded-for"),
            self._services.settings.trusted_proxies,
        )

    @staticmethod
    def _lang(request: Request, params: OAuthParams | None = None) -> Lang:
        lang = params.first("lang") if params is not None else None
        return negotiate_lang(
            lang or request.query_params.get("lang"), request.headers.get("accept-language")
        )

    def _error(self, request: Request, error: OAuthError, lang: Lang) -> Response:
        return oauth_error_response(error, lang=lang, request_id=_request_id(request))

    # -- JSON endpoints --------------------------------------------------------

    async def metadata(self, request: Request) -> Response:
        """RFC 8414 §3."""
        body = orjson.dumps(server_metadata(self.issuer))
        headers = {"Cache-Control": "public, max-age=300", "X-Error-Code": "0"}
        return Response(body, 200, headers, media_type="application/json")

    async def token(self, request: Request) -> Response:
        """RFC 6749 §3.2, §5."""
        params: OAuthParams | None = None
        try:
            params = await read_form(request)
            body = await self._token.handle(
                params, request.headers.get("authorization"), self.client_ip(request)
            )
        except OAuthError as error:
            return self._error(request, error, self._lang(request, params))
        return _json(body)

    async def revoke(self, request: Request) -> Response:
        """RFC 7009 §2.2: 200 with an empty body, for unknown tokens too."""
        params: OAuthParams | None = None
        try:
            params = await read_form(request)
            await self._revocation.handle(params, request.headers.get("authorization"))
        except OAuthError as error:
            return self._error(request, error, self._lang(request, params))
        return Response(b"", 200, {**_NO_STORE, "X-Error-Code": "0"})

    async def introspect(self, request: Request) -> Response:
        """RFC 7662 §2."""
        params: OAuthParams | None = None
        try:
            params = await read_form(request)
            body = await self._introspection.handle(params, request.headers.get("authorization"))
        except OAuthError as error:
            return self._error(request, error, self._lang(request, params))
        return _json(body)

    # -- /authorize ------------------------------------------------------------

    async def authorize(self, request: Request) -> Response:
        """RFC 6749 §4.1.1-§4.1.2: validate, sign in, ask consent, redirect."""
        try:
            if request.method == "POST":
                params = await read_form(request)
            else:
                params = _query_params(request)
        except OAuthError as error:
            return self._page_error(request, error, self._lang(request))
        lang = self._lang(request, params)
        pairs = _pairs(params)
        try:
            client, redirect_uri = await resolve_client_and_redirect(params, self.storage)
        except OAuthError as error:
            return self._page_error(request, error, lang, pairs)
        try:
            auth = validate_authorization_request(params, client, redirect_uri)
        except OAuthError as error:
            return self.redirect_error(request, redirect_uri, error, params.first("state"), lang)
        flow = _Flow(self, request, auth, hidden_fields(pairs), lang)
        action = params.first("action") if request.method == "POST" else None
        if action is not None and not self.browser.check_csrf(
            request.cookies.get(CSRF_COOKIE), params.first("csrf_token")
        ):
            return await flow.form_expired(action)
        if action == "login":
            return await flow.sign_in(params.first("username") or "", params.first("password"))
        user = await self.signed_in_user(request)
        if action in ("approve", "deny") and user is not None:
            if action == "deny":
                return self.redirect_error(
                    request,
                    auth.redirect_uri,
                    OAuthError(Code.ACCESS_DENIED, "the user denied the request"),
                    auth.state,
                    lang,
                )
            await self.storage.save_consent(user.uid, client.app_id, auth.scope)
            return await flow.issue_code(user)
        if user is None or ("login" in auth.prompt and action is None):
            if "none" in auth.prompt:
                return self.redirect_error(
                    request,
                    auth.redirect_uri,
                    OAuthError(Code.ACCESS_DENIED, "sign-in required (prompt=none)"),
                    auth.state,
                    lang,
                )
            return flow.login_page()
        return await flow.after_sign_in(user)

    async def signed_in_user(self, request: Request) -> AuthenticatedUser | None:
        cookie = request.cookies.get(SESSION_COOKIE)
        signed_in = self.browser.read_session(cookie, int(time.time()))
        if signed_in is None:
            return None
        user = await self.storage.get_user(signed_in.uid)
        if user is None or user.session_epoch != signed_in.session_epoch:
            return None  # disabled, or signed out everywhere by a password change
        return user

    def _page_error(
        self,
        request: Request,
        error: OAuthError,
        lang: Lang,
        pairs: Sequence[tuple[str, str]] = (),
    ) -> Response:
        other = "en" if lang == "zh" else "zh"
        return error_page(
            error,
            lang,
            switch_lang_url=_authorize_url(hidden_fields(pairs), lang=other),
            request_id=_request_id(request),
        )

    def redirect_error(
        self,
        request: Request,
        redirect_uri: str,
        error: OAuthError,
        state: str | None,
        lang: Lang,
    ) -> Response:
        """§4.1.2.1 with RFC 9207 ``iss`` and the catalogue's ``error_code``."""
        location = authorization_response_uri(
            redirect_uri,
            [
                ("error", error.error),
                ("error_description", entry(error.code).message(lang)),
                ("error_code", str(int(error.code))),
                ("state", state),
            ],
            self.issuer,
        )
        return self.redirect(request, location)

    @staticmethod
    def redirect(request: Request, location: str) -> Response:
        # 303 after a form post, so the browser follows with GET.
        status = 303 if request.method == "POST" else 302
        headers = {**_NO_STORE, "Referrer-Policy": "no-referrer"}
        return RedirectResponse(location, status, headers=headers)

    def set_csrf_cookie(self, response: Response, value: str) -> None:
        response.set_cookie(
            CSRF_COOKIE,
            value,
            httponly=True,
            secure=self._secure_cookies,
            samesite="lax",
            path=AUTHORIZE_PATH,
        )

    def set_session_cookie(self, response: Response, user: AuthenticatedUser) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            self.browser.session_cookie(user.uid, int(time.time()), user.session_epoch),
            max_age=self.browser.max_age_s,
            httponly=True,
            secure=self._secure_cookies,
            samesite="lax",
            path="/",
        )


class _Flow:
    """One /authorize request once it is known to be valid."""

    def __init__(
        self,
        web: OAuthWeb,
        request: Request,
        auth: AuthorizationRequest,
        hidden: list[tuple[str, str]],
        lang: Lang,
    ) -> None:
        self.web = web
        self.request = request
        self.auth = auth
        self.hidden = hidden
        self.lang = lang
        existing = request.cookies.get(CSRF_COOKIE)
        self.csrf_cookie = existing if existing and len(existing) <= 128 else None
        self.new_csrf = self.csrf_cookie is None
        if self.csrf_cookie is None:
            self.csrf_cookie = BrowserSessions.new_csrf_cookie()

    def _page(self, template: str, status: int = 200, **context: object) -> Response:
        assert self.csrf_cookie is not None
        other = "en" if self.lang == "zh" else "zh"
        response = render_page(
            template,
            self.lang,
            status=status,
            switch_lang_url=_authorize_url(self.hidden, lang=other),
            # An HTML page that answers a failed form carries no success code.
            headers={"X-Error-Code": "0"} if status == 200 else {},
            action_url=AUTHORIZE_PATH,
            hidden=self.hidden,
            csrf_token=self.web.browser.csrf_token(self.csrf_cookie),
            app_name=self.auth.client.name,
            **context,
        )
        if self.new_csrf:
            self.web.set_csrf_cookie(response, self.csrf_cookie)
        return response

    def login_page(self, message: str = "", status: int = 200, username: str = "") -> Response:
        return self._page("login.html", status, message=message, username=username)

    async def form_expired(self, action: str) -> Response:
        """A form without a valid CSRF token is refused (403) and shown again."""
        message = TEXT[self.lang]["form_expired"]
        if action in ("approve", "deny"):
            user = await self.web.signed_in_user(self.request)
            if user is not None:
                return self.consent_page(user, message=message, status=403)
        return self.login_page(message, 403)

    async def sign_in(self, username: str, password: str | None) -> Response:
        """Password check behind the per-account and per-IP limits."""
        text = TEXT[self.lang]
        attempt = await self.web.throttle.attempt(username, self.web.client_ip(self.request))
        if attempt.retry_after_s:
            message = text["too_many_attempts"].format(seconds=attempt.retry_after_s)
            response = self.login_page(message, 429, username)
            response.headers["X-Error-Code"] = str(int(Code.REQUEST_LIMIT_REACHED))
        else:
            user = None
            if username and password:
                user = await self.web.storage.authenticate_user(username, password)
            if user is None:
                response = self.login_page(text["wrong_credentials"], 401, username)
            else:
                await self.web.throttle.succeeded(attempt)
                response = await self.after_sign_in(user)
                self.web.set_session_cookie(response, user)
        response.headers.update(attempt.headers())
        return response

    async def after_sign_in(self, user: AuthenticatedUser) -> Response:
        """Remembered consent covering the scopes skips the page, unless
        ``prompt=consent``."""
        auth = self.auth
        granted = await self.web.storage.consented_scopes(user.uid, auth.client.app_id)
        if "consent" not in auth.prompt and set(auth.scope) <= granted:
            return await self.issue_code(user)
        if "none" in auth.prompt:
            return self.web.redirect_error(
                self.request,
                auth.redirect_uri,
                OAuthError(Code.ACCESS_DENIED, "consent required (prompt=none)"),
                auth.state,
                self.lang,
            )
        return self.consent_page(user)

    def consent_page(
        self, user: AuthenticatedUser, *, message: str = "", status: int = 200
    ) -> Response:
        client = self.auth.client
        redirect = urlsplit(self.auth.redirect_uri)
        return self._page(
            "consent.html",
            status,
            message=message,
            app_description=client.description,
            app_icon=client.icon_url if client.icon_url.startswith("https://") else "",
            scopes=[(scope, scope_text(scope, self.lang)) for scope in self.auth.scope],
            username=user.display_name or user.username,
            switch_account_url=_authorize_url(self.hidden, prompt="login"),
            redirect_host=f"{redirect.scheme}://{redirect.netloc}",
        )

    async def issue_code(self, user: AuthenticatedUser) -> Response:
        """§4.1.2: the code, ``state`` and (RFC 9207) ``iss``."""
        auth = self.auth
        code = await self.web.storage.create_code(
            CodeRequest(
                app_id=auth.client.app_id,
                user_id=user.uid,
                redirect_uri=auth.redirect_uri_given,
                scope=auth.scope,
                code_challenge=auth.code_challenge,
                code_challenge_method=auth.code_challenge_method,
                ttl_s=CODE_TTL_S,
            )
        )
        location = authorization_response_uri(
            auth.redirect_uri, [("code", code), ("state", auth.state)], self.web.issuer
        )
        return self.web.redirect(self.request, location)
