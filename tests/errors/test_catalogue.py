"""The catalogue inside the package equals the seed file (PROTOCOL §1)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from openplatform.errors import CATALOGUE, Code, entry

SEED = Path(__file__).resolve().parents[3] / "shared" / "seed" / "error-codes.txt"

OAUTH_NAMES = {
    10000: "invalid_request",
    10001: "invalid_client",
    10002: "invalid_grant",
    10003: "unauthorized_client",
    10004: "unsupported_grant_type",
    10005: "invalid_scope",
    10006: "expired_token",
    10007: "redirect_uri_mismatch",
    10008: "unsupported_response_type",
    10009: "access_denied",
}


_CJK = re.compile(r"[\u3000-\u9fff\uff00-\uffef]")


def split_zh_en(text: str) -> tuple[str, str]:
    """A Baidu-table line's Chinese and English halves. The Chinese may hold
    spaces and Latin words ("api key无效", "无效的user id"): it runs to the last
    CJK character, then on through lowercase words glued to it, up to the first
    capitalized word; English after a CJK character and a space starts at once
    ("…批量操作 begin_batch already called")."""
    last = max(match.end() for match in _CJK.finditer(text))
    zh, tail = text[:last], text[last:]
    if not tail.startswith(" "):
        glued = re.match(r"(\S*(?: [a-z]\S*)*?) (?=[A-Z])", tail)
        assert glued, f"cannot split {text!r}"
        zh, tail = zh + glued.group(1), tail[glued.end() - 1 :]
    return zh, tail.strip()


def parse_seed() -> tuple[dict[int, tuple[str, str]], dict[int, tuple[str, str]]]:
    """Both tables of the seed: the OAuth one (three lines per code) and the
    API codes, where the second (Baidu) table's wording wins over the first."""
    lines = SEED.read_text(encoding="utf-8").splitlines()
    oauth: dict[int, tuple[str, str]] = {}
    first_api: dict[int, tuple[str, str]] = {}
    i = 0
    while i < len(lines):
        if re.fullmatch(r"\d+", lines[i]) and i + 2 < len(lines):
            code = int(lines[i])
            (oauth if code >= 10000 else first_api)[code] = (lines[i + 1], lines[i + 2])
            i += 3
        else:
            i += 1
    baidu_start = next(n for n, line in enumerate(lines) if line.startswith("Error Code Error"))
    api = dict(first_api)
    for line in lines[baidu_start + 1 :]:
        code_text, _, rest = line.partition(" ")
        api[int(code_text)] = split_zh_en(rest)
    return oauth, api


def test_seed_has_46_codes() -> None:
    oauth, api = parse_seed()
    assert (len(oauth), len(api)) == (10, 36)


def test_catalogue_holds_exactly_the_seed_codes() -> None:
    oauth, api = parse_seed()
    assert set(CATALOGUE) == set(oauth) | set(api)
    assert {int(c) for c in Code} == set(CATALOGUE)


@pytest.mark.parametrize("code", sorted(parse_seed()[0]))
def test_oauth_entry_matches_seed(code: int) -> None:
    zh, en = parse_seed()[0][code]
    item = entry(code)
    assert (item.family, item.zh, item.en, item.error) == ("oauth", zh, en, OAUTH_NAMES[code])
    assert item.http_status == 400


@pytest.mark.parametrize("code", sorted(parse_seed()[1]))
def test_api_entry_matches_seed(code: int) -> None:
    zh, en = parse_seed()[1][code]
    item = entry(code)
    assert (item.family, item.zh, item.en, item.error) == ("api", zh, en, None)


def test_baidu_wording_wins_for_5_and_6() -> None:
    assert entry(5).en == "Unauthorized client IP address:%s"
    assert entry(6).en == "No permission to access data"


EXPECTED_STATUS = {0: 200, 1: 500, 2: 503, 805: 503, 3: 404, 803: 404, 900: 404, 4: 429}
EXPECTED_STATUS |= dict.fromkeys((5, 6, 7, 210, 211, 212), 403)
EXPECTED_STATUS |= dict.fromkeys((101, 102, 104, 110, 111, 112), 401)
EXPECTED_STATUS |= {804: 409}


@pytest.mark.parametrize("code", sorted(parse_seed()[1]))
def test_http_status_follows_protocol(code: int) -> None:
    assert entry(code).http_status == EXPECTED_STATUS.get(code, 400)


def test_percent_s_is_filled() -> None:
    assert entry(5).message("en", "203.0.113.9") == "Unauthorized client IP address:203.0.113.9"
    assert entry(5).message("zh", "203.0.113.9") == "请求来自未经授权的IP地址"


@pytest.mark.parametrize(
    ("code", "zh", "en"),
    [
        (101, "api key无效", "Invalid API key"),
        (102, "session key无效", "Session key invalid or no longer valid"),
        (108, "无效的user id", "Invalid user id"),
        (110, "无效的access token", "Access token invalid or no longer valid"),
        (111, "access token过期", "Access token expired"),
        (112, "session key过期", "Session key expired"),
        (
            950,
            entry(950).zh,
            "begin_batch already called, please make sure to call end_batch first",
        ),
    ],
)
def test_chinese_with_latin_words_is_split_right(code: int, zh: str, en: str) -> None:
    """The Baidu table separates zh and en by a space, and some zh texts hold
    spaces themselves: pinned here so the seed parser cannot drift with it."""
    assert (entry(code).zh, entry(code).en) == (zh, en)
    assert not re.search(r"[A-Za-z]$", entry(950).zh)
