"""Parsing query strings and form bodies (PROTOCOL §3): strict UTF-8, never truncated."""

from __future__ import annotations

import tracemalloc

from hypothesis import given
from hypothesis import strategies as st

from openplatform.gateway.form import FormParams, parse_urlencoded


def parse(data: bytes) -> FormParams:
    form = FormParams()
    parse_urlencoded(data, form)
    return form


def test_plus_and_percent_20_are_both_spaces() -> None:
    form = parse(b"a=x+y&b=x%20y&c=%E4%BD%A0%E5%A5%BD+world%2B1%26%3D")
    assert form.pairs == [("a", "x y"), ("b", "x y"), ("c", "你好 world+1&=")]
    assert form.problem is None


def test_duplicates_and_order_are_kept() -> None:
    form = parse(b"a=1&b=2&a=3")
    assert form.pairs == [("a", "1"), ("b", "2"), ("a", "3")]


def test_empty_segments_skipped_and_bare_keys_are_empty_values() -> None:
    assert parse(b"&a=1&&b&").pairs == [("a", "1"), ("b", "")]


def test_invalid_utf8_is_a_problem_not_an_exception() -> None:
    form = parse(b"a=%FF%FE&b=2")
    assert form.problem == "a parameter value is not valid UTF-8"
    assert len(form.pairs) == 2


def test_encoded_surrogates_are_refused() -> None:
    assert parse(b"a=%ED%A0%80").problem is not None


def test_malformed_percent_escape_is_a_problem() -> None:
    assert parse(b"a=100%").problem == "malformed percent-encoding in a parameter value"
    assert parse(b"a%zz=1").problem == "malformed percent-encoding in a parameter name"


def test_long_values_are_not_truncated() -> None:
    value = "x" * 500_000
    assert parse(b"v=" + value.encode()).pairs == [("v", value)]


@given(st.binary(max_size=300))
def test_any_bytes_parse_without_error(data: bytes) -> None:
    form = parse(data)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in form.pairs)
    assert len(form.pairs) == sum(1 for segment in data.split(b"&") if segment)


EARLY = frozenset({"method", "format", "lang", "api_key"})


def test_past_keep_pairs_are_counted_and_only_the_first_wanted_ones_kept() -> None:
    form = FormParams(keep=3, also_keep=EARLY)
    parse_urlencoded(b"a=1&b=2&c=3&d=%FF&method=x&%6Dethod=y&form%61t=xml&&e=5&lang=zh", form)
    assert form.count == 9
    assert form.pairs == [
        ("a", "1"),
        ("b", "2"),
        ("c", "3"),
        ("method", "x"),
        ("format", "xml"),
        ("lang", "zh"),
    ]
    assert form.problem is None  # what was not decoded is no problem (check 3 refuses it)


def test_a_megabyte_of_parameters_is_counted_in_little_memory() -> None:
    """A megabyte of ``a&a&…`` (half a million pairs) once took some 36 MiB
    for a request that check 3 refuses anyway; here an eighth of it."""
    body = b"a&" * (64 * 1024)
    tracemalloc.start()
    try:
        form = FormParams(keep=51, also_keep=EARLY)
        parse_urlencoded(body, form)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (form.count, len(form.pairs)) == (64 * 1024, 51)
    assert peak < 256 * 1024
