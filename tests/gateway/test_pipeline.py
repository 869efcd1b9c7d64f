"""The checks of PROTOCOL §3.3 through HTTP, one test (at least) per code,
on SQLite and PostgreSQL, with memory and Redis shared state."""

from __future__ import annotations

import time
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update

from openplatform.errors import Code, entry
from openplatform.errors.internal import PLAIN_SENTENCES
from openplatform.gateway import set_maintenance
from openplatform.gateway.signature import sign
from openplatform.storage.models import AccessToken, utcnow
from tests.gateway.world import CLIENT_IP, World

ME = "users.getLoggedInUser"


def assert_error(
    response: httpx.Response, code: int, status: int | None = None
) -> dict[str, object]:
    body = response.json()
    assert body["error_code"] == code, body
    assert response.headers["X-Error-Code"] == str(code)
    assert response.status_code == (status if status is not None else entry(code).http_status)
    assert body["error_msg"] == entry(code).message("en", CLIENT_IP)
    assert response.headers["X-Request-Id"]
    return dict(body)


# --- success paths --------------------------------------------------------


async def test_signed_call_with_session_key(world: World) -> None:
    r = await world.client.call(
        ME,
        session_key=world.alice_basic.session_key,
        secret=world.alice_basic.session_secret,
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"uid": world.alice.uid}
    assert r.headers["X-Error-Code"] == "0"
    assert r.headers["X-Request-Id"]
    assert r.headers["content-type"].startswith("application/json")


async def test_signed_call_with_access_token(world: World) -> None:
    r = await world.client.call(ME, {"access_token": world.alice_basic.access_token})
    assert r.json() == {"uid": world.alice.uid}


@pytest.mark.parametrize("http_method", ["GET", "POST"])
@pytest.mark.parametrize("style", ["dotted", "slashes", "param"])
async def test_three_ways_to_name_the_method(world: World, http_method: str, style: str) -> None:
    client = world.client
    token = {"access_token": world.alice_basic.access_token}
    if style == "param":
        params = client.signed_params(ME, token, method_in_params=True)
        r = await client.raw("/rest/2.0/", params, http_method)  # type: ignore[arg-type]
    else:
        path = "/rest/2.0/users/getLoggedInUser" if style == "slashes" else f"/rest/2.0/{ME}"
        r = await client.call(ME, token, path=path, http_method=http_method)  # type: ignore[arg-type]
    assert r.status_code == 200, r.text
    assert r.json() == {"uid": world.alice.uid}


async def test_query_and_form_are_merged(world: World) -> None:
    params = world.client.signed_params(ME, {"access_token": world.alice_basic.access_token})
    query = {k: v for k, v in params.items() if k in ("api_key", "sig")}
    form = {k: v for k, v in params.items() if k not in query}
    r = await world.client.http.post(f"/rest/2.0/{ME}", params=query, data=form)
    assert r.json() == {"uid": world.alice.uid}


async def test_hmac_sha256(world: World) -> None:
    r = await world.client.call(
        ME, {"access_token": world.alice_basic.access_token}, sign_method="hmac-sha256"
    )
    assert r.json() == {"uid": world.alice.uid}


async def test_bearer_call_header_and_param(world: World) -> None:
    r = await world.client.bearer(ME, world.alice_basic.access_token)
    assert r.json() == {"uid": world.alice.uid}
    r = await world.client.raw(f"/rest/2.0/{ME}", {"access_token": world.alice_basic.access_token})
    assert r.json() == {"uid": world.alice.uid}


async def test_signed_call_with_a_bearer_header_is_100(world: World) -> None:
    """PROTOCOL §3.1: the header is outside the signature, so a captured
    app-only signed request plus another user's token must not act as them."""
    captured = world.client.signed_params(ME)  # app-only: it would answer 6
    other_users_token = {"Authorization": f"Bearer {world.alice_full.access_token}"}
    r = await world.client.raw(f"/rest/2.0/{ME}", captured, headers=other_users_token)
    assert_error(r, 100, 400)
    assert "Authorization header" in r.json()["error_detail"]
    signed_as_alice = world.client.signed_params(
        ME, {"access_token": world.alice_basic.access_token}
    )
    same_token = {"Authorization": f"Bearer {world.alice_basic.access_token}"}
    assert_error(
        await world.client.raw(f"/rest/2.0/{ME}", signed_as_alice, headers=same_token), 100
    )


