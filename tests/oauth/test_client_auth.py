"""Client authentication (RFC 6749 §2.3): basic, post, none."""

from __future__ import annotations

import base64
from urllib.parse import quote_plus

import pytest

from openplatform.errors import Code, OAuthError
from openplatform.oauth.client_auth import (
    authenticate_client,
    parse_basic_credentials,
    parse_client_credentials,
)
from openplatform.oauth.params import OAuthParams
from tests.oauth.fakes import FakeStorage, make_client

NO_PARAMS = OAuthParams({})


def basic(client_id: str, secret: str, *, encode: bool = True) -> str:
    if encode:
        client_id, secret = quote_plus(client_id), quote_plus(secret)
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def test_basic_credentials_are_form_decoded() -> None:
    """RFC 6749 §2.3.1: `%5F` → `_`, `+` → space."""
    header = "Basic " + base64.b64encode(b"ak%5Fx:se+cr%3At").decode()
    assert parse_basic_credentials(header) == ("ak_x", "se cr:t")
    assert parse_basic_credentials(basic("a:b c", "p@ss:w+rd")) == ("a:b c", "p@ss:w+rd")


@pytest.mark.parametrize("header", ["Basic !!!", "Basic " + base64.b64encode(b"nocolon").decode()])
def test_malformed_basic_is_401_invalid_client(header: str) -> None:
    with pytest.raises(OAuthError) as info:
        parse_basic_credentials(header)
    assert info.value.code == Code.INVALID_CLIENT
    assert info.value.http_status == 401


def test_methods_are_recognised() -> None:
    params = OAuthParams.from_pairs([("client_id", "ak"), ("client_secret", "s")])
    assert parse_client_credentials(None, params).method == "client_secret_post"
    params = OAuthParams.from_pairs([("client_id", "ak")])
    assert parse_client_credentials(None, params).method == "none"
    assert parse_client_credentials(basic("ak", "s"), OAuthParams({})).method == (
        "client_secret_basic"
    )


def test_two_methods_at_once_is_invalid_request() -> None:
    params = OAuthParams.from_pairs([("client_secret", "s")])
    with pytest.raises(OAuthError) as info:
        parse_client_credentials(basic("ak", "s"), params)
    assert info.value.code == Code.INVALID_REQUEST


async def test_wrong_secret_is_invalid_client_and_401_with_basic() -> None:
    storage = FakeStorage([make_client("ak", "right")])
    with pytest.raises(OAuthError) as info:
        await authenticate_client(parse_client_credentials(basic("ak", "bad"), NO_PARAMS), storage)
    assert (info.value.code, info.value.http_status) == (Code.INVALID_CLIENT, 401)
    params = OAuthParams.from_pairs([("client_id", "ak"), ("client_secret", "wrong")])
    with pytest.raises(OAuthError) as info:
        await authenticate_client(parse_client_credentials(None, params), storage)
    assert (info.value.code, info.value.http_status) == (Code.INVALID_CLIENT, 400)


async def test_confidential_client_needs_its_secret_public_does_not() -> None:
    storage = FakeStorage([make_client("conf", "s"), make_client("pub", "s", public=True)])
    with pytest.raises(OAuthError):
        await authenticate_client(
            parse_client_credentials(None, OAuthParams.from_pairs([("client_id", "conf")])),
            storage,
        )
    client = await authenticate_client(
        parse_client_credentials(None, OAuthParams.from_pairs([("client_id", "pub")])), storage
    )
    assert client.client_id == "pub"


async def test_unknown_or_suspended_client_is_invalid_client() -> None:
    storage = FakeStorage([make_client("off", "s", active=False)])
    for client_id in ("off", "nobody"):
        credentials = parse_client_credentials(basic(client_id, "s"), NO_PARAMS)
        with pytest.raises(OAuthError) as info:
            await authenticate_client(credentials, storage)
        assert info.value.code == Code.INVALID_CLIENT
