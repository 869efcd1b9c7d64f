"""The /authorize pages in a real browser (Debian's Chromium driven by
Playwright), at phone size, in English and in Chinese (PROTOCOL §2): sign in,
consent, approve or deny, the redirect with ``code``, ``state`` and ``iss``
(RFC 9207), the code exchanged at the token endpoint (RFC 6749 §4.1.3), the
error pages that must not redirect, and no framing (RFC 6749 §10.13)."""

from __future__ import annotations

import http.server
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize, expect

from openplatform.oauth.browser_session import SESSION_COOKIE
from tests.test_demo import Served

PHONE: ViewportSize = {"width": 390, "height": 844}
APP_NAME = "Demo app"


@dataclass(frozen=True)
class Demo:
    """What ``serve --demo`` printed: the app, the user, a ready authorize URL."""

    base: str
    api_key: str
    secret: str
    username: str
    password: str
    authorize_url: str
    code_verifier: str


@dataclass(frozen=True)
class Words:
    """The texts a person reads, per language."""

    lang_attr: str
    sign_in: str
    username: str
    password: str
    wrong: str
    wants_access: str
    scopes: tuple[str, ...]
    allow: str
    deny: str
    error_title: str


WORDS = {
    "en": Words(
        "en",
        "Sign in",
        "Username",
        "Password",
        "Wrong username or password.",
        "wants to access your account",
        ("See your user ID, username, display name and avatar", "See your email address"),
        "Allow",
        "Deny",
        "This request cannot be completed",
    ),
    "zh": Words(
        "zh-CN",
        "登录",
        "用户名",
        "密码",
        "用户名或密码错误。",
        "请求访问你的账户",
        ("查看你的用户 ID、用户名、昵称和头像", "查看你的电子邮箱地址"),
        "允许",
        "拒绝",
        "无法完成此请求",
    ),
}


def _found(pattern: str, text: str) -> re.Match[str]:
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not in the serve output:\n{text}"
    return match


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    served = Served(tmp_path_factory.mktemp("browser") / "data")
    out = served.output
    user = _found(r"Demo user\s+(\S+) / (\S+)", out)
    yield Demo(
        base=served.base,
        api_key=_found(r"api_key \(client_id\)\s+(\S+)", out).group(1),
        secret=_found(r"secret\s+([0-9a-f]{32,})", out).group(1),
        username=user.group(1),
        password=user.group(2),
        authorize_url=_found(r"(http\S+/oauth/2\.0/authorize\?\S+)", out).group(1),
        code_verifier=_found(r"code_verifier=(\S+)", out).group(1),
    )
    served.stop()


def _phone(browser: Browser, accept_language: str) -> BrowserContext:
    return browser.new_context(
        viewport=PHONE,
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        extra_http_headers={"Accept-Language": accept_language},
    )


def _query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def _console(page: Page) -> list[str]:
    """What the page logs (Chromium logs each CSP violation there)."""
    messages: list[str] = []
    page.on("console", lambda message: messages.append(message.text))
    return messages


def _fits_the_phone(page: Page) -> None:
    """No sideways scrolling; every button is a comfortable tap target (the
    stylesheet loaded under the page's CSP: unstyled buttons are ~20 px)."""
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page is {width} px wide"
    for button in page.get_by_role("button").all():
        box = button.bounding_box()
        assert box is not None
        assert box["height"] >= 44, box
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box


