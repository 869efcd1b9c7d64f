"""The SDK against a live server (uvicorn, SQLite): every users/application
method, sync and async; md5 and HMAC signatures, session keys, bearer tokens;
errors classified by code with request id and both messages."""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest

from openplatform_client import (
    CATALOGUE,
    APIConnectionError,
    ApplicationInfo,
    ApplicationNotFoundError,
    AsyncClient,
    AuthenticationError,
    Client,
    InvalidParameterError,
    MethodNotFoundError,
    PermissionDeniedError,
    RateLimitError,
    SignMethod,
    UserInfo,
)
from tests.client.live import LiveWorld


def app_client(live: LiveWorld, **options: object) -> Client:
    return Client(live.app.api_key, live.app.secret, base_url=live.base_url, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("sign_method", ["md5", "hmac-sha256"])
def test_signed_app_calls_every_users_method(
    live_world: LiveWorld, sign_method: SignMethod
) -> None:
    alice, bob = live_world.alice, live_world.bob
    with app_client(live_world, sign_method=sign_method) as client:
        users = client.users.get_info(uids=[alice.uid], fields=["username", "display_name"])
        assert users == [UserInfo(uid=alice.uid, username="alice", display_name="Alice")]
        assert client.users.is_app_user(uid=alice.uid) is True
        assert client.users.is_app_user(uid=bob.uid) is False
        info = client.application.get_public_info(application_id=live_world.app.id)
        assert info == ApplicationInfo(
            live_world.app.id, live_world.app.api_key, "SDK test app", "Used by tests/client", ""
        )
        by_key = client.application.get_public_info(application_api_key=live_world.app.api_key)
        assert by_key == info
        # call(): lists as comma lists, the result as the server sent it
        raw = client.call("users.getInfo", uids=[alice.uid], fields=["uid", "username"])
        assert raw == [{"uid": alice.uid, "username": "alice"}]


def test_signed_calls_acting_for_a_user(live_world: LiveWorld) -> None:
    """api_key + secret + access_token: signed, on behalf of the token's user."""
    tokens = live_world.alice_full
    with app_client(live_world, access_token=tokens.access_token) as client:
        assert client.users.get_logged_in_user() == live_world.alice.uid
        assert client.users.has_app_permission("email") is True
        assert client.users.has_app_permission("data") is False
        (me,) = client.users.get_info(fields=["email", "mobile"])
        assert (me.email, me.mobile) == ("alice@example.com", "+8613800000000")
        assert client.users.is_app_user() is True


def test_session_key_signing(live_world: LiveWorld) -> None:
    tokens = live_world.alice_basic
    assert tokens.session_key and tokens.session_secret
    with Client(
        live_world.app.api_key,
        session_key=tokens.session_key,
        session_secret=tokens.session_secret,
        base_url=live_world.base_url,
        sign_method="hmac-sha256",
    ) as client:
        assert client.users.get_logged_in_user() == live_world.alice.uid
        assert client.users.has_app_permission("basic") is True


def test_bearer_calls(live_world: LiveWorld) -> None:
    with Client(
        access_token=live_world.alice_basic.access_token, base_url=live_world.base_url
    ) as c:
        assert c.users.get_logged_in_user() == live_world.alice.uid
        (me,) = c.users.get_info()
        assert me == UserInfo(uid=live_world.alice.uid, username="alice", display_name="Alice")


def test_concurrent_signed_calls_from_threads_all_succeed(live_world: LiveWorld) -> None:
    """call_id increases per credential; calls overtaking each other get 103,
    which the client answers with a new call_id."""
    results: list[int] = []
    with app_client(live_world, access_token=live_world.alice_basic.access_token) as client:

        def work() -> None:
            for _ in range(5):
                results.append(client.users.get_logged_in_user())

        threads = [threading.Thread(target=work) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert results == [live_world.alice.uid] * 30


def test_errors_carry_code_request_id_and_both_messages(live_world: LiveWorld) -> None:
    wrong = Client(live_world.app.api_key, "wrong-secret", base_url=live_world.base_url)
    with wrong, pytest.raises(AuthenticationError) as caught:
        wrong.users.get_info(uids=[1])
    error = caught.value
    assert error.code == 104
    assert error.http_status == 401
    assert error.request_id and len(error.request_id) >= 8
    assert (error.message, error.message_en, error.message_zh) == (
        "Incorrect signature",
        "Incorrect signature",
        "无效签名",
    )
    assert error.method == "users.getInfo"
    assert {"key": "sig", "value": "***"} in error.request_args
    assert "104" in str(error) and error.request_id in str(error)


def test_errors_in_chinese(live_world: LiveWorld) -> None:
    with (
        app_client(live_world, lang="zh") as client,
        pytest.raises(PermissionDeniedError) as caught,
    ):
        client.users.get_info(uids=[live_world.bob.uid])
    assert caught.value.code == 210
    assert caught.value.message == caught.value.message_zh == "用户不可见"
    assert caught.value.message_en == "User not visible"


def test_each_error_family(live_world: LiveWorld) -> None:
    alice = live_world.alice
    with app_client(live_world, access_token=live_world.alice_basic.access_token) as client:
        with pytest.raises(PermissionDeniedError) as denied:
            client.users.get_info(uids=[alice.uid], fields=["mobile"])
        assert (denied.value.code, denied.value.error_detail) == (211, "mobile")
        with pytest.raises(PermissionDeniedError) as no_email:
            client.users.get_info(uids=[alice.uid], fields=["email"])
        assert no_email.value.code == 212
        with pytest.raises(InvalidParameterError) as bad_uid:
            client.users.get_info(uids=[999999])
        assert bad_uid.value.code == 108
        with pytest.raises(InvalidParameterError) as bad_field:
            client.users.get_info(uids=[alice.uid], fields=["shoe_size"])
        assert bad_field.value.code == 109
        with pytest.raises(MethodNotFoundError) as unknown:
            client.call("users.noSuchMethod")
        assert (unknown.value.code, unknown.value.http_status) == (3, 404)
        with pytest.raises(ApplicationNotFoundError) as no_app:
            client.application.get_public_info(application_id=987654)
        assert no_app.value.code == 900
    with app_client(live_world) as app_only, pytest.raises(PermissionDeniedError) as app_only_6:
        app_only.users.get_logged_in_user()
    assert app_only_6.value.code == 6
    unknown = Client("no-such-key", "x", base_url=live_world.base_url)
    with unknown, pytest.raises(AuthenticationError) as unknown_key:
        unknown.users.get_info(uids=[1])
    assert unknown_key.value.code == 101
    bearer = Client(access_token="not-a-token", base_url=live_world.base_url)
    with bearer, pytest.raises(AuthenticationError) as bad_token:
        bearer.users.get_logged_in_user()
    assert (bad_token.value.code, bad_token.value.http_status) == (110, 401)


def test_the_catalogue_copy_is_the_servers(live_world: LiveWorld) -> None:
    served = httpx.get(live_world.base_url + "/api/error-codes").json()
    shipped = [
        {"code": e.code, "family": e.family, "error": e.error, "http_status": e.http_status,
         "en": e.en, "zh": e.zh}
        for e in CATALOGUE.values()
    ]  # fmt: skip
    assert sorted(shipped, key=lambda e: e["code"]) == sorted(served, key=lambda e: e["code"])


def test_no_server_is_a_connection_error() -> None:
    nowhere = Client("k", "s", base_url="http://127.0.0.1:9", max_retries=0)
    with nowhere, pytest.raises(APIConnectionError) as caught:
        nowhere.users.get_info(uids=[1])
    assert caught.value.request_sent is False


# --- the async twin --------------------------------------------------------------------


@pytest.mark.parametrize("sign_method", ["md5", "hmac-sha256"])
async def test_async_every_users_method(live_world: LiveWorld, sign_method: SignMethod) -> None:
    alice, bob = live_world.alice, live_world.bob
    async with AsyncClient(
        live_world.app.api_key,
        live_world.app.secret,
        access_token=live_world.alice_full.access_token,
        base_url=live_world.base_url,
        sign_method=sign_method,
    ) as client:
        assert await client.users.get_logged_in_user() == alice.uid
        assert await client.users.has_app_permission("mobile") is True
        assert await client.users.is_app_user(uid=alice.uid) is True
        assert await client.users.is_app_user(uid=bob.uid) is False
        (me,) = await client.users.get_info(fields=["username", "email"])
        assert me == UserInfo(uid=alice.uid, username="alice", email="alice@example.com")
        info = await client.application.get_public_info(application_id=live_world.app.id)
        assert info.api_key == live_world.app.api_key
        assert await client.call("users.getLoggedInUser") == {"uid": alice.uid}
        with pytest.raises(PermissionDeniedError) as caught:
            await client.users.get_info(uids=[bob.uid])
        assert caught.value.code == 210 and caught.value.request_id


async def test_async_session_key_and_bearer(live_world: LiveWorld) -> None:
    tokens = live_world.alice_basic
    assert tokens.session_key and tokens.session_secret
    async with AsyncClient(
        live_world.app.api_key,
        session_key=tokens.session_key,
        session_secret=tokens.session_secret,
        base_url=live_world.base_url,
    ) as client:
        assert await client.users.get_logged_in_user() == live_world.alice.uid
    async with AsyncClient(access_token=tokens.access_token, base_url=live_world.base_url) as c:
        assert await c.users.get_logged_in_user() == live_world.alice.uid
    async with AsyncClient(access_token="nope", base_url=live_world.base_url) as c:
        with pytest.raises(AuthenticationError) as caught:
            await c.users.get_logged_in_user()
        assert caught.value.code == 110


async def test_async_concurrent_signed_calls_all_succeed(live_world: LiveWorld) -> None:
    async with AsyncClient(
        live_world.app.api_key, live_world.app.secret, base_url=live_world.base_url
    ) as client:
        results = await asyncio.gather(
            *(client.users.get_info(uids=[live_world.alice.uid]) for _ in range(25))
        )
    assert all(users[0].username == "alice" for users in results)


def test_a_real_rate_limit_is_retried_after_its_retry_after(live_world: LiveWorld) -> None:
    """The live gateway's 4 and Retry-After: the client waits at least that
    long (an injected sleep records it; the window does not pass, so the
    retries are refused too and the error comes back with its retry_after)."""
    app = asyncio.run(
        live_world.new_app(rate_limits=[{"methods": "*", "per": "app", "limit": 2, "window_s": 30}])
    )
    sleeps: list[float] = []
    with Client(
        app.api_key, app.secret, base_url=live_world.base_url, sleep=sleeps.append
    ) as client:
        for _ in range(2):
            client.users.get_info(uids=[live_world.alice.uid])
        with pytest.raises(RateLimitError) as caught:
            # even a call marked not idempotent: 4 is answered before the method runs
            client.call("users.getInfo", idempotent=False, uids=[live_world.alice.uid])
    error = caught.value
    assert error.code == 4 and error.http_status == 429 and error.request_id
    assert error.retry_after is not None and 1 <= error.retry_after <= 30
    assert len(sleeps) == 2
    assert all(wait >= error.retry_after - 1 for wait in sleeps)
