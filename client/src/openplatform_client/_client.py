"""``Client`` and ``AsyncClient``: one core, two ways of sending.

:class:`_ClientCore` holds everything that does not wait on the network —
credentials, the signature of every attempt, the token set and its
replacement, the retry policy, the batch slot — so the two clients differ
only in ``def`` versus ``async def``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from types import TracebackType
from typing import Any, TypeVar

import httpx

from openplatform_client._batch import Batch, batch_error
from openplatform_client._call_ids import CallIdSequence
from openplatform_client._calls import PreparedCall, raw_call
from openplatform_client._catalogue import Lang
from openplatform_client._encoding import ParamValue, encode_params
from openplatform_client._exceptions import OpenPlatformError
from openplatform_client._methods import Application, Data, Users
from openplatform_client._oauth import AsyncOAuth, OAuth, OAuthSettings, TokenSet
from openplatform_client._retries import RetryPolicy
from openplatform_client._signing import SignMethod, sign
from openplatform_client._wire import (
    ApiAnswer,
    WireRequest,
    map_transport_errors,
    read_api_answer,
)

__all__ = ["DEFAULT_BASE_URL", "AsyncClient", "Client"]

T = TypeVar("T")

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
API_PATH = "/rest/2.0/"
_ACCESS_TOKEN_EXPIRED = 111
_USER_AGENT = "openplatform-client/0.1.0"


class _ClientCore:
    """What both clients share: credentials, signing, tokens, retries, batches."""

    def __init__(
        self,
        *,
        api_key: str | None,
        secret: str | None,
        session_key: str | None,
        session_secret: str | None,
        access_token: str | None,
        tokens: TokenSet | None,
        on_tokens: Callable[[TokenSet], None] | None,
        base_url: str,
        issuer: str | None,
        sign_method: SignMethod,
        lang: Lang | None,
        retry_policy: RetryPolicy,
    ) -> None:
        if secret is not None and not api_key:
            raise ValueError("a secret needs its api_key")
        if (session_key is None) != (session_secret is None):
            raise ValueError("session_key and session_secret go together")
        if session_key is not None and not api_key:
            raise ValueError("a session_key needs the app's api_key")
        if access_token is not None and tokens is not None:
            raise ValueError("give an access_token or tokens, not both")
        if sign_method not in ("md5", "hmac-sha256"):
            raise ValueError("sign_method is md5 or hmac-sha256")
        self.api_key = api_key
        self.secret = secret
        self.session_key = session_key
        self.session_secret = session_secret
        self.sign_method = sign_method
        self.lang: Lang = lang or "en"
        self._send_lang = lang is not None
        self.base_url = base_url.rstrip("/")
        self.retry_policy = retry_policy
        self.oauth_settings = OAuthSettings(
            self.base_url, api_key, secret, (issuer or self.base_url), self.lang
        )
        if access_token is not None:
            tokens = TokenSet(access_token, "Bearer", 0, float("inf"), ())
        self._tokens = tokens
        self._on_tokens = on_tokens
        self._tokens_lock = threading.Lock()
        self._call_ids = CallIdSequence()
        self._batch: Batch | None = None
        self._batch_lock = threading.Lock()

    # --- tokens ---------------------------------------------------------------------

    @property
    def tokens(self) -> TokenSet | None:
        return self._tokens

    def replace_tokens(self, old: TokenSet | None, new: TokenSet) -> None:
        """Use ``new`` from now on, unless another refresh already replaced ``old``."""
        with self._tokens_lock:
            if self._tokens is not old:
                return
            self._tokens = new
        if self._on_tokens is not None:
            self._on_tokens(new)

    def should_refresh(self, error: OpenPlatformError, used: TokenSet | None) -> bool:
        """An expired access token (111, refused at check 12 before the method
        ran) is refreshed once and the call sent again, when it can be."""
        return (
            getattr(error, "code", None) == _ACCESS_TOKEN_EXPIRED
            and used is not None
            and used.refresh_token is not None
            and self.api_key is not None
        )

    # --- requests ---------------------------------------------------------------------

    def request_for(self, call: PreparedCall[Any], tokens: TokenSet | None) -> WireRequest:
        """The request of one attempt: signed calls get a fresh ``timestamp``,
        ``call_id`` and signature each time (a resent request would be a
        replay, 107); bearer calls carry the token in the header."""
        form = dict(call.params)
        if self._send_lang:
            form["lang"] = self.lang
        headers = {"User-Agent": _USER_AGENT}
        secret = self.session_secret or self.secret
        if secret is not None and self.api_key:
            form["api_key"] = self.api_key
            form["timestamp"] = str(int(time.time()))
            form["call_id"] = str(self._call_ids.next())
            if self.sign_method != "md5":
                form["sign_method"] = self.sign_method
            if self.session_key is not None:
                form["session_key"] = self.session_key
            elif tokens is not None:
                form["access_token"] = tokens.access_token
            # The method comes from the path: the server signs it as method=<name>.
            form["sig"] = sign([*form.items(), ("method", call.method)], secret, self.sign_method)
        elif tokens is not None:
            headers["Authorization"] = f"Bearer {tokens.access_token}"
        else:
            raise ValueError(
                "no credential to call the API with: give api_key and secret, a "
                "session_key and session_secret, or an access token"
            )
        return WireRequest(API_PATH + call.method, list(form.items()), headers)

    def url(self, path: str) -> str:
        return self.base_url + path

    # --- batches ------------------------------------------------------------------------

    def begin_batch(self, serial_only: bool) -> Batch:
        with self._batch_lock:
            if self._batch is not None:
                raise batch_error(950, "end_batch() the open batch first")
            self._batch = Batch(serial_only=serial_only)
            return self._batch

    def take_batch(self) -> Batch:
        with self._batch_lock:
            batch, self._batch = self._batch, None
        if batch is None:
            raise batch_error(951, "begin_batch() first")
        return batch

    def abandon_batch(self, batch: Batch) -> None:
        with self._batch_lock:
            if self._batch is batch:
                self._batch = None


def _core(
    api_key: str | None,
    secret: str | None,
    session_key: str | None,
    session_secret: str | None,
    access_token: str | None,
    tokens: TokenSet | None,
    on_tokens: Callable[[TokenSet], None] | None,
    base_url: str,
    issuer: str | None,
    sign_method: SignMethod,
    lang: Lang | None,
    max_retries: int,
    retry_policy: RetryPolicy | None,
) -> _ClientCore:
    return _ClientCore(
        api_key=api_key,
        secret=secret,
        session_key=session_key,
        session_secret=session_secret,
        access_token=access_token,
        tokens=tokens,
        on_tokens=on_tokens,
        base_url=base_url,
        issuer=issuer,
        sign_method=sign_method,
        lang=lang,
        retry_policy=retry_policy or RetryPolicy(max_retries=max_retries),
    )


class Client:
    """A synchronous client of the open API and the OAuth server.

    Credentials, one of:

    - ``api_key`` + ``secret``: signed calls as the app; add
      ``access_token=`` or ``tokens=`` to act for a user (still signed);
    - ``api_key`` + ``session_key`` + ``session_secret``: signed with the
      session secret, for a client that cannot keep the app secret;
    - ``access_token=`` or ``tokens=`` alone: bearer calls.

    With ``tokens`` (a :class:`TokenSet` holding a refresh token), an expired
    access token (111) is refreshed once — rotated, shared by concurrent
    callers — and the call sent again; ``on_tokens`` is called with each new
    token set (persist it: the old refresh token no longer works).

    ``call()`` calls any method; ``users``, ``application`` and ``data`` hold
    typed methods; ``batch()`` groups calls; ``oauth`` holds the OAuth
    helpers. Retries follow :class:`RetryPolicy`. Thread-safe.
    """

    def __init__(
        self,
        api_key: str | None = None,
        secret: str | None = None,
        *,
        session_key: str | None = None,
        session_secret: str | None = None,
        access_token: str | None = None,
        tokens: TokenSet | None = None,
        on_tokens: Callable[[TokenSet], None] | None = None,
        base_url: str = DEFAULT_BASE_URL,
        issuer: str | None = None,
        sign_method: SignMethod = "md5",
        lang: Lang | None = None,
        max_retries: int = 2,
        retry_policy: RetryPolicy | None = None,
        timeout: float | httpx.Timeout = 30.0,
        http_client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._core = _core(
            api_key, secret, session_key, session_secret, access_token, tokens, on_tokens,
            base_url, issuer, sign_method, lang, max_retries, retry_policy,
        )  # fmt: skip
        self._own_http = http_client is None
        self._http = http_client or httpx.Client(timeout=timeout)
        self._sleep = sleep
        self.users: Users[Client] = Users(self)
        self.application: Application[Client] = Application(self)
        self.data: Data[Client] = Data(self)
        self.oauth = OAuth(self._core.oauth_settings, self._http)

    @property
    def tokens(self) -> TokenSet | None:
        """The token set calls act with (after any refresh), if any."""
        return self._core.tokens

    def call(
        self, method: str, /, *, idempotent: bool | None = None, **params: ParamValue
    ) -> object:
        """Call ``method`` with ``params``: lists become comma lists, mappings
        JSON objects, booleans ``true``/``false``; None leaves a parameter out.
        The result is the decoded JSON. ``idempotent`` overrides the SDK's
        table for the retry rule."""
        return self._execute(raw_call(method, encode_params(params), idempotent))

    def refresh_tokens(self) -> TokenSet:
        """Refresh the client's tokens now (rotation: the new set replaces the old)."""
        used = self._core.tokens
        if used is None or used.refresh_token is None:
            raise ValueError("this client holds no refresh token")
        new = self.oauth.refresh(used.refresh_token)
        self._core.replace_tokens(used, new)
        return new

    def begin_batch(self, *, serial_only: bool = False) -> Batch:
        """Open the client's batch (950 if one is open): queue calls on it."""
        return self._core.begin_batch(serial_only)

    def end_batch(self) -> Batch:
        """Send the open batch (951 if none) and resolve its items."""
        batch = self._core.take_batch()
        self._send_batch(batch)
        return batch

    @contextmanager
    def batch(self, *, serial_only: bool = False) -> Iterator[Batch]:
        """``with client.batch() as batch:`` — sent when the block ends
        without an exception (then abandoned, nothing sent)."""
        batch = self.begin_batch(serial_only=serial_only)
        try:
            yield batch
        except BaseException:
            self._core.abandon_batch(batch)
            raise
        self.end_batch()

    def close(self) -> None:
        if self._own_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _execute(self, call: PreparedCall[T]) -> T:
        return call.decode(self._send(call).result)

    def _send_batch(self, batch: Batch) -> None:
        if not len(batch):
            return
        try:
            answer = self._send(batch._outer_call())
        except BaseException as error:
            batch._fail(error)
            raise
        batch._resolve(answer.result, self._core.lang, answer.request_id)

    def _send(self, call: PreparedCall[T]) -> ApiAnswer:
        core = self._core
        retries, resigns, refreshed = 0, 0, False
        while True:
            tokens = core.tokens
            request = core.request_for(call, tokens)
            try:
                with map_transport_errors():
                    response = self._http.post(
                        core.url(request.path),
                        content=request.content,
                        headers=request.send_headers(),
                    )
                return read_api_answer(response, call.method, core.lang)
            except OpenPlatformError as error:
                if not refreshed and core.should_refresh(error, tokens):
                    assert tokens is not None and tokens.refresh_token is not None
                    refreshed = True
                    core.replace_tokens(tokens, self.oauth.refresh(tokens.refresh_token))
                    continue
                if core.retry_policy.resign(error, resigns):
                    resigns += 1
                    continue
                delay = core.retry_policy.delay(error, retries, call.idempotent)
                if delay is None:
                    raise
                retries += 1
                self._sleep(delay)