@pytest.mark.parametrize(
    ("lang", "accept_language", "extra_query"),
    [
        ("en", "en-US,en;q=0.9", ""),
        ("zh", "zh-CN,zh;q=0.9,en;q=0.5", ""),
        ("zh", "en-US,en;q=0.9", "&lang=zh"),
    ],
    ids=["en", "zh-by-accept-language", "zh-by-lang-param"],
)
def test_sign_in_consent_and_code_on_a_phone(
    browser: Browser, demo: Demo, lang: str, accept_language: str, extra_query: str
) -> None:
    words = WORDS[lang]
    context = _phone(browser, accept_language)
    page = context.new_page()
    console = _console(page)
    url = demo.authorize_url + "&prompt=consent" + extra_query

    login = page.goto(url)
    assert login is not None and login.status == 200
    assert login.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in login.headers["content-security-policy"]
    expect(page.locator("html")).to_have_attribute("lang", words.lang_attr)
    expect(page.get_by_role("heading", name=words.sign_in)).to_be_visible()
    expect(page.get_by_text(APP_NAME)).to_be_visible()
    expect(page.get_by_label(words.username)).to_be_focused()
    _fits_the_phone(page)

    # A wrong password: the message, the username kept, the password focused.
    page.get_by_label(words.username).fill(demo.username)
    page.get_by_label(words.password).fill("not-the-password")
    page.get_by_role("button", name=words.sign_in).click()
    expect(page.get_by_role("alert")).to_have_text(words.wrong)
    expect(page.get_by_label(words.username)).to_have_value(demo.username)
    expect(page.get_by_label(words.password)).to_be_focused()

    # Enter in the password field signs in, as on a phone keyboard.
    page.get_by_label(words.password).fill(demo.password)
    page.get_by_label(words.password).press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text(
        re.compile(re.escape(APP_NAME) + r"\s*" + re.escape(words.wants_access))
    )
    for scope in words.scopes:
        expect(page.get_by_text(scope)).to_be_visible()
    allow = page.get_by_role("button", name=words.allow, exact=True)
    deny = page.get_by_role("button", name=words.deny, exact=True)
    expect(allow).to_be_visible()
    expect(deny).to_be_visible()
    _fits_the_phone(page)

    with page.expect_navigation(url=re.compile(r"/demo/callback\?")):
        allow.click()
    approved = _query(page.url)
    assert approved["state"] == ["demo"]
    assert approved["iss"] == [demo.base]
    token = httpx.post(
        f"{demo.base}/oauth/2.0/token",
        data={
            "grant_type": "authorization_code",
            "code": approved["code"][0],
            "redirect_uri": f"{demo.base}/demo/callback",
            "code_verifier": demo.code_verifier,
        },
        auth=(demo.api_key, demo.secret),
    )
    assert token.status_code == 200, token.text
    assert token.json()["token_type"] == "Bearer"
    assert token.json()["scope"] == "basic email"

    # Signed in now: the consent page comes straight away; Deny goes back
    # with access_denied (10009), the state and the issuer.
    page.goto(url)
    with page.expect_navigation(url=re.compile(r"/demo/callback\?")):
        page.get_by_role("button", name=words.deny, exact=True).click()
    denied = _query(page.url)
    assert denied["error"] == ["access_denied"]
    assert denied["error_code"] == ["10009"]
    assert denied["state"] == ["demo"]
    assert denied["iss"] == [demo.base]
    assert "code" not in denied

    assert not [text for text in console if "Content Security Policy" in text], console
    context.close()


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize(
    ("code", "replace"),
    [
        ("10001", (r"client_id=[^&]+", "client_id=ak_nobody")),
        ("10007", (r"redirect_uri=[^&]+", "redirect_uri=https%3A%2F%2Fevil.example%2Fcb")),
    ],
    ids=["unknown-client", "unregistered-redirect-uri"],
)
def test_errors_that_must_not_redirect_are_a_page(
    browser: Browser, demo: Demo, lang: str, code: str, replace: tuple[str, str]
) -> None:
    words = WORDS[lang]
    context = _phone(browser, "zh-CN" if lang == "zh" else "en-US")
    page = context.new_page()
    url = re.sub(replace[0], replace[1], demo.authorize_url)
    response = page.goto(url)
    assert response is not None and response.status == 400
    assert response.request.redirected_from is None
    assert page.url == url
    expect(page.locator("html")).to_have_attribute("lang", words.lang_attr)
    expect(page.get_by_role("heading", level=1)).to_have_text(words.error_title)
    expect(page.get_by_text(code, exact=True)).to_be_visible()
    _fits_the_phone(page)

    other = "en" if lang == "zh" else "zh"
    page.get_by_role("link", name="English" if other == "en" else "中文").click()
    expect(page.locator("html")).to_have_attribute("lang", WORDS[other].lang_attr)
    expect(page.get_by_role("heading", level=1)).to_have_text(WORDS[other].error_title)
    context.close()


class _OtherOrigin:
    """Pages framing a URL each, served on another port of 127.0.0.1: another
    origin, but the same site and address space as the server under test (so
    its SameSite=Lax session cookie goes along, and Chromium's local-network
    checks pass)."""

    def __init__(self, frames: dict[str, str]) -> None:
        bodies = {
            path: f'<!doctype html><title>x</title><iframe src="{url}"></iframe>'.encode()
            for path, url in frames.items()
        }

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = bodies.get(self.path)
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_consent_page_cannot_be_framed(browser: Browser, demo: Demo) -> None:
    """A page of another origin frames the consent page of a signed-in user:
    the server answers with the consent form, the browser refuses to show it.
    The same kind of page framing a frameable page of the server shows it."""
    context = _phone(browser, "en-US")
    page = context.new_page()
    page.goto(demo.authorize_url + "&prompt=consent")
    page.get_by_label("Username").fill(demo.username)
    page.get_by_label("Password").fill(demo.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Allow")).to_be_visible()

    consent_url = demo.authorize_url + "&prompt=consent"
    control_url = f"{demo.base}/demo/callback?code=framed-ok&state=s"
    other = _OtherOrigin(
        {
            "/consent.html": consent_url,
            "/control.html": control_url,
        }
    )
    console = _console(page)
    failures: list[str | None] = []
    page.on("requestfailed", lambda request: failures.append(request.failure))
    try:
        with page.expect_response(lambda r: "/oauth/2.0/authorize" in r.url) as framed:
            page.goto(other.base + "/consent.html")
        response = framed.value
        assert response.status == 200
        # The browser sent the session cookie: the server answered with the
        # consent form (the same request from the same browser shows it).
        assert SESSION_COOKIE in (response.request.header_value("cookie") or "")
        assert 'value="approve"' in context.request.get(consent_url).text()
        assert response.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        page.wait_for_load_state("load")
        expect(page.locator("iframe")).to_be_attached()
        frame = page.frames[1]
        assert not frame.url.startswith(demo.base), frame.url
        assert frame.locator("button").count() == 0
        assert failures == ["net::ERR_BLOCKED_BY_RESPONSE"]
        assert any("frame-ancestors 'none'" in text for text in console), console

        page.goto(other.base + "/control.html")
        expect(page.frame_locator("iframe").get_by_text("framed-ok").first).to_be_visible()
    finally:
        other.close()
    context.close()