async def test_local_time_timestamp(world: World) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    r = await world.client.call(
        ME, {"access_token": world.alice_basic.access_token, "timestamp": stamp}
    )
    assert r.json() == {"uid": world.alice.uid}


# --- 1 ---------------------------------------------------------------------


async def test_1_unexpected_exception(world: World, caplog: pytest.LogCaptureFixture) -> None:
    r = await world.client.call("test.raise")
    body = assert_error(r, 1, 500)
    request_id = r.headers["X-Request-Id"]
    assert body["error_detail"] == f"{PLAIN_SENTENCES[Code.UNKNOWN]} (request id {request_id})"
    assert "Traceback" not in r.text and "RuntimeError" not in r.text
    assert "test.raise was called" in caplog.text  # the traceback is in the server log


# --- 2, 3 --------------------------------------------------------------------


async def test_2_platform_in_maintenance(world: World) -> None:
    await set_maintenance(world.services, enabled=True, methods=[])
    r = await world.client.call(ME, {"access_token": world.alice_basic.access_token})
    assert_error(r, 2, 503)
    assert r.headers["Retry-After"]
    await set_maintenance(world.services, enabled=False, methods=[])
    r = await world.client.call(ME, {"access_token": world.alice_basic.access_token})
    assert r.status_code == 200


async def test_2_one_method_in_maintenance(world: World) -> None:
    await set_maintenance(world.services, enabled=True, methods=[ME])
    assert_error(await world.client.call(ME, {"access_token": world.alice_basic.access_token}), 2)
    r = await world.client.call("users.isAppUser", {"uid": str(world.alice.uid)})
    assert r.status_code == 200, r.text


async def test_3_unknown_method(world: World) -> None:
    assert_error(await world.client.call("users.noSuchThing"), 3, 404)
    assert_error(await world.client.raw("/rest/2.0/", {"api_key": world.app.api_key}), 3)


# --- 4 ---------------------------------------------------------------------


async def test_4_rate_limit_per_app_with_headers(world: World) -> None:
    await world.configure(
        rate_limits=[{"methods": "users.*", "per": "app", "limit": 3, "window_s": 3600}]
    )
    token = {"access_token": world.alice_basic.access_token}
    remaining = []
    for _ in range(3):
        r = await world.client.call(ME, token)
        assert r.status_code == 200, r.text
        assert r.headers["X-RateLimit-Limit"] == "3"
        remaining.append(int(r.headers["X-RateLimit-Remaining"]))
        assert int(r.headers["X-RateLimit-Reset"]) > 0
    assert remaining == [2, 1, 0]
    r = await world.client.call(ME, token)
    assert_error(r, 4, 429)
    assert int(r.headers["Retry-After"]) >= 1
    assert r.headers["X-RateLimit-Remaining"] == "0"
    # a method the pattern does not match is not limited
    r = await world.client.call("application.getPublicInfo", {"application_id": str(world.app.id)})
    assert r.status_code == 200


async def test_4_rate_limit_per_user_and_per_ip(world: World) -> None:
    await world.configure(
        rate_limits=[
            {"methods": "*", "per": "user", "limit": 1, "window_s": 3600},
            {"methods": "*", "per": "ip", "limit": 2, "window_s": 3600},
        ]
    )
    other = await world.issue(world.bob, "basic")
    assert (await world.client.bearer(ME, world.alice_basic.access_token)).status_code == 200
    assert_error(await world.client.bearer(ME, world.alice_basic.access_token), 4)
    assert (await world.client.bearer(ME, other.access_token)).status_code == 200
    # the IP limit (2) is now spent as well
    r = await world.client.call("application.getPublicInfo", {"application_id": str(world.app.id)})
    assert_error(r, 4)


# --- 5, 7 -------------------------------------------------------------------


async def test_5_ip_not_in_allowlist(world: World) -> None:
    await world.configure(ip_allowlist=["198.51.100.0/24", "2001:db8::/32"])
    r = await world.client.call(ME, {"access_token": world.alice_basic.access_token})
    body = assert_error(r, 5, 403)
    assert body["error_msg"] == f"Unauthorized client IP address:{CLIENT_IP}"
    assert CLIENT_IP in body["error_detail"]
    r = await world.client.call(ME, {"access_token": world.alice_basic.access_token, "lang": "zh"})
    body = r.json()
    assert (r.status_code, body["error_code"]) == (403, 5)
    assert body["error_msg"] == entry(5).zh
    assert CLIENT_IP in body["error_detail"]
    await world.configure(ip_allowlist=["192.0.2.0/24"])
    r = await world.client.call(ME, {"access_token": world.alice_basic.access_token})
    assert r.status_code == 200


