"""The request shapes of :mod:`openplatform.json_schema`."""

from __future__ import annotations

import pytest

from openplatform.errors import ApiError, Code
from openplatform.json_schema import Text


def test_text_with_a_nul_is_100_naming_the_field() -> None:
    """No text column can hold a NUL: PostgreSQL refused the insert (code 1)."""
    with pytest.raises(ApiError) as caught:
        Text(max_length=40).check("Photo\x00Printer", "name")
    assert caught.value.code == Code.INVALID_PARAMETER
    assert caught.value.detail is not None and "name" in caught.value.detail
    assert Text(max_length=40).check("Photo Printer", "name") == "Photo Printer"