class AsyncClient:
    """The asyncio twin of :class:`Client`: the same arguments (``sleep`` is
    a coroutine function), every call awaited, ``async with client.batch()``.
    Safe for concurrent tasks of one event loop."""

    def __init__(
        self,
        api_key: str | None = None,
        secret: str | None = None,
        *,
        session_key: str | None = None,
        session_secret: str | None = None,
        access_token: str | None = None,
        tokens: TokenSet | None = None,
        on_tokens: Callable[[TokenSet], None] | None = None,
        base_url: str = DEFAULT_BASE_URL,
        issuer: str | None = None,
        sign_method: SignMethod = "md5",
        lang: Lang | None = None,
        max_retries: int = 2,
        retry_policy: RetryPolicy | None = None,
        timeout: float | httpx.Timeout = 30.0,
        http_client: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._core = _core(
            api_key, secret, session_key, session_secret, access_token, tokens, on_tokens,
            base_url, issuer, sign_method, lang, max_retries, retry_policy,
        )  # fmt: skip
        self._own_http = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=timeout)
        self._sleep = sleep
        self.users: Users[AsyncClient] = Users(self)
        self.application: Application[AsyncClient] = Application(self)
        self.data: Data[AsyncClient] = Data(self)
        self.oauth = AsyncOAuth(self._core.oauth_settings, self._http)

    @property
    def tokens(self) -> TokenSet | None:
        """As :attr:`Client.tokens`."""
        return self._core.tokens

    async def call(
        self, method: str, /, *, idempotent: bool | None = None, **params: ParamValue
    ) -> object:
        """As :meth:`Client.call`."""
        return await self._execute(raw_call(method, encode_params(params), idempotent))

    async def refresh_tokens(self) -> TokenSet:
        """As :meth:`Client.refresh_tokens`."""
        used = self._core.tokens
        if used is None or used.refresh_token is None:
            raise ValueError("this client holds no refresh token")
        new = await self.oauth.refresh(used.refresh_token)
        self._core.replace_tokens(used, new)
        return new

    def begin_batch(self, *, serial_only: bool = False) -> Batch:
        """As :meth:`Client.begin_batch`."""
        return self._core.begin_batch(serial_only)

    async def end_batch(self) -> Batch:
        """As :meth:`Client.end_batch`."""
        batch = self._core.take_batch()
        await self._send_batch(batch)
        return batch

    @asynccontextmanager
    async def batch(self, *, serial_only: bool = False) -> AsyncIterator[Batch]:
        """``async with client.batch() as batch:`` (see :meth:`Client.batch`)."""
        batch = self.begin_batch(serial_only=serial_only)
        try:
            yield batch
        except BaseException:
            self._core.abandon_batch(batch)
            raise
        await self.end_batch()

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _execute(self, call: PreparedCall[T]) -> T:
        return call.decode((await self._send(call)).result)

    async def _send_batch(self, batch: Batch) -> None:
        if not len(batch):
            return
        try:
            answer = await self._send(batch._outer_call())
        except BaseException as error:
            batch._fail(error)
            raise
        batch._resolve(answer.result, self._core.lang, answer.request_id)

    async def _send(self, call: PreparedCall[T]) -> ApiAnswer:
        core = self._core
        retries, resigns, refreshed = 0, 0, False
        while True:
            tokens = core.tokens
            request = core.request_for(call, tokens)
            try:
                with map_transport_errors():
                    response = await self._http.post(
                        core.url(request.path),
                        content=request.content,
                        headers=request.send_headers(),
                    )
                return read_api_answer(response, call.method, core.lang)
            except OpenPlatformError as error:
                if not refreshed and core.should_refresh(error, tokens):
                    assert tokens is not None and tokens.refresh_token is not None
                    refreshed = True
                    core.replace_tokens(tokens, await self.oauth.refresh(tokens.refresh_token))
                    continue
                if core.retry_policy.resign(error, resigns):
                    resigns += 1
                    continue
                delay = core.retry_policy.delay(error, retries, call.idempotent)
                if delay is None:
                    raise
                retries += 1
                await self._sleep(delay)
