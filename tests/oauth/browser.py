"""A minimal browser for the /authorize pages: find a form, keep its hidden
fields, submit it — the way a person's browser would."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit


@dataclass
class Form:
    action: str
    fields: list[tuple[str, str]] = field(default_factory=list)
    buttons: list[tuple[str, str]] = field(default_factory=list)

    def data(self, **values: str) -> list[tuple[str, str]]:
        """The hidden fields plus ``values`` (text inputs or the button pressed)."""
        kept = [(k, v) for k, v in self.fields if k not in values]
        return kept + list(values.items())


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(Form(action=attr.get("action", "")))
        elif tag == "input" and self.forms and attr.get("type") == "hidden":
            self.forms[-1].fields.append((attr["name"], attr.get("value", "")))
        elif tag == "button" and self.forms and "name" in attr:
            self.forms[-1].buttons.append((attr["name"], attr.get("value", "")))


def find_form(html: str) -> Form:
    parser = _FormParser()
    parser.feed(html)
    assert parser.forms, f"no form in page: {html[:500]}"
    return parser.forms[0]


def query_of(location: str) -> dict[str, str]:
    """The query parameters of a redirect location (each given once)."""
    parsed = parse_qs(urlsplit(location).query, keep_blank_values=True)
    assert all(len(v) == 1 for v in parsed.values()), parsed
    return {k: v[0] for k, v in parsed.items()}
