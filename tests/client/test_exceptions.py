"""Errors are classified by code alone, carry both messages, and the SDK's
catalogue copy is the server's catalogue."""

from __future__ import annotations

import pickle
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
import pytest

import openplatform_client as sdk
from openplatform.errors import CATALOGUE as SERVER_CATALOGUE
from openplatform_client import CATALOGUE, APIError, APIResponseError, Client, OAuthError
from openplatform_client._exceptions import api_error, oauth_error
from tests.client.fake_gateway import API_KEY, BASE_URL, SECRET, FakeGateway, error

FAMILIES = {
    1: sdk.UnknownError,
    2: sdk.ServiceUnavailableError,
    3: sdk.MethodNotFoundError,
    4: sdk.RateLimitError,
    5: sdk.PermissionDeniedError,
    6: sdk.PermissionDeniedError,
    7: sdk.PermissionDeniedError,
    100: sdk.InvalidParameterError,
    101: sdk.AuthenticationError,
    102: sdk.AuthenticationError,
    103: sdk.AuthenticationError,
    104: sdk.AuthenticationError,
    105: sdk.InvalidParameterError,
    106: sdk.AuthenticationError,
    107: sdk.AuthenticationError,
    108: sdk.InvalidParameterError,
    109: sdk.InvalidParameterError,
    110: sdk.AuthenticationError,
    111: sdk.AuthenticationError,
    112: sdk.AuthenticationError,
    114: sdk.InvalidParameterError,
    210: sdk.PermissionDeniedError,
    211: sdk.PermissionDeniedError,
    212: sdk.PermissionDeniedError,
    800: sdk.DataStoreError,
    801: sdk.InvalidOperationError,
    802: sdk.QuotaExceededError,
    803: sdk.ObjectNotFoundError,
    804: sdk.ObjectExistsError,
    805: sdk.DatabaseError,
    900: sdk.ApplicationNotFoundError,
    950: sdk.BatchError,
    951: sdk.BatchError,
    952: sdk.BatchError,
    953: sdk.BatchError,
    10000: sdk.InvalidRequestError,
    10001: sdk.InvalidClientError,
    10002: sdk.InvalidGrantError,
    10003: sdk.UnauthorizedClientError,
    10004: sdk.UnsupportedGrantTypeError,
    10005: sdk.InvalidScopeError,
    10006: sdk.ExpiredTokenError,
    10007: sdk.RedirectURIMismatchError,
    10008: sdk.UnsupportedResponseTypeError,
    10009: sdk.AccessDeniedError,
}


def test_the_catalogue_copy_is_the_servers_data() -> None:
    assert set(CATALOGUE) == set(SERVER_CATALOGUE)
    for code, entry in SERVER_CATALOGUE.items():
        ours = CATALOGUE[code]
        assert (ours.family, ours.error, ours.http_status, ours.en, ours.zh) == (
            entry.family, entry.error, entry.http_status, entry.en, entry.zh,
        )  # fmt: skip


@pytest.mark.parametrize("code", sorted(c for c in CATALOGUE if c != 0))
def test_every_code_has_its_family(code: int) -> None:
    entry = CATALOGUE[code]
    # The message text is deliberately wrong: the class follows the code.
    if entry.family == "oauth":
        error: Exception = oauth_error(code, "whatever", "misleading text")
        assert isinstance(error, OAuthError) and error.error == entry.error
    else:
        error = api_error(code, "Open api request limit reached")
        assert isinstance(error, APIError)
    assert type(error) is FAMILIES[code]
    assert error.code == code and error.http_status == entry.http_status  # type: ignore[attr-defined]


def test_both_messages_whatever_language_the_server_used() -> None:
    english = api_error(805, "A database error occurred. Please try again", lang="en")
    chinese = api_error(805, "数据库操作出错,请重试", lang="zh")
    for either in (english, chinese):
        assert either.message_en == "A database error occurred. Please try again"
        assert either.message_zh == "数据库操作出错,请重试"
    ip = api_error(5, "Unauthorized client IP address:203.0.113.9")
    assert ip.message_en == "Unauthorized client IP address:203.0.113.9"
    assert ip.message_zh == "请求来自未经授权的IP地址"
    unknown = api_error(4242, "Brand new")
    assert type(unknown) is APIError and unknown.message_en == unknown.message_zh == "Brand new"


def test_oauth_errors_without_a_code_use_the_rfc_name() -> None:
    assert type(oauth_error(None, "invalid_grant")) is sdk.InvalidGrantError
    assert oauth_error(None, "invalid_grant").code == 10002


def test_answers_that_are_not_the_protocols() -> None:
    fake = FakeGateway([httpx.Response(502, text="<html>Bad gateway</html>")])
    client = Client(
        API_KEY, SECRET, base_url=BASE_URL, http_client=httpx.Client(transport=fake.transport())
    )
    with pytest.raises(APIResponseError) as caught:
        client.users.get_info(uids=[1])
    assert caught.value.http_status == 502 and "Bad gateway" in caught.value.body
    fake.replies[:] = [error(1, detail="request id abc")]
    with pytest.raises(sdk.UnknownError) as unknown:
        client.users.get_info(uids=[1])
    assert unknown.value.error_detail == "request id abc"


def test_the_sdk_stands_alone() -> None:
    """httpx is its only dependency and it never imports the server."""
    project = tomllib.loads(
        (Path(__file__).resolve().parents[2] / "client" / "pyproject.toml").read_text()
    )["project"]
    assert [d.split(">")[0] for d in project["dependencies"]] == ["httpx"]
    code = (
        "import sys; sys.modules['openplatform'] = None\n"
        "import openplatform_client as c\n"
        "assert all(hasattr(c, name) for name in c.__all__)\n"
        "assert not [m for m in sys.modules if m.startswith('openplatform.')]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_errors_survive_pickling() -> None:
    """For multiprocessing and task queues."""
    error = api_error(4, "Open api request limit reached", request_id="r1", retry_after=2.0)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is sdk.RateLimitError and str(copy) == str(error)
    assert (copy.code, copy.request_id, copy.retry_after, copy.message_zh) == (
        4, "r1", 2.0, "接口调用次数已达到设定的上限",
    )  # fmt: skip
    grant = pickle.loads(pickle.dumps(oauth_error(10002, "invalid_grant")))
    assert type(grant) is sdk.InvalidGrantError and grant.error_description == "Invalid grant"
    lost = pickle.loads(pickle.dumps(sdk.APIConnectionError("reset", request_sent=True)))
    assert lost.request_sent is True
