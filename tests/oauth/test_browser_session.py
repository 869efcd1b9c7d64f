"""The signed sign-in cookie and the CSRF tokens of the /authorize forms."""

from __future__ import annotations

from openplatform.oauth.browser_session import BrowserSessions

NOW = 1_800_000_000


def test_session_cookie_round_trips() -> None:
    sessions = BrowserSessions("key material")
    cookie = sessions.session_cookie(42, NOW)
    signed_in = sessions.read_session(cookie, NOW + 10)
    assert signed_in is not None
    assert signed_in.uid == 42


def test_tampered_foreign_or_expired_cookies_are_ignored() -> None:
    sessions = BrowserSessions("key material", max_age_s=100)
    cookie = sessions.session_cookie(42, NOW)
    _uid, rest = cookie.split(".", 1)
    assert sessions.read_session("43." + rest, NOW) is None
    assert sessions.read_session(cookie[:-1] + ("0" if cookie[-1] != "0" else "1"), NOW) is None
    assert BrowserSessions("other key").read_session(cookie, NOW) is None
    assert sessions.read_session(cookie, NOW + 100) is None
    assert sessions.read_session(cookie, NOW - 1) is None
    for junk in (None, "", ".", "a.b.c.d", "x" * 1000):
        assert sessions.read_session(junk, NOW) is None


def test_csrf_token_is_bound_to_the_browser_cookie() -> None:
    sessions = BrowserSessions("key material")
    mine, theirs = sessions.new_csrf_cookie(), sessions.new_csrf_cookie()
    assert sessions.check_csrf(mine, sessions.csrf_token(mine))
    assert not sessions.check_csrf(mine, sessions.csrf_token(theirs))
    assert not sessions.check_csrf(None, sessions.csrf_token(mine))
    assert not sessions.check_csrf(mine, None)
    assert not sessions.check_csrf(mine, "")
    assert not BrowserSessions("other key").check_csrf(mine, sessions.csrf_token(mine))
