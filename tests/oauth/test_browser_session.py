"""The signed sign-in cookie and the CSRF tokens of the /authorize forms."""

from __future__ import annotations

from openplatform.oauth.browser_session import BrowserSessions

NOW = 1_800_000_000


def test_session_cookie_round_trips() -> None:
    sessions = BrowserSessions("key material")
    cookie = sessions.session_cookie(42, NOW, 3)
    signed_in = sessions.read_session(cookie, NOW + 10)
    assert signed_in is not None
    assert (signed_in.uid, signed_in.signed_in_at, signed_in.session_epoch) == (42, NOW, 3)


def test_tampered_foreign_or_expired_cookies_are_ignored() -> None:
    sessions = BrowserSessions("key material", max_age_s=100)
    cookie = sessions.session_cookie(42, NOW, 0)
    _uid, rest = cookie.split(".", 1)
    assert sessions.read_session("43." + rest, NOW) is None
    assert sessions.read_session(cookie[:-1] + ("0" if cookie[-1] != "0" else "1"), NOW) is None
    assert BrowserSessions("other key").read_session(cookie, NOW) is None
    assert sessions.read_session(cookie, NOW + 100) is None
    assert sessions.read_session(cookie, NOW - 1) is None
    for junk in (None, "", ".", "a.b.c.d", "x" * 1000, "1.2.\xe9", "1.2.3.é.ü"):
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


def test_non_ascii_tokens_are_refused_not_crashed_on() -> None:
    """Cookies and form fields may hold any character (a review found
    ``csrf_token=é`` answered with a traceback)."""
    sessions = BrowserSessions("key material")
    mine = sessions.new_csrf_cookie()
    for token in ("é", "\udc80", sessions.csrf_token(mine)[:-1] + "é"):
        assert not sessions.check_csrf(mine, token)
    assert not sessions.check_csrf("é" * 10, sessions.csrf_token(mine))
    assert not sessions.check_csrf("\udc80", sessions.csrf_token(mine))


def test_key_rotation_keeps_people_signed_in() -> None:
    """With ``new,old`` keys the newest signs and both verify; once the old
    key is dropped, what it signed is void (cookies live 8 h at most)."""
    old, both, new = (BrowserSessions(k) for k in ("old-key", "new-key,old-key", "new-key"))
    now = 1_700_000_000
    cookie = old.session_cookie(7, now, 0)
    assert both.read_session(cookie, now + 1) is not None
    assert new.read_session(cookie, now + 1) is None
    assert new.read_session(both.session_cookie(7, now, 0), now + 1) is not None
    assert both.check_csrf("c" * 43, old.csrf_token("c" * 43))
    assert new.check_csrf("c" * 43, both.csrf_token("c" * 43))
