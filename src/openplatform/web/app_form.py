"""The console's app settings form: HTML form fields to the JSON settings
that :class:`AppSettings` validates (the same declarations as the admin
API), and each error back to the field it names — all of them at once,
next to their fields, with the catalogue's code and message (114 for a
malformed IP or CIDR).

Some settings are the operator's (PROTOCOL §2, §5): the password grant, the
app's status (suspension) and its data-store quota are shown, not edited.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from openplatform.errors import ApiError, Code, Lang, entry
from openplatform.storage.apps import SETTINGS_PATCH, AppSettings
from openplatform.web.pages import Form

__all__ = ["EXTRA_RATE_LIMIT_ROWS", "AppForm", "error_text"]

FLAGS = (
    "public",
    "allow_missing_referer",
    "require_signature",
    "legacy_http_200",
    "require_pkce",
    "require_call_id",
)
LINES = ("redirect_uris", "ip_allowlist", "referer_allowlist")
TEXTS = ("name", "description", "icon_url")
NUMBERS = ("access_token_ttl_s", "refresh_token_ttl_s", "refresh_reuse_grace_s")
OPERATOR_GRANTS = ("password",)
EXTRA_RATE_LIMIT_ROWS = 2
MAX_ROWS = 40
SHORT_TTL_S = 300


def error_text(error: ApiError, lang: Lang) -> str:
    """``114 Invalid Ip: ip_allowlist[0] is not …`` (the detail is English)."""
    text = f"{int(error.code)} {entry(error.code).message(lang)}"
    return f"{text}: {error.detail}" if error.detail else text


@dataclass
class RateLimitRow:
    methods: str = ""
    per: str = "app"
    limit: str = ""
    window_s: str = ""

    @property
    def blank(self) -> bool:
        return not (self.methods.strip() or self.limit.strip() or self.window_s.strip())


@dataclass
class AppForm:
    """What the form shows (``values``, ``rate_limits``) and its ``errors``
    by field name (``rate_limits.<row>`` for a rate-limit row)."""

    values: dict[str, object] = field(default_factory=dict)
    rate_limits: list[RateLimitRow] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    # the row of each non-blank rate limit posted, in order
    _limit_rows: list[int] = field(default_factory=list)

    @classmethod
    def of(cls, settings: AppSettings) -> AppForm:
        values: dict[str, object] = {key: getattr(settings, key) for key in (*TEXTS, *FLAGS)}
        for key in LINES:
            values[key] = "\n".join(getattr(settings, key))
        for key in NUMBERS:
            values[key] = str(getattr(settings, key))
        values["scopes"] = list(settings.scopes)
        values["grants"] = list(settings.grants)
        rows = [
            RateLimitRow(limit.methods, limit.per, str(limit.limit), str(limit.window_s))
            for limit in settings.rate_limits
        ]
        form = cls(values, rows)
        form.pad_rows()
        return form

    def pad_rows(self) -> None:
        self.rate_limits.extend(RateLimitRow() for _ in range(EXTRA_RATE_LIMIT_ROWS))

    def warnings(self) -> dict[str, bool]:
        """Fields whose value deserves a second look (not an error)."""
        short = {}
        for key in ("access_token_ttl_s", "refresh_token_ttl_s"):
            text = str(self.values.get(key, ""))
            short[key] = text.isdigit() and int(text) < SHORT_TTL_S
        return short

    @classmethod
    def read(
        cls, form: Form, current: AppSettings | None, lang: Lang, *, fields: tuple[str, ...]
    ) -> tuple[AppForm, AppSettings | None]:
        """The posted ``fields`` (``current`` None: a new app) and, when every
        one is valid, the settings they make."""
        result = cls()
        patch: dict[str, object] = {}
        for key in fields:
            if key in TEXTS:
                result.values[key] = patch[key] = form.get(key)
            elif key in FLAGS:
                result.values[key] = patch[key] = form.get(key) == "1"
            elif key in LINES:
                text = form.get(key)
                result.values[key] = text
                patch[key] = [line.strip() for line in text.splitlines() if line.strip()]
            elif key in NUMBERS:
                text = form.get(key).strip()
                result.values[key] = text
                if text.isascii() and text.isdigit() and len(text) < 19:
                    patch[key] = int(text)
                else:
                    whole = ApiError(Code.INVALID_PARAMETER, f"{key} must be a whole number")
                    result.errors[key] = error_text(whole, lang)
            elif key == "scopes":
                result.values[key] = patch[key] = form.getlist(key)
            elif key == "grants":
                kept = [g for g in (current.grants if current else ()) if g in OPERATOR_GRANTS]
                chosen = [g for g in form.getlist(key) if g not in OPERATOR_GRANTS]
                result.values[key] = patch[key] = [*chosen, *kept]
            elif key == "rate_limits":
                patch[key] = result._read_rate_limits(form, lang)
        result._check(patch, current, lang)
        if result.errors:
            result.pad_rows()
            return result, None
        return result, AppSettings.from_mapping(patch, current)

    def _read_rate_limits(self, form: Form, lang: Lang) -> list[dict[str, object]]:
        count = form.get("rate_limit_rows")
        rows = min(int(count), MAX_ROWS) if count.isdigit() and len(count) < 4 else 0
        limits: list[dict[str, object]] = []
        for i in range(rows):
            row = RateLimitRow(
                form.get(f"rl_methods_{i}"),
                form.get(f"rl_per_{i}", "app"),
                form.get(f"rl_limit_{i}"),
                form.get(f"rl_window_{i}"),
            )
            if row.blank:
                continue
            self.rate_limits.append(row)
            limit: dict[str, object] = {"methods": row.methods.strip() or "*", "per": row.per}
            for name, text in (("limit", row.limit), ("window_s", row.window_s)):
                text = text.strip()
                limit[name] = (
                    int(text) if text.isascii() and text.isdigit() and len(text) < 19 else text
                )
            self._limit_rows.append(len(self.rate_limits) - 1)
            limits.append(limit)
        return limits

    def _key(self, error: ApiError) -> str:
        """The form field an error names: ``rate_limits[2].limit`` is the
        third non-blank rate-limit row."""
        path = error.field or ""
        root = path.split("[", 1)[0].split(".", 1)[0]
        if root == "rate_limits" and path.startswith("rate_limits["):
            index = path[len("rate_limits[") :].split("]", 1)[0]
            if index.isdigit() and int(index) < len(self._limit_rows):
                return f"rate_limits.{self._limit_rows[int(index)]}"
        return root or "name"

    def _check(self, patch: Mapping[str, object], current: AppSettings | None, lang: Lang) -> None:
        """Each field on its own (every message at once), then the rules
        between fields."""
        for key, value in patch.items():
            try:
                SETTINGS_PATCH.check({key: value}, "")
            except ApiError as error:
                self.errors.setdefault(self._key(error), error_text(error, lang))
        if self.errors:
            return
        try:
            AppSettings.from_mapping(patch, current)
        except ApiError as error:
            self.errors.setdefault(self._key(error), error_text(error, lang))
