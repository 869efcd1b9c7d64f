"""OAuth 2.0 client helpers (PROTOCOL §2): the authorization URL with PKCE
(RFC 7636, S256), the redirect back (state and RFC 9207 ``iss`` checked), the
code exchange, refresh with rotation, and client credentials.

Refresh tokens rotate on every use and the server lets exactly one use of a
refresh token succeed. So one client refreshes a given token once: callers
that ask while that refresh is in flight wait for it and share its result,
and a caller that comes later with the same (now rotated) token gets the
tokens it was rotated into, without a second network refresh.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import hashlib
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import httpx

from openplatform_client._catalogue import Lang
from openplatform_client._exceptions import APIConnectionError, CallbackError, oauth_error
from openplatform_client._results import unexpected
from openplatform_client._wire import WireRequest, map_transport_errors, read_oauth_answer

__all__ = [
    "AsyncOAuth",
    "AuthorizationRequest",
    "OAuth",
    "OAuthSettings",
    "TokenSet",
    "pkce_challenge",
    "pkce_verifier",
]

AUTHORIZE_PATH = "/oauth/2.0/authorize"
TOKEN_PATH = "/oauth/2.0/token"
# Rotations remembered per client (old refresh token → what it became).
_REMEMBERED_ROTATIONS = 64


def pkce_verifier() -> str:
    """A fresh ``code_verifier``: 64 characters, 384 bits (RFC 7636 §4.1)."""
    return secrets.token_urlsafe(48)


def pkce_challenge(verifier: str) -> str:
    """The S256 ``code_challenge`` of ``verifier`` (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class TokenSet:
    """A token response (PROTOCOL §2). ``expires_at`` is Unix time, computed
    when the response arrived."""

    access_token: str
    token_type: str
    expires_in: int
    expires_at: float
    scope: tuple[str, ...]
    refresh_token: str | None = None
    session_key: str | None = None
    session_secret: str | None = None

    @classmethod
    def from_response(cls, body: Mapping[str, object], now: float | None = None) -> TokenSet:
        access_token = body.get("access_token")
        if not isinstance(access_token, str):
            raise unexpected("a token response with an access_token", dict(body))
        expires_in = body.get("expires_in")
        lifetime = expires_in if isinstance(expires_in, int) else 0
        scope = body.get("scope")

        def optional(name: str) -> str | None:
            value = body.get(name)
            return value if isinstance(value, str) else None

        return cls(
            access_token=access_token,
            token_type=str(body.get("token_type", "Bearer")),
            expires_in=lifetime,
            expires_at=(time.time() if now is None else now) + lifetime,
            scope=tuple(scope.split()) if isinstance(scope, str) else (),
            refresh_token=optional("refresh_token"),
            session_key=optional("session_key"),
            session_secret=optional("session_secret"),
        )

    def expired(self, now: float | None = None, leeway: float = 0.0) -> bool:
        return (time.time() if now is None else now) + leeway >= self.expires_at


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """What to send the user to, and what to keep until they come back."""

    url: str
    state: str
    code_verifier: str
    redirect_uri: str


@dataclass(frozen=True, slots=True)
class OAuthSettings:
    """The client's identity at the authorization server."""

    base_url: str
    client_id: str | None
    client_secret: str | None
    issuer: str
    lang: Lang

    def require_client_id(self) -> str:
        if not self.client_id:
            raise ValueError("the OAuth helpers need the client's api_key (client_id)")
        return self.client_id

    def authorization_request(
        self,
        redirect_uri: str,
        scope: Sequence[str] | str,
        state: str | None,
        prompt: str | None,
    ) -> AuthorizationRequest:
        verifier = pkce_verifier()
        state = state or secrets.token_urlsafe(16)
        params = {
            "response_type": "code",
            "client_id": self.require_client_id(),
            "redirect_uri": redirect_uri,
            "scope": scope if isinstance(scope, str) else " ".join(scope),
            "state": state,
            "code_challenge": pkce_challenge(verifier),
            "code_challenge_method": "S256",
        }
        if prompt:
            params["prompt"] = prompt
        url = f"{self.base_url}{AUTHORIZE_PATH}?{urlencode(params)}"
        return AuthorizationRequest(url, state, verifier, redirect_uri)

    def code_from_callback(self, url: str, request: AuthorizationRequest) -> str:
        """The code of the redirect back to ``request.redirect_uri``; the
        OAuth error it carries raised; a foreign redirect refused."""
        query = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
        if query.get("state") != request.state:
            raise CallbackError("the redirect's state is not the request's (forged or stale)")
        if "iss" in query and query["iss"] != self.issuer:
            raise CallbackError(f"the redirect comes from issuer {query['iss']!r}, not ours")
        if "error" in query:
            code = query.get("error_code", "")
            raise oauth_error(
                int(code) if code.isdigit() else None,
                query["error"],
                query.get("error_description"),
                lang=self.lang,
            )
        if not query.get("code"):
            raise CallbackError("the redirect carries neither a code nor an error")
        return query["code"]

    def token_request(self, form: dict[str, str]) -> WireRequest:
        """A token endpoint request, authenticated with ``client_secret_basic``
        (the id and secret form-encoded first, RFC 6749 §2.3.1), or as a
        public client (``client_id`` in the form)."""
        client_id = self.require_client_id()
        headers: dict[str, str] = {}
        if self.client_secret:
            raw = f"{quote(client_id, safe='')}:{quote(self.client_secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(raw.encode()).decode()
        else:
            form = {**form, "client_id": client_id}
        if self.lang == "zh":
            headers["Accept-Language"] = "zh"
        return WireRequest(TOKEN_PATH, list(form.items()), headers)


def _code_form(code: str, redirect_uri: str, code_verifier: str) -> dict[str, str]:
    return {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": code_verifier,
    }


def _refresh_form(refresh_token: str, scope: Sequence[str] | str | None) -> dict[str, str]:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if scope is not None:
        form["scope"] = scope if isinstance(scope, str) else " ".join(scope)
    return form


def _client_credentials_form(scope: Sequence[str] | str | None) -> dict[str, str]:
    form = {"grant_type": "client_credentials"}
    if scope is not None:
        form["scope"] = scope if isinstance(scope, str) else " ".join(scope)
    return form


class _Rotations:
    """Old refresh token → the tokens it was rotated into (the most recent few)."""

    def __init__(self) -> None:
        self._done: OrderedDict[str, TokenSet] = OrderedDict()

    def get(self, refresh_token: str) -> TokenSet | None:
        return self._done.get(refresh_token)

    def add(self, refresh_token: str, tokens: TokenSet) -> None:
        self._done[refresh_token] = tokens
        while len(self._done) > _REMEMBERED_ROTATIONS:
            self._done.popitem(last=False)


class OAuth:
    """OAuth helpers of a :class:`Client` (``client.oauth``)."""

    def __init__(self, settings: OAuthSettings, http: httpx.Client) -> None:
        self._settings = settings
        self._http = http
        self._lock = threading.Lock()
        self._in_flight: dict[str, concurrent.futures.Future[TokenSet]] = {}
        self._rotations = _Rotations()

    def authorization_url(
        self,
        redirect_uri: str,
        scope: Sequence[str] | str = ("basic",),
        *,
        state: str | None = None,
        prompt: str | None = None,
    ) -> AuthorizationRequest:
        """Where to send the user: ``/authorize`` with a fresh PKCE S256 pair
        and a random ``state`` (keep the returned request until they return)."""
        return self._settings.authorization_request(redirect_uri, scope, state, prompt)

    def code_from_callback(self, url: str, request: AuthorizationRequest) -> str:
        """The code of the redirect URL the user came back with (state and
        ``iss`` checked; an error redirect raised as its :class:`OAuthError`)."""
        return self._settings.code_from_callback(url, request)

    def exchange_code(
        self,
        code: str,
        request: AuthorizationRequest | None = None,
        *,
        redirect_uri: str | None = None,
        code_verifier: str | None = None,
    ) -> TokenSet:
        """Tokens for an authorization code (``request`` gives the redirect
        URI and PKCE verifier; or pass them)."""
        form = _code_form(
            code,
            redirect_uri or (request.redirect_uri if request else ""),
            code_verifier or (request.code_verifier if request else ""),
        )
        return self._token(form)

    def client_credentials(self, scope: Sequence[str] | str | None = None) -> TokenSet:
        """An app token (no user, no refresh token)."""
        return self._token(_client_credentials_form(scope))

    def refresh(self, refresh_token: str, scope: Sequence[str] | str | None = None) -> TokenSet:
        """New tokens for ``refresh_token``, which the server rotates: use the
        returned ``refresh_token`` from now on. Concurrent calls with the
        same token share one network refresh; a later call with an already
        rotated token gets what it was rotated into."""
        with self._lock:
            done = self._rotations.get(refresh_token)
            if done is not None:
                return done
            flight = self._in_flight.get(refresh_token)
            leader = flight is None
            if flight is None:
                flight = self._in_flight[refresh_token] = concurrent.futures.Future()
        if not leader:
            return flight.result()
        try:
            tokens = self._token(_refresh_form(refresh_token, scope))
        except BaseException as exc:
            with self._lock:
                del self._in_flight[refresh_token]
            flight.set_exception(exc)
            raise
        with self._lock:
            self._rotations.add(refresh_token, tokens)
            del self._in_flight[refresh_token]
        flight.set_result(tokens)
        return tokens

    def _token(self, form: dict[str, str]) -> TokenSet:
        request = self._settings.token_request(form)
        with map_transport_errors():
            response = self._http.post(
                self._settings.base_url + request.path,
                content=request.content,
                headers=request.send_headers(),
            )
        return TokenSet.from_response(read_oauth_answer(response, self._settings.lang))


class AsyncOAuth:
    """OAuth helpers of an :class:`AsyncClient` (``client.oauth``)."""

    def __init__(self, settings: OAuthSettings, http: httpx.AsyncClient) -> None:
        self._settings = settings
        self._http = http
        self._in_flight: dict[str, asyncio.Future[TokenSet]] = {}
        self._rotations = _Rotations()

    def authorization_url(
        self,
        redirect_uri: str,
        scope: Sequence[str] | str = ("basic",),
        *,
        state: str | None = None,
        prompt: str | None = None,
    ) -> AuthorizationRequest:
        """As :meth:`OAuth.authorization_url`."""
        return self._settings.authorization_request(redirect_uri, scope, state, prompt)

    def code_from_callback(self, url: str, request: AuthorizationRequest) -> str:
        """As :meth:`OAuth.code_from_callback`."""
        return self._settings.code_from_callback(url, request)

    async def exchange_code(
        self,
        code: str,
        request: AuthorizationRequest | None = None,
        *,
        redirect_uri: str | None = None,
        code_verifier: str | None = None,
    ) -> TokenSet:
        """As :meth:`OAuth.exchange_code`."""
        form = _code_form(
            code,
            redirect_uri or (request.redirect_uri if request else ""),
            code_verifier or (request.code_verifier if request else ""),
        )
        return await self._token(form)

    async def client_credentials(self, scope: Sequence[str] | str | None = None) -> TokenSet:
        """As :meth:`OAuth.client_credentials`."""
        return await self._token(_client_credentials_form(scope))

    async def refresh(
        self, refresh_token: str, scope: Sequence[str] | str | None = None
    ) -> TokenSet:
        """As :meth:`OAuth.refresh` (tasks of one event loop share the refresh)."""
        done = self._rotations.get(refresh_token)
        if done is not None:
            return done
        flight = self._in_flight.get(refresh_token)
        if flight is not None:
            return await asyncio.shield(flight)
        flight = self._in_flight[refresh_token] = asyncio.get_running_loop().create_future()
        try:
            tokens = await self._token(_refresh_form(refresh_token, scope))
        except BaseException as exc:
            del self._in_flight[refresh_token]
            # Waiters get the error; a cancelled leader must not cancel them.
            shared = (
                exc
                if isinstance(exc, Exception)
                else APIConnectionError(
                    "the refresh this call waited for was cancelled", request_sent=True
                )
            )
            flight.set_exception(shared)
            flight.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        self._rotations.add(refresh_token, tokens)
        del self._in_flight[refresh_token]
        flight.set_result(tokens)
        return tokens

    async def _token(self, form: dict[str, str]) -> TokenSet:
        request = self._settings.token_request(form)
        with map_transport_errors():
            response = await self._http.post(
                self._settings.base_url + request.path,
                content=request.content,
                headers=request.send_headers(),
            )
        return TokenSet.from_response(read_oauth_answer(response, self._settings.lang))
