"""The developer console, the account page and the references in a real
browser (Debian's Chromium driven by Playwright) against ``serve --demo``
(PROTOCOL §5): a developer signs up, creates an app, sets an IP allowlist (a
bad CIDR shows the 114 message next to the field), reveals the secret and
calls ``users.getInfo`` in the explorer (canonical string, signature,
answer); an end user authorizes that app on the consent page, finds it in
``/account``, revokes it, and its token gets 110. An app named like a script
stays text; another developer's app is 404. Every page is photographed on a
desktop and a phone, in English and Chinese, into ``test-output/screenshots``.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Dialog, Page, ViewportSize, expect

from openplatform.gateway.signature import sign
from openplatform.oauth.rfc7636 import s256_challenge
from tests.test_demo import Served

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 844}
DEV_PASSWORD = "correct horse battery staple"
XSS_NAME = "<script>alert(1)</script>"


@dataclass
class Site:
    base: str
    demo_user: str
    demo_password: str
    demo_uid: int
    app_id: int = 0
    api_key: str = ""
    secret: str = ""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    served = Served(tmp_path_factory.mktemp("console") / "data")
    user = re.search(r"Demo user\s+(\S+) / (\S+)\s+\(uid (\d+)\)", served.output)
    assert user, served.output
    yield Site(served.base, user.group(1), user.group(2), int(user.group(3)))
    served.stop()


class Dialogs:
    """Confirmations (``data-confirm``) are accepted; any other dialog — an
    ``alert`` an injected script opened — is recorded and dismissed."""

    def __init__(self, page: Page) -> None:
        self.unexpected: list[str] = []
        page.on("dialog", self._handle)

    def _handle(self, dialog: Dialog) -> None:
        if dialog.type == "confirm":
            dialog.accept()
        else:
            self.unexpected.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()


def _context(browser: Browser, *, phone: bool = False, lang: str = "en") -> BrowserContext:
    return browser.new_context(
        viewport=PHONE if phone else DESKTOP,
        device_scale_factor=2 if phone else 1,
        is_mobile=phone,
        has_touch=phone,
        extra_http_headers={"Accept-Language": "zh-CN,zh;q=0.9" if lang == "zh" else "en-US"},
    )


def _csp_violations(page: Page) -> list[str]:
    messages: list[str] = []
    page.on(
        "console",
        lambda message: (
            messages.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    return messages


def _sign_up(page: Page, base: str, username: str) -> None:
    page.goto(f"{base}/console")
    assert "/signin" in page.url
    page.get_by_role("link", name="Sign up").click()
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(DEV_PASSWORD)
    page.get_by_label("Password again").fill(DEV_PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", name="Your apps")).to_be_visible()


def _create_app(page: Page, base: str, name: str, scopes: tuple[str, ...] = ()) -> int:
    page.get_by_role("link", name="New app").click()
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Redirect URIs").fill(f"{base}/demo/callback")
    for scope in scopes:
        page.locator(f"input[name=scopes][value={scope}]").check()
    page.get_by_role("button", name="Create app").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(name)
    match = re.search(r"/console/apps/(\d+)", page.url)
    assert match, page.url
    return int(match.group(1))


def _shoot(page: Page, name: str) -> None:
    """The whole page; a long one (a reference) as its first two screens only
    (a full-page picture of it is tens of thousands of pixels: slow to take
    and no easier to look at)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    viewport = page.viewport_size
    assert viewport is not None
    if page.evaluate("document.documentElement.scrollHeight") > 4 * viewport["height"]:
        page.set_viewport_size({"width": viewport["width"], "height": 2 * viewport["height"]})
        page.screenshot(path=str(SCREENSHOTS / f"{name}-top.png"))
        page.set_viewport_size(viewport)
    else:
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def _signed_call(site: Site, method: str, **params: str) -> httpx.Response:
    pairs = [
        ("method", method),
        ("api_key", site.api_key),
        ("v", "2.0"),
        ("timestamp", str(int(time.time()))),
        ("call_id", str(time.time_ns())),
        *params.items(),
    ]
    pairs.append(("sig", sign(pairs, site.secret)))
    return httpx.post(f"{site.base}/rest/2.0/", data=dict(pairs))


