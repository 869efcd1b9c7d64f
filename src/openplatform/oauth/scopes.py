"""Scopes (RFC 6749 §3.3, PROTOCOL §5): parsing and the words the consent page
shows for each one."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from openplatform.errors import Code, Lang, OAuthError

__all__ = ["KNOWN_SCOPES", "ScopeText", "format_scope", "parse_scope", "scope_text"]

# scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")


@dataclass(frozen=True, slots=True)
class ScopeText:
    """What a scope lets an app do, in plain words."""

    en: str
    zh: str

    def text(self, lang: Lang) -> str:
        return self.zh if lang == "zh" else self.en


KNOWN_SCOPES: dict[str, ScopeText] = {
    "basic": ScopeText(
        "See your user ID, username, display name and avatar",
        "查看你的用户 ID、用户名、昵称和头像",
    ),
    "email": ScopeText("See your email address", "查看你的电子邮箱地址"),
    "mobile": ScopeText("See your mobile phone number", "查看你的手机号码"),
    "data": ScopeText(
        "Store and read this app's data in your account",
        "在你的账户中保存和读取此应用的数据",
    ),
}


def parse_scope(text: str | None) -> tuple[str, ...] | None:
    """The scope tokens of a ``scope`` parameter, in order, without duplicates;
    None when the parameter is absent. Tokens are separated by spaces; a
    malformed token is 10000, a token this platform does not know is 10005."""
    if text is None:
        return None
    tokens: list[str] = []
    for token in text.split(" "):
        if not token:
            continue
        if not _SCOPE_TOKEN.match(token):
            raise OAuthError(Code.INVALID_REQUEST, "malformed scope")
        if token not in KNOWN_SCOPES:
            raise OAuthError(Code.INVALID_SCOPE, f"unknown scope {token!r}")
        if token not in tokens:
            tokens.append(token)
    return tuple(tokens)


def format_scope(scopes: Iterable[str]) -> str:
    """The space-separated ``scope`` value of a response."""
    return " ".join(scopes)


def scope_text(scope: str, lang: Lang) -> str:
    known = KNOWN_SCOPES.get(scope)
    return known.text(lang) if known else scope
