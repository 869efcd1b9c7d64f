"""Server-rendered pages of /authorize (Jinja2, zh and en): sign-in, consent
and the error page for errors that must not redirect (RFC 6749 §4.1.2.1).

Every page is sent with ``X-Frame-Options: DENY`` and CSP
``frame-ancestors 'none'`` (RFC 6749 §10.13, clickjacking) and is never cached.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse

from openplatform.errors import Lang, OAuthError, entry

__all__ = [
    "PAGE_HEADERS",
    "STATIC_DIR",
    "STATIC_PREFIX",
    "TEXT",
    "error_page",
    "hidden_fields",
    "render_page",
]

_WEB_DIR = Path(__file__).resolve().parent.parent / "web"
STATIC_DIR = _WEB_DIR / "static"
STATIC_PREFIX = "/static"

# No form-action: browsers apply it to the redirect that follows the consent
# form, which goes to the client's redirect URI.
PAGE_HEADERS: Mapping[str, str] = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' https: data:; "
        "base-uri 'none'; frame-ancestors 'none'"
    ),
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

TEXT: Mapping[Lang, Mapping[str, str]] = {
    "en": {
        "platform": "Open Platform",
        "sign_in": "Sign in",
        "continue_to": "to continue to",
        "username": "Username",
        "password": "Password",
        "authorize": "Authorize",
        "wants_access": "{app} wants to access your account",
        "will_be_able": "It will be able to:",
        "signed_in_as": "Signed in as",
        "switch_account": "Switch account",
        "redirect_note": "After you choose, you will be sent back to",
        "approve": "Allow",
        "deny": "Deny",
        "error_title": "This request cannot be completed",
        "error_10001": "The app that sent you here is not registered with Open Platform, "
        "or it sent a wrong app ID.",
        "error_10007": "The app asked to send you back to an address it has not registered. "
        "To keep your account safe, you were not sent there.",
        "error_other": "The sign-in request from the app is not valid.",
        "error_help": "Return to the app and try again, or contact its developer.",
        "error_details": "Details for the app's developer",
        "error_code": "Error code",
        "error_message": "Message",
        "error_detail": "Detail",
        "request_id": "Request ID",
        "wrong_credentials": "Wrong username or password.",
        "too_many_attempts": "Too many sign-in attempts. Try again in {seconds} seconds.",
        "form_expired": "This form has expired or was not sent from this page. Please try again.",
    },
    "zh": {
        "platform": "开放平台",
        "sign_in": "登录",
        "continue_to": "继续使用",
        "username": "用户名",
        "password": "密码",
        "authorize": "授权",
        "wants_access": "{app} 请求访问你的账户",
        "will_be_able": "它将能够：",
        "signed_in_as": "当前账户",
        "switch_account": "切换账户",
        "redirect_note": "做出选择后，你将被带回",
        "approve": "允许",
        "deny": "拒绝",
        "error_title": "无法完成此请求",
        "error_10001": "把你带到这里的应用未在开放平台注册，或它提供的应用 ID 有误。",
        "error_10007": "该应用要求把你带回一个它未注册的地址。为了你的账户安全，我们没有跳转。",
        "error_other": "应用发来的登录请求无效。",
        "error_help": "请返回应用重试，或联系应用的开发者。",
        "error_details": "供应用开发者参考",
        "error_code": "错误码",
        "error_message": "错误信息",
        "error_detail": "详情",
        "request_id": "请求 ID",
        "wrong_credentials": "用户名或密码错误。",
        "too_many_attempts": "登录尝试次数过多，请在 {seconds} 秒后重试。",
        "form_expired": "表单已过期或并非从本页提交，请重试。",
    },
}

_env = Environment(
    loader=FileSystemLoader(_WEB_DIR / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=False,
)


def render_page(
    template: str,
    lang: Lang,
    *,
    status: int = 200,
    switch_lang_url: str = "?",
    headers: Mapping[str, str] | None = None,
    **context: object,
) -> HTMLResponse:
    """``template`` rendered in ``lang`` with the page security headers."""
    html = _env.get_template(template).render(
        lang=lang,
        t=TEXT[lang],
        static_prefix=STATIC_PREFIX,
        switch_lang_url=switch_lang_url,
        **context,
    )
    all_headers = dict(PAGE_HEADERS)
    if headers:
        all_headers.update(headers)
    return HTMLResponse(html, status, all_headers)


def error_page(
    error: OAuthError, lang: Lang, *, switch_lang_url: str, request_id: str
) -> HTMLResponse:
    """PROTOCOL §2: the error page shows the code and the message; HTTP 400."""
    return render_page(
        "oauth_error.html",
        lang,
        status=400,
        switch_lang_url=switch_lang_url,
        headers={"X-Error-Code": str(int(error.code)), "X-Request-Id": request_id},
        code=int(error.code),
        error=error.error,
        message=entry(error.code).message(lang),
        detail=error.description,
        request_id=request_id,
    )


def hidden_fields(pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The authorization request carried through the forms, minus form fields."""
    skip = {"csrf_token", "action", "username", "password"}
    return [(key, value) for key, value in pairs if key not in skip]
