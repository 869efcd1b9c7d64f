"""The OAuth helpers through the real login and consent pages of a live
server: PKCE authorization URL, the redirect back, code exchange, refresh
with rotation (one network refresh however many callers), automatic refresh
of an expired access token, client credentials, OAuth errors by code."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest
import requests

from openplatform_client import (
    AccessDeniedError,
    AsyncClient,
    AuthorizationRequest,
    CallbackError,
    Client,
    InvalidClientError,
    InvalidGrantError,
    PermissionDeniedError,
    TokenSet,
    pkce_challenge,
)
from tests.client.live import LiveWorld
from tests.oauth.conftest import REDIRECT_URI
from tests.oauth.flows import authorize
from tests.oauth.live_server import sign_in_and_approve


class TokenRequests:
    """Counts the requests that reach the token endpoint."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> None:
        if request.url.path == "/oauth/2.0/token":
            with self._lock:
                self.count += 1

    async def hook(self, request: httpx.Request) -> None:
        self(request)


@contextmanager
def confidential(
    live: LiveWorld, counter: TokenRequests | None = None, **options: object
) -> Iterator[Client]:
    """A client of the test app whose token requests ``counter`` counts."""
    hooks = {"request": [counter]} if counter else {}
    with (
        httpx.Client(event_hooks=hooks) as http,  # type: ignore[arg-type]
        Client(
            live.app.api_key,
            live.app.secret,
            base_url=live.base_url,
            http_client=http,
            **options,  # type: ignore[arg-type]
        ) as client,
    ):
        yield client


def sign_in(client: Client, scope: str = "basic email") -> TokenSet:
    """What an app does: send the user to /authorize (the user signs in and
    approves), read the redirect back, exchange the code."""
    request = client.oauth.authorization_url(REDIRECT_URI, scope.split())
    redirect = sign_in_and_approve(requests.Session(), request.url)
    code = client.oauth.code_from_callback(redirect, request)
    return client.oauth.exchange_code(code, request)


def test_authorization_url_has_pkce_s256_and_state(live_world: LiveWorld) -> None:
    with confidential(live_world) as client:
        first = client.oauth.authorization_url(REDIRECT_URI, ["basic", "email"])
        second = client.oauth.authorization_url(REDIRECT_URI, "basic", state="mine")
    query = dict(parse_qsl(urlsplit(first.url).query))
    assert first.url.startswith(live_world.base_url + "/oauth/2.0/authorize?")
    assert query["client_id"] == live_world.app.api_key
    assert query["redirect_uri"] == REDIRECT_URI and query["scope"] == "basic email"
    assert query["code_challenge_method"] == "S256"
    assert query["code_challenge"] == pkce_challenge(first.code_verifier)
    assert query["state"] == first.state and len(first.state) >= 16
    assert 43 <= len(first.code_verifier) <= 128
    assert second.state == "mine" and second.code_verifier != first.code_verifier


def test_sign_in_exchange_and_call_as_the_user(live_world: LiveWorld) -> None:
    with confidential(live_world) as client:
        tokens = sign_in(client)
    assert tokens.token_type == "Bearer" and tokens.scope == ("basic", "email")
    assert tokens.refresh_token and tokens.session_key and tokens.session_secret
    assert tokens.expires_in == 3600 and not tokens.expired()
    with confidential(live_world, tokens=tokens) as as_user:
        assert as_user.users.get_logged_in_user() == live_world.alice.uid
        assert as_user.users.has_app_permission("email") is True
    with Client(access_token=tokens.access_token, base_url=live_world.base_url) as bearer:
        assert bearer.users.get_logged_in_user() == live_world.alice.uid
    with Client(
        live_world.app.api_key,
        session_key=tokens.session_key,
        session_secret=tokens.session_secret,
        base_url=live_world.base_url,
    ) as session:
        assert session.users.get_logged_in_user() == live_world.alice.uid


