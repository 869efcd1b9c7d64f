"""Hostile input to the pure parts (issue 12): hypothesis on the XML renderer
(any JSON-like value is well-formed XML that parses back to the same
content), on the signer (the canonical string is deterministic and
order-independent; signing and verifying never raise, whatever the
signature sent) and on the form parser's worst escapes. The routes are in
test_hostile_requests.py, the methods in test_method_params.py."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from hypothesis import given
from hypothesis import strategies as st

from openplatform.errors import ApiError, Code
from openplatform.errors.render import api_error_response, render_body
from openplatform.gateway.form import FormParams, parse_urlencoded
from openplatform.gateway.signature import (
    SIGN_METHODS,
    SignMethod,
    canonical_string,
    sign,
    verify_signature,
)

# XML 1.0 cannot carry these even escaped: the renderer shows U+FFFD instead.
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
XML_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")

_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_text, children, max_size=4),
    max_leaves=25,
)


def _shown(value: object) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return ""
    return NOT_XML.sub("\ufffd", str(value))


def _same(element: ET.Element, name: str, value: object) -> None:
    """``element`` is ``value`` rendered under ``name`` (PROTOCOL §3.4): dict
    keys as elements (``item`` when a key is no XML name), list items as
    ``<item>``, scalars as text."""
    assert element.tag == (name if XML_NAME.fullmatch(name) else "item")
    children = list(element)
    if isinstance(value, dict):
        assert len(children) == len(value)
        for child, (key, item) in zip(children, value.items(), strict=True):
            _same(child, key, item)
    elif isinstance(value, list):
        assert len(children) == len(value)
        for child, item in zip(children, value, strict=True):
            _same(child, "item", item)
    else:
        assert children == []
        assert (element.text or "") == _shown(value)


@given(value=_json)
def test_any_json_value_renders_as_xml_that_parses_back(value: object) -> None:
    body = render_body(value, "xml", "data_getObject_response")
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n')
    _same(ET.fromstring(body), "data_getObject_response", value)


@given(pairs=st.lists(st.tuples(_text, _text), max_size=8), detail=_text)
def test_any_echoed_request_renders_as_an_xml_error(
    pairs: list[tuple[str, str]], detail: str
) -> None:
    response = api_error_response(
        ApiError(Code.INVALID_PARAMETER, detail or None),
        lang="zh",
        fmt="xml",
        request_id="r",
        request_args=pairs,
    )
    root = ET.fromstring(response.body)
    assert root.findtext("error_code") == "100"
    echoed = [(a.findtext("key"), a.findtext("value")) for a in root.iterfind("request_args/arg")]
    secret = {"sig", "access_token", "session_key", "client_secret", "password"}
    assert echoed == [(_shown(k), "***" if k in secret else _shown(v)) for k, v in pairs]


_params = st.dictionaries(_text.filter(lambda key: key != "sig"), _text, max_size=10)


@given(params=_params, order=st.randoms(use_true_random=False))
def test_the_canonical_string_is_deterministic_and_order_independent(
    params: dict[str, str], order: object
) -> None:
    pairs = list(params.items())
    shuffled = pairs[:]
    order.shuffle(shuffled)  # type: ignore[attr-defined]
    assert canonical_string(pairs) == canonical_string(shuffled) == canonical_string(pairs)
    assert canonical_string([*pairs, ("sig", "anything")]) == canonical_string(pairs)


@given(
    params=_params,
    secret=_text,
    sig=st.one_of(_text, st.text(alphabet="0123456789abcdef", min_size=32, max_size=64)),
    method=st.sampled_from(SIGN_METHODS),
)
def test_signing_and_verifying_never_raise(
    params: dict[str, str], secret: str, sig: str, method: SignMethod
) -> None:
    pairs = list(params.items())
    expected = sign(pairs, secret, method)
    assert re.fullmatch("[0-9a-f]{32}" if method == "md5" else "[0-9a-f]{64}", expected)
    assert verify_signature(pairs, sig, secret, method) is (sig == expected)


@given(
    data=st.lists(
        st.sampled_from(
            [b"%", b"%%", b"%0", b"%zz", b"%FF", b"%C0%AF", b"%ED%A0%80", b"+", b"=", b"&", b"a"]
        ),
        max_size=30,
    ).map(b"".join)
)
def test_broken_escapes_are_a_problem_never_an_exception(data: bytes) -> None:
    form = FormParams()
    parse_urlencoded(data, form)
    for key, value in form.pairs:
        (key + value).encode("utf-8")  # valid text, whatever came in
    if (
        b"%F" in data
        or b"%C0" in data
        or b"%ED" in data
        or re.search(rb"%(?![0-9A-Fa-f]{2})", data)
    ):
        assert form.problem is not None