def test_developer_app_explorer_then_user_consent_account_and_revoke(
    browser: Browser, site: Site
) -> None:
    context = _context(browser)
    page = context.new_page()
    dialogs = Dialogs(page)
    csp = _csp_violations(page)
    _sign_up(page, site.base, "dev-alice")
    response = page.goto(f"{site.base}/console")
    assert response is not None
    headers = response.headers
    assert headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "unsafe-inline" not in headers["content-security-policy"]
    cookies = {cookie["name"]: cookie for cookie in context.cookies()}
    assert cookies["op_session"]["httpOnly"] and cookies["op_session"]["sameSite"] == "Lax"
    assert cookies["op_web_csrf"]["httpOnly"]

    site.app_id = _create_app(page, site.base, "Weather", scopes=("email",))
    expect(page.get_by_role("status")).to_contain_text("App created")
    site.api_key = page.locator("#api-key").inner_text()

    # A bad CIDR: 114 next to the field, nothing saved; then a good one.
    page.get_by_role("link", name="Settings").click()
    page.get_by_label("IP allowlist").fill("127.0.0.0/8\n10.0.0.300")
    page.get_by_role("button", name="Save").click()
    error = page.locator("#ip_allowlist-error")
    expect(error).to_contain_text("114 Invalid Ip")
    expect(error).to_contain_text("ip_allowlist[1]")
    expect(page.get_by_label("IP allowlist")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("IP allowlist")).to_have_value("127.0.0.0/8\n10.0.0.300")
    _shoot(page, "flow-desktop-en-settings-114")
    page.get_by_label("IP allowlist").fill("127.0.0.0/8\n::1")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Settings saved.")
    expect(page.get_by_label("IP allowlist")).to_have_value("127.0.0.0/8\n::1")

    # The secret, after the password; a wrong one first.
    page.get_by_role("link", name="Overview").click()
    expect(page.locator("#secret")).to_have_count(0)
    page.get_by_label("Your password").first.fill("not my password")
    page.get_by_role("button", name="Reveal secret").click()
    expect(page.locator("#password-error")).to_have_text("Wrong password.")
    page.get_by_label("Your password").first.fill(DEV_PASSWORD)
    page.get_by_role("button", name="Reveal secret").click()
    site.secret = page.locator("#secret").inner_text()
    assert re.fullmatch(r"[0-9a-f]{32,}", site.secret), site.secret
    _shoot(page, "flow-desktop-en-secret")

    # The explorer: canonical string, signature and answer side by side.
    page.get_by_role("link", name="API explorer").first.click()
    expect(page.locator("#choose-method")).to_have_value("users.getInfo")
    page.locator("#p_uids").fill(str(site.demo_uid))
    page.locator("#p_fields").fill("uid,username")
    page.get_by_role("button", name="Send signed call").click()
    canonical = page.locator("#canonical").inner_text()
    assert f"api_key={site.api_key}" in canonical
    assert "method=users.getInfo" in canonical
    assert f"uids={site.demo_uid}" in canonical
    signature = page.locator("#signature").inner_text()
    expected = hashlib.md5((canonical + site.secret).encode(), usedforsecurity=False).hexdigest()
    assert signature == expected
    expect(page.locator("#response-status")).to_contain_text("X-Error-Code 0")
    expect(page.locator("#response")).to_contain_text(f'"username": "{site.demo_user}"')
    _shoot(page, "flow-desktop-en-explorer")
    assert not dialogs.unexpected and not csp, (dialogs.unexpected, csp)
    context.close()

    # The end user approves the app on the consent page (phone, Chinese).
    verifier = secrets.token_urlsafe(48)
    authorize = f"{site.base}/oauth/2.0/authorize?" + urlencode(
        {
            "response_type": "code",
            "client_id": site.api_key,
            "redirect_uri": f"{site.base}/demo/callback",
            "scope": "basic email",
            "state": "s1",
            "code_challenge": s256_challenge(verifier),
            "code_challenge_method": "S256",
        }
    )
    person = _context(browser, phone=True, lang="zh")
    page = person.new_page()
    dialogs = Dialogs(page)
    page.goto(authorize)
    page.get_by_label("用户名").fill(site.demo_user)
    page.get_by_label("密码").fill(site.demo_password)
    page.get_by_role("button", name="登录").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Weather")
    with page.expect_navigation(url=re.compile(r"/demo/callback\?")):
        page.get_by_role("button", name="允许", exact=True).click()
    code = parse_qs(urlsplit(page.url).query)["code"][0]
    token = httpx.post(
        f"{site.base}/oauth/2.0/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": f"{site.base}/demo/callback",
            "code_verifier": verifier,
        },
        auth=(site.api_key, site.secret),
    ).json()["access_token"]
    me = httpx.get(f"{site.base}/rest/2.0/users.getLoggedInUser", params={"access_token": token})
    assert me.json() == {"uid": site.demo_uid}
    assert _signed_call(site, "users.isAppUser", uid=str(site.demo_uid)).json() == {"result": True}

    # /account lists it with its scopes; revoking it ends its access at once.
    page.goto(f"{site.base}/account")
    grant = page.locator(".grant", has_text="Weather")
    expect(grant).to_contain_text("查看你的电子邮箱地址")
    _shoot(page, "flow-phone-zh-account")
    grant.get_by_role("button", name="撤销授权").click()
    expect(page.get_by_role("status")).to_contain_text("Weather")
    expect(page.locator(".grant", has_text="Weather")).to_have_count(0)
    gone = httpx.get(f"{site.base}/rest/2.0/users.getLoggedInUser", params={"access_token": token})
    assert gone.headers["X-Error-Code"] == "110", gone.text
    assert _signed_call(site, "users.isAppUser", uid=str(site.demo_uid)).json() == {"result": False}
    # The next authorization asks again.
    page.goto(authorize.replace("state=s1", "state=s2"))
    expect(page.get_by_role("button", name="允许", exact=True)).to_be_visible()
    assert not dialogs.unexpected
    person.close()