def test_concurrent_refreshes_of_one_token_make_one_network_refresh(
    live_world: LiveWorld,
) -> None:
    counter = TokenRequests()
    with confidential(live_world, counter) as client:
        tokens = sign_in(client)
        assert tokens.refresh_token is not None
        exchanged = counter.count
        barrier = threading.Barrier(8)
        results: list[TokenSet] = []

        def refresh() -> None:
            barrier.wait()
            results.append(client.oauth.refresh(tokens.refresh_token or ""))

        threads = [threading.Thread(target=refresh) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert counter.count == exchanged + 1
        assert len(results) == 8 and len(set(results)) == 1
        rotated = results[0]
        assert rotated.refresh_token not in (None, tokens.refresh_token)
        # Later callers with the old token get what it became, without the network.
        assert client.oauth.refresh(tokens.refresh_token) is rotated
        assert counter.count == exchanged + 1
        # The new refresh token is the one that works from now on.
        assert rotated.refresh_token is not None
        again = client.oauth.refresh(rotated.refresh_token)
        assert again.access_token != rotated.access_token
    # Elsewhere (no memory of the rotation), the old refresh token is refused.
    with confidential(live_world) as other, pytest.raises(InvalidGrantError) as caught:
        other.oauth.refresh(tokens.refresh_token)
    assert caught.value.code == 10002 and caught.value.error == "invalid_grant"
    assert caught.value.request_id and caught.value.message_zh == "非法的授权信息"


def test_an_expired_access_token_is_refreshed_once_and_the_calls_resent(
    live_world: LiveWorld,
) -> None:
    issued = asyncio.run(live_world.issue(live_world.alice, "basic", ttl_s=1))
    assert issued.refresh_token
    start = TokenSet(issued.access_token, "Bearer", 1, time.time() + 1, ("basic",),
                     issued.refresh_token)  # fmt: skip
    saved: list[TokenSet] = []
    counter = TokenRequests()
    time.sleep(1.5)
    with confidential(live_world, counter, tokens=start, on_tokens=saved.append) as client:
        uids: list[int] = []
        barrier = threading.Barrier(6)

        def call() -> None:
            barrier.wait()
            uids.append(client.users.get_logged_in_user())

        threads = [threading.Thread(target=call) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert uids == [live_world.alice.uid] * 6
        assert counter.count == 1
        assert len(saved) == 1 and client.tokens is saved[0]
        assert saved[0].refresh_token != start.refresh_token
        assert client.refresh_tokens().refresh_token not in (None, saved[0].refresh_token)
        assert len(saved) == 2


def test_client_credentials(live_world: LiveWorld) -> None:
    with confidential(live_world) as client:
        tokens = client.oauth.client_credentials()
    assert tokens.refresh_token is None and tokens.access_token
    with Client(access_token=tokens.access_token, base_url=live_world.base_url) as app_only:
        info = app_only.application.get_public_info(application_id=live_world.app.id)
        assert info.name == "SDK test app"
        with pytest.raises(PermissionDeniedError) as caught:
            app_only.users.get_logged_in_user()
        assert caught.value.code == 6


def test_oauth_errors_by_code(live_world: LiveWorld) -> None:
    wrong = Client(live_world.app.api_key, "wrong", base_url=live_world.base_url)
    with wrong, pytest.raises(InvalidClientError) as bad_client:
        wrong.oauth.client_credentials()
    assert (bad_client.value.code, bad_client.value.http_status) == (10001, 401)
    with confidential(live_world) as client:
        request = client.oauth.authorization_url(REDIRECT_URI, ["basic"])
        redirect = sign_in_and_approve(requests.Session(), request.url)
        code = client.oauth.code_from_callback(redirect, request)
        with pytest.raises(InvalidGrantError) as bad_verifier:
            client.oauth.exchange_code(code, redirect_uri=REDIRECT_URI, code_verifier="x" * 43)
        assert bad_verifier.value.code == 10002
        assert bad_verifier.value.message_en == "Invalid grant"
        stranger = AuthorizationRequest(request.url, "another-state", "v" * 43, REDIRECT_URI)
        with pytest.raises(CallbackError):
            client.oauth.code_from_callback(redirect, stranger)
        forged_iss = redirect.replace("iss=", "iss=https%3A%2F%2Fevil.example&was=")
        with pytest.raises(CallbackError):
            client.oauth.code_from_callback(forged_iss, request)


# --- the async twin --------------------------------------------------------------------


async def _sign_in_async(
    client: AsyncClient, *, approve: bool = True
) -> tuple[AuthorizationRequest, str]:
    # prompt=consent: the consent page even where an earlier test's consent is remembered
    request = client.oauth.authorization_url(REDIRECT_URI, ["basic", "email"], prompt="consent")
    params = dict(parse_qsl(urlsplit(request.url).query))
    async with httpx.AsyncClient(base_url=client._core.base_url) as browser:
        query = await authorize(browser, params, approve=approve)
    return request, f"{REDIRECT_URI}?{urlencode(query)}"


async def test_async_flow_and_concurrent_refresh(live_world: LiveWorld) -> None:
    counter = TokenRequests()
    async with (
        httpx.AsyncClient(event_hooks={"request": [counter.hook]}) as http,
        AsyncClient(
            live_world.app.api_key,
            live_world.app.secret,
            base_url=live_world.base_url,
            http_client=http,
        ) as client,
    ):
        request, redirect = await _sign_in_async(client)
        tokens = await client.oauth.exchange_code(
            client.oauth.code_from_callback(redirect, request), request
        )
        assert tokens.refresh_token
        exchanged = counter.count
        results = await asyncio.gather(
            *(client.oauth.refresh(tokens.refresh_token) for _ in range(8))
        )
        assert len(set(results)) == 1 and counter.count == exchanged + 1
        async with AsyncClient(
            live_world.app.api_key,
            live_world.app.secret,
            tokens=results[0],
            base_url=live_world.base_url,
        ) as as_user:
            assert await as_user.users.get_logged_in_user() == live_world.alice.uid
        app_token = await client.oauth.client_credentials()
        assert app_token.refresh_token is None


async def test_async_denied_consent_is_access_denied(live_world: LiveWorld) -> None:
    async with AsyncClient(
        live_world.app.api_key,
        live_world.app.secret,
        base_url=live_world.base_url,
    ) as client:
        request, redirect = await _sign_in_async(client, approve=False)
        with pytest.raises(AccessDeniedError) as caught:
            client.oauth.code_from_callback(redirect, request)
    assert caught.value.code == 10009 and caught.value.error == "access_denied"