async def test_7_referer(world: World) -> None:
    await world.configure(referer_allowlist=["*.example.com"])
    token = {"access_token": world.alice_basic.access_token}
    assert_error(await world.client.call(ME, token), 7, 403)
    bad = {"Referer": "https://example.com.evil.test/x"}
    assert_error(await world.client.call(ME, token, headers=bad), 7)
    good = {"Referer": "https://www.example.com/page"}
    assert (await world.client.call(ME, token, headers=good)).status_code == 200
    await world.configure(allow_missing_referer=True)
    assert (await world.client.call(ME, token)).status_code == 200


# --- 100, 105, 114 ------------------------------------------------------------


async def test_105_too_many_parameters(world: World) -> None:
    params = {f"p{i}": "x" for i in range(60)}
    body = assert_error(await world.client.call(ME, params), 105, 400)
    assert "limit is 50" in str(body["error_detail"])


async def test_105_counts_duplicates_and_is_never_truncated(world: World) -> None:
    pairs = [("api_key", world.app.api_key)] + [("x", str(i)) for i in range(51)]
    assert_error(await world.client.raw(f"/rest/2.0/{ME}", pairs), 105)


async def test_105_for_a_megabyte_of_parameters_answers_briefly(world: World) -> None:
    r = await world.client.http.post(
        f"/rest/2.0/{ME}",
        content=b"a&" * (512 * 1024 - 1),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    body = assert_error(r, 105)
    assert "524287 parameters given" in str(body["error_detail"])
    assert len(body["request_args"]) == 50  # type: ignore[arg-type]


async def test_105_reads_method_and_format_wherever_they_are(world: World) -> None:
    """Past the limit the parameters are counted, not kept — but the method,
    format and language the answer needs are, wherever they come."""
    r = await world.client.http.post(
        "/rest/2.0/",
        content=b"a&" * 60_000 + f"method={ME}&format=xml&lang=zh".encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (r.status_code, r.headers["X-Error-Code"]) == (400, "105")
    assert r.text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    assert "60003 parameters given" in r.text
    assert entry(105).zh in r.text


async def test_100_duplicate_parameter(world: World) -> None:
    r = await world.client.http.post(
        f"/rest/2.0/{ME}?api_key={world.app.api_key}", data={"api_key": world.app.api_key}
    )
    body = assert_error(r, 100, 400)
    assert "api_key" in str(body["error_detail"])


@pytest.mark.parametrize(
    "query",
    [
        b"api_key=k&v=1.0",
        b"api_key=k&format=html",
        b"api_key=%FF",
        b"api_key=k&method=users.getInfo",
        b"api_key=k&x=%zz",
    ],
)
async def test_100_malformed(world: World, query: bytes) -> None:
    r = await world.client.http.get(f"/rest/2.0/{ME}?" + query.decode())
    assert_error(r, 100)


async def test_100_body_over_1_mib(world: World) -> None:
    body = b"api_key=k&big=" + b"x" * (1024 * 1024)
    r = await world.client.http.post(
        f"/rest/2.0/{ME}",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_error(r, 100)


async def test_100_value_over_its_limit(world: World) -> None:
    r = await world.client.call(ME, {"access_token": "t" * 600})
    assert_error(r, 100)


async def test_114_malformed_client_ip(world: World) -> None:
    assert_error(await world.client.call(ME, {"client_ip": "300.1.1.1"}), 114, 400)


# --- 101, 900 -----------------------------------------------------------------


async def test_101_unknown_api_key(world: World) -> None:
    world.client.api_key = "ak_does_not_exist"
    assert_error(await world.client.call(ME), 101, 401)


async def test_101_no_credentials(world: World) -> None:
    assert_error(await world.client.raw(f"/rest/2.0/{ME}", {}), 101)


async def test_900_suspended_app_and_its_tokens(world: World) -> None:
    await world.configure(status="suspended")
    assert_error(await world.client.call(ME), 900, 404)
    assert_error(await world.client.bearer(ME, world.alice_basic.access_token), 900)


async def test_deleted_app_is_900_and_its_tokens_110(world: World) -> None:
    await world.services.database.apps.delete(world.app.id)  # every process hears of it
    assert_error(await world.client.call(ME), 900)
    assert_error(await world.client.bearer(ME, world.alice_basic.access_token), 110)


# --- 102, 104, 106, 112 -------------------------------------------------------


async def test_104_wrong_signature(world: World) -> None:
    params = world.client.signed_params(ME, {"access_token": world.alice_basic.access_token})
    params["sig"] = "0" * 32
    body = assert_error(await world.client.raw(f"/rest/2.0/{ME}", params), 104, 401)
    assert "error_detail" not in body  # never reveals the expected value
    assert {"key": "sig", "value": "***"} in body["request_args"]  # type: ignore[operator]
    assert {"key": "access_token", "value": "***"} in body["request_args"]  # type: ignore[operator]


async def test_104_wrong_secret_and_method_is_always_signed(world: World) -> None:
    assert_error(await world.client.call(ME, secret="not-the-secret"), 104)
    # signed for one method, sent to another
    params = world.client.signed_params("users.isAppUser", {"uid": "1"})
    assert_error(await world.client.raw(f"/rest/2.0/{ME}", params), 104)


async def test_104_unsigned_calls(world: World) -> None:
    assert_error(await world.client.raw(f"/rest/2.0/{ME}", {"api_key": world.app.api_key}), 104)
    await world.configure(require_signature=True)
    assert_error(await world.client.bearer(ME, world.alice_basic.access_token), 104)


async def test_106_unknown_sign_method(world: World) -> None:
    params = world.client.signed_params(ME, {"sign_method": "sha1"})
    assert_error(await world.client.raw(f"/rest/2.0/{ME}", params), 106, 400)


async def test_102_unknown_session_key(world: World) -> None:
    r = await world.client.call(ME, session_key="sk_nope", secret="whatever")
    assert_error(r, 102, 401)


async def test_102_other_apps_session_and_revoked_session(world: World) -> None:
    db = world.services.database
    from openplatform.storage.apps import AppSettings
    from tests.gateway.world import issue

    other_app = await db.apps.create(AppSettings(name="other"))
    other = await issue(db, other_app, world.alice, "basic")
    r = await world.client.call(ME, session_key=other.session_key, secret=other.session_secret)
    assert_error(r, 102)
    await db.tokens.revoke_access_token(world.alice_basic.access_token, world.app.id)
    session = world.alice_basic
    r = await world.client.call(ME, session_key=session.session_key, secret=session.session_secret)
    assert_error(r, 102)


async def _expire(world: World, access_token_id: int) -> None:
    async with world.services.database.sessions.write() as session:
        await session.execute(
            update(AccessToken)
            .where(AccessToken.id == access_token_id)
            .values(expires_at=utcnow() - timedelta(seconds=5))
        )


async def test_112_expired_session_key(world: World) -> None:
    await _expire(world, world.alice_basic.access_token_id)
    session = world.alice_basic
    r = await world.client.call(ME, session_key=session.session_key, secret=session.session_secret)
    assert_error(r, 112, 401)


async def test_session_is_looked_up_before_the_signature(world: World) -> None:
    # an unknown session with a wrong signature is 102, not 104
    r = await world.client.call(ME, session_key="sk_unknown", secret="wrong")
    assert_error(r, 102)


# --- 107 -----------------------------------------------------------------


@pytest.mark.parametrize("stamp", [None, "yesterday", str(int(time.time()) - 3600)])
async def test_107_timestamp(world: World, stamp: str | None) -> None:
    params = {"api_key": world.app.api_key, "call_id": "1"}
    if stamp is not None:
        params["timestamp"] = stamp
    params["sig"] = sign([*params.items(), ("method", ME)], world.app.secret)
    body = assert_error(await world.client.raw(f"/rest/2.0/{ME}", params), 107, 400)
    server_time = int(time.time())
    assert f"server time {server_time}" in str(body["error_detail"]) or (
        f"server time {server_time - 1}" in str(body["error_detail"])
    )


async def test_107_replay_of_the_same_signed_request(world: World) -> None:
    params = world.client.signed_params(ME, {"access_token": world.alice_basic.access_token})
    assert (await world.client.raw(f"/rest/2.0/{ME}", params)).status_code == 200
    assert_error(await world.client.raw(f"/rest/2.0/{ME}", params), 107)


# --- 103 -----------------------------------------------------------------


async def test_103_call_id_malformed_reused_or_missing(world: World) -> None:
    token = {"access_token": world.alice_basic.access_token}
    calls = iter(range(100))

    async def call(call_id: str | None) -> httpx.Response:
        # vary the request, so that none is a replay of another
        params = {**token, "n": str(next(calls))}
        if call_id is None:
            return await world.client.call(ME, params, call_id=False)
        return await world.client.call(ME, {**params, "call_id": call_id}, call_id=False)

    assert_error(await call("12a"), 103, 400)
    assert_error(await call("-5"), 103)
    assert_error(await call("1" * 41), 103)
    assert (await call("5000")).status_code == 200
    assert_error(await call("5000"), 103)
    assert_error(await call("4999"), 103)
    assert_error(await call("04999"), 103)
    assert (await call("5001")).status_code == 200
    # without call_id: fine unless the app requires it
    assert (await call(None)).status_code == 200
    await world.configure(require_call_id=True)
    assert_error(await call(None), 103)


async def test_call_id_is_per_credential(world: World) -> None:
    full = {"access_token": world.alice_full.access_token}
    basic = {"access_token": world.alice_basic.access_token}
    assert (
        await world.client.call(ME, {**basic, "call_id": "900"}, call_id=False)
    ).status_code == 200
    assert (
        await world.client.call(ME, {**full, "call_id": "100"}, call_id=False)
    ).status_code == 200


# --- 110, 111 -------------------------------------------------------------


async def test_110_unknown_or_revoked_token(world: World) -> None:
    assert_error(await world.client.bearer(ME, "no-such-token"), 110, 401)
    assert_error(await world.client.call(ME, {"access_token": "no-such-token"}), 110)
    await world.services.database.tokens.revoke_access_token(
        world.alice_basic.access_token, world.app.id
    )
    # revocation is immediate: tokens are never cached
    assert_error(await world.client.bearer(ME, world.alice_basic.access_token), 110)


async def test_111_expired_token(world: World) -> None:
    await _expire(world, world.alice_basic.access_token_id)
    assert_error(await world.client.bearer(ME, world.alice_basic.access_token), 111, 401)
    assert_error(await world.client.call(ME, {"access_token": world.alice_basic.access_token}), 111)


async def test_invalid_token_consumes_no_rate_limit(world: World) -> None:
    await world.configure(
        rate_limits=[{"methods": "*", "per": "app", "limit": 1, "window_s": 3600}]
    )
    assert_error(await world.client.bearer(ME, "no-such-token"), 110)
    assert_error(await world.client.call(ME, {"access_token": "no-such-token"}), 110)
    assert (await world.client.bearer(ME, world.alice_basic.access_token)).status_code == 200


# --- rendering -------------------------------------------------------------


async def test_lang_zh_and_accept_language(world: World) -> None:
    r = await world.client.call("users.noSuchThing", {"lang": "zh"})
    assert r.json()["error_msg"] == entry(3).zh
    r = await world.client.call("users.noSuchThing", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert r.json()["error_msg"] == entry(3).zh
    r = await world.client.call(
        "users.noSuchThing", {"lang": "en"}, headers={"Accept-Language": "zh-CN"}
    )
    assert r.json()["error_msg"] == entry(3).en


async def test_legacy_http_200(world: World) -> None:
    await world.configure(legacy_http_200=True)
    r = await world.client.call(ME, secret="wrong")
    assert r.status_code == 200
    assert r.json()["error_code"] == 104
    assert r.headers["X-Error-Code"] == "104"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ([("method", "users.noSuchThing")], 3),  # check 2
        ([("method", ME), ("uids", "1"), ("uids", "2")], 100),  # check 4
        ([("method", ME), ("v", "3.0")], 100),  # check 4
    ],
)
async def test_legacy_http_200_covers_checks_before_the_app_is_known(
    world: World, params: list[tuple[str, str]], code: int
) -> None:
    """PROTOCOL §1: *every* API error of a legacy app is HTTP 200."""
    await world.configure(legacy_http_200=True)
    r = await world.client.raw("/rest/2.0/", [("api_key", world.app.api_key), *params])
    assert r.status_code == 200
    assert r.json()["error_code"] == code
    other = await world.client.raw("/rest/2.0/", [("api_key", "ak_unknown"), *params])
    assert other.status_code != 200
    assert other.json()["error_code"] == code


async def test_request_args_echo_the_parameters(world: World) -> None:
    r = await world.client.call("users.noSuchThing", {"q": "你好"})
    args = r.json()["request_args"]
    assert {"key": "q", "value": "你好"} in args
    assert {"key": "api_key", "value": world.app.api_key} in args


async def test_other_http_methods_are_refused_in_the_catalogue_s_words(world: World) -> None:
    r = await world.client.http.put(f"/rest/2.0/{ME}")
    assert_error(r, 100)