def test_a_script_in_an_app_name_stays_text_and_apps_are_private(
    browser: Browser, site: Site
) -> None:
    context = _context(browser)
    page = context.new_page()
    dialogs = Dialogs(page)
    _sign_up(page, site.base, "dev-mallory")
    xss_id = _create_app(page, site.base, XSS_NAME)
    for path in ("/console", f"/console/apps/{xss_id}", f"/console/apps/{xss_id}/settings"):
        page.goto(site.base + path)
        expect(page.get_by_text(XSS_NAME).first).to_be_visible()
    page.goto(f"{site.base}/console/explorer?app={xss_id}")
    expect(page.locator("#choose-app option", has_text=XSS_NAME)).to_have_count(1)
    assert page.evaluate("document.querySelectorAll('main script').length") == 0
    assert not dialogs.unexpected, dialogs.unexpected

    # Another developer's app: 404 everywhere, reading or writing.
    assert site.app_id, "runs after the flow test"
    for path in ("", "/settings", "/usage"):
        response = page.goto(f"{site.base}/console/apps/{site.app_id}{path}")
        assert response is not None and response.status == 404, path
        expect(page.get_by_text("Weather")).to_have_count(0)
    csrf = page.goto(f"{site.base}/console")
    assert csrf is not None
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    for path in ("/settings", "/secret", "/delete"):
        posted = page.request.post(
            f"{site.base}/console/apps/{site.app_id}{path}",
            form={"csrf_token": token or "", "name": "Mine now", "password": DEV_PASSWORD},
        )
        assert posted.status == 404, (path, posted.status)
    page.goto(f"{site.base}/console/explorer?app={site.app_id}")
    expect(page.locator("#choose-app option", has_text="Weather")).to_have_count(0)
    context.close()


PAGES = (
    ("home", "/"),
    ("console", "/console"),
    ("new-app", "/console/apps/new"),
    ("app", "/console/apps/{app_id}"),
    ("settings", "/console/apps/{app_id}/settings"),
    ("usage", "/console/apps/{app_id}/usage"),
    ("explorer", "/console/explorer?app={app_id}&method=users.getInfo"),
    ("methods", "/docs/methods"),
    ("method", "/docs/methods/users.getInfo"),
    ("errors", "/docs/errors"),
    ("admin-api", "/docs/admin-api"),
    ("account", "/account"),
)


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize("device", ["desktop", "phone"])
def test_every_page_photographed(browser: Browser, site: Site, device: str, lang: str) -> None:
    """Each page in each language on each device: the right language, no
    sideways scrolling on a phone, nothing the CSP refused; a screenshot."""
    assert site.app_id, "runs after the flow test"
    for _ in range(3):  # some traffic for the usage charts
        _signed_call(site, "users.getInfo", uids=str(site.demo_uid))
    _signed_call(site, "users.getInfo", uids="0")
    context = _context(browser, phone=device == "phone", lang=lang)
    page = context.new_page()
    csp = _csp_violations(page)
    prefix = f"{device}-{lang}"
    page.goto(f"{site.base}/signin?next=/console")
    _shoot(page, f"{prefix}-signin")
    page.goto(f"{site.base}/signup")
    _shoot(page, f"{prefix}-signup")
    page.goto(f"{site.base}/signin?next=/console")
    page.locator("#username").fill("dev-alice")
    page.locator("#password").fill(DEV_PASSWORD)
    page.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r"/console$"))
    for name, path in PAGES:
        response = page.goto(site.base + path.format(app_id=site.app_id))
        assert response is not None and response.status == 200, (name, response and response.status)
        expect(page.locator("html")).to_have_attribute("lang", "zh-CN" if lang == "zh" else "en")
        assert "built-in method" not in page.content(), name  # a text key shadowed
        if device == "phone":
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], f"{name} is {width} px wide on a phone"
        _shoot(page, f"{prefix}-{name}")
    assert not csp, csp
    context.close()
