"""call_id form and key (PROTOCOL §3.3 check 11)."""

from __future__ import annotations

import pytest

from openplatform.errors import ApiError, Code
from openplatform.gateway.call_id import call_id_key, check_call_id


@pytest.mark.parametrize("text", ["0", "1700000000001", "9" * 40, "007"])
def test_well_formed(text: str) -> None:
    assert check_call_id(text, required=False) == text


@pytest.mark.parametrize("text", ["", "-1", "1.5", "1e5", "٣", "9" * 41, " 1"])
def test_malformed_is_103(text: str) -> None:
    with pytest.raises(ApiError) as caught:
        check_call_id(text, required=False)
    assert caught.value.code == Code.INVALID_CALL_ID


def test_missing_is_103_only_when_required() -> None:
    assert check_call_id(None, required=False) is None
    with pytest.raises(ApiError):
        check_call_id(None, required=True)


def test_key_per_credential_without_revealing_it() -> None:
    app = call_id_key(session_key=None, access_token=None)
    token = call_id_key(session_key=None, access_token="secret-token")
    session = call_id_key(session_key="secret-session", access_token=None)
    assert len({app, token, session}) == 3
    assert "secret" not in token + session
