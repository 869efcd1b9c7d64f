"""The SDK's exceptions: one class per family of the error catalogue.

Everything the SDK raises is an :class:`OpenPlatformError`:

- :class:`APIConnectionError` (and :class:`APITimeoutError`): no answer came.
- :class:`APIResponseError`: an answer that is not the protocol's (no error
  code: a proxy's error page, a body that is not JSON).
- :class:`APIError`: an open-API error (PROTOCOL §1, codes 0–953), one
  subclass per family — :class:`RateLimitError` (4), :class:`AuthenticationError`
  (101–112), :class:`PermissionDeniedError` (5–7, 210–212), the data store's
  :class:`DataStoreError` (800–805), :class:`BatchError` (950–953)…
- :class:`OAuthError`: an error of the OAuth endpoints (10000–10009), one
  subclass per RFC 6749 ``error`` name.

The class is chosen by the error CODE alone (never by the message text): each
class names its codes in ``codes``. Every coded error carries ``code``, the
message as the server sent it (``message``), both catalogue messages
(``message_en``, ``message_zh`` — the server answers in one language, the
other comes from the catalogue copy the SDK ships), ``error_detail``,
``request_id`` (``X-Request-Id``), ``retry_after`` (seconds, from
``Retry-After``) and ``http_status``.
"""

from __future__ import annotations

from typing import ClassVar

from openplatform_client._catalogue import Lang, catalogue_entry

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseError",
    "APITimeoutError",
    "AccessDeniedError",
    "ApplicationNotFoundError",
    "AuthenticationError",
    "BatchError",
    "CallbackError",
    "DataStoreError",
    "DatabaseError",
    "ExpiredTokenError",
    "InvalidClientError",
    "InvalidGrantError",
    "InvalidOperationError",
    "InvalidParameterError",
    "InvalidRequestError",
    "InvalidScopeError",
    "MethodNotFoundError",
    "OAuthError",
    "ObjectExistsError",
    "ObjectNotFoundError",
    "OpenPlatformError",
    "PermissionDeniedError",
    "QuotaExceededError",
    "RateLimitError",
    "RedirectURIMismatchError",
    "ServiceUnavailableError",
    "UnauthorizedClientError",
    "UnknownError",
    "UnsupportedGrantTypeError",
    "UnsupportedResponseTypeError",
    "api_error",
    "oauth_error",
]


class OpenPlatformError(Exception):
    """Base class of every exception the SDK raises."""

    def __reduce__(self) -> tuple[object, ...]:
        # The subclasses take keyword arguments: pickle (multiprocessing,
        # task queues) restores the attributes instead of calling __init__.
        return (_restore, (type(self), self.args, self.__dict__))


def _restore(
    cls: type[OpenPlatformError], args: tuple[object, ...], state: dict[str, object]
) -> OpenPlatformError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class APIConnectionError(OpenPlatformError):
    """The request got no answer (refused, reset, DNS, TLS…).

    ``request_sent`` is False when the request certainly never reached the
    server (the connection was never made), so that even a call that is not
    idempotent may be sent again.
    """

    def __init__(self, message: str, *, request_sent: bool) -> None:
        super().__init__(message)
        self.request_sent = request_sent


class APITimeoutError(APIConnectionError):
    """The request timed out (connecting, writing, reading or waiting for a
    pooled connection)."""


class APIResponseError(OpenPlatformError):
    """An answer that does not follow the protocol: no error code, or a body
    that is not JSON (typically a proxy's error page)."""

    def __init__(self, message: str, *, http_status: int, body: str, request_id: str | None):
        super().__init__(message)
        self.http_status = http_status
        self.body = body
        self.request_id = request_id


class _CodedError(OpenPlatformError):
    """What every error with a catalogue code carries."""

    codes: ClassVar[frozenset[int]] = frozenset()

    def __init__(
        self,
        code: int,
        message: str | None = None,
        *,
        lang: Lang = "en",
        error_detail: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        http_status: int | None = None,
    ) -> None:
        entry = catalogue_entry(code)
        if message is None:
            message = entry.message(lang) if entry else f"error {code}"
        self.code = code
        self.message = message
        # The server answered in ``lang``; the other language is the catalogue's.
        self.message_en = message if lang == "en" or entry is None else entry.message("en")
        self.message_zh = message if lang == "zh" or entry is None else entry.message("zh")
        self.error_detail = error_detail
        self.request_id = request_id
        self.retry_after = retry_after
        self.http_status = (
            http_status if http_status is not None else (entry.http_status if entry else None)
        )
        super().__init__(self._describe())

    def _describe(self) -> str:
        text = f"[{self.code}] {self.message}"
        if self.error_detail:
            text += f": {self.error_detail}"
        if self.request_id:
            text += f" (request id {self.request_id})"
        return text


# --- the open API family (PROTOCOL §1, §3, §4) -----------------------------------------


class APIError(_CodedError):
    """An error answered by the open API (``/rest/2.0/``), or raised by the
    SDK itself for the batch rules of PROTOCOL §4 (950–952).

    Besides the common attributes: ``method`` (the API method called) and
    ``request_args`` (the parameters the server echoed, secrets redacted).
    """

    def __init__(
        self,
        code: int,
        message: str | None = None,
        *,
        lang: Lang = "en",
        error_detail: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        http_status: int | None = None,
        method: str | None = None,
        request_args: list[dict[str, str]] | None = None,
    ) -> None:
        self.method = method
        self.request_args = request_args or []
        super().__init__(
            code,
            message,
            lang=lang,
            error_detail=error_detail,
            request_id=request_id,
            retry_after=retry_after,
            http_status=http_status,
        )


class UnknownError(APIError):
    """1: the server failed unexpectedly (the request id finds it in its log)."""

    codes = frozenset({1})


class ServiceUnavailableError(APIError):
    """2: maintenance or an outage; ``retry_after`` says when to come back."""

    codes = frozenset({2})


class MethodNotFoundError(APIError):
    """3: no such method."""

    codes = frozenset({3})


class RateLimitError(APIError):
    """4: a rate limit refused the call before it ran; see ``retry_after``."""

    codes = frozenset({4})


class PermissionDeniedError(APIError):
    """5 (client IP), 6 (user data / scope), 7 (Referer), 210 (user not
    visible), 211 (a field needs a scope: ``error_detail`` names it), 212
    (email needs the ``email`` scope)."""

    codes = frozenset({5, 6, 7, 210, 211, 212})


class InvalidParameterError(APIError):
    """100 (invalid parameter), 105 (too many), 108 (user id), 109 (user
    field), 114 (``client_ip``)."""

    codes = frozenset({100, 105, 108, 109, 114})


class AuthenticationError(APIError):
    """The call's credentials or signature were not accepted: 101 (api_key),
    102/112 (session key unknown/expired), 103 (call_id), 104 (signature),
    106 (sign method), 107 (timestamp or replay), 110/111 (access token
    unknown/expired)."""

    codes = frozenset({101, 102, 103, 104, 106, 107, 110, 111, 112})


class ApplicationNotFoundError(APIError):
    """900: the app does not exist, or is suspended or deleted."""

    codes = frozenset({900})


class DataStoreError(APIError):
    """800: an unexpected data store error; base of the other 80x errors."""

    codes = frozenset({800})


class InvalidOperationError(DataStoreError):
    """801: the operation is not valid for the type or property."""

    codes = frozenset({801})


class QuotaExceededError(DataStoreError):
    """802: the app's storage quota is used up."""

    codes = frozenset({802})


class ObjectNotFoundError(DataStoreError):
    """803: no such type, object, property or association."""

    codes = frozenset({803})


class ObjectExistsError(DataStoreError):
    """804: the name is already used."""

    codes = frozenset({804})


class DatabaseError(DataStoreError):
    """805: the database failed after the server's own retries; nothing was
    half-written. Whether the write happened is unknown (see the retry rule)."""

    codes = frozenset({805})


class BatchError(APIError):
    """950 (``begin_batch`` twice), 951 (``end_batch`` without a batch), 952
    (more than 20 items: raised before sending), 953 (a method that may not
    be batched)."""

    codes = frozenset({950, 951, 952, 953})


_API_CLASSES: dict[int, type[APIError]] = {
    code: cls
    for cls in (
        UnknownError,
        ServiceUnavailableError,
        MethodNotFoundError,
        RateLimitError,
        PermissionDeniedError,
        InvalidParameterError,
        AuthenticationError,
        ApplicationNotFoundError,
        DataStoreError,
        InvalidOperationError,
        QuotaExceededError,
        ObjectNotFoundError,
        ObjectExistsError,
        DatabaseError,
        BatchError,
    )
    for code in cls.codes
}


def api_error(
    code: int,
    message: str | None = None,
    *,
    lang: Lang = "en",
    error_detail: str | None = None,
    request_id: str | None = None,
    retry_after: float | None = None,
    http_status: int | None = None,
    method: str | None = None,
    request_args: list[dict[str, str]] | None = None,
) -> APIError:
    """The exception for open-API error ``code`` (a code this SDK does not
    know yet gives a plain :class:`APIError`)."""
    cls = _API_CLASSES.get(code, APIError)
    return cls(
        code,
        message,
        lang=lang,
        error_detail=error_detail,
        request_id=request_id,
        retry_after=retry_after,
        http_status=http_status,
        method=method,
        request_args=request_args,
    )


# --- the OAuth family (PROTOCOL §2) ------------------------------------------------------


class OAuthError(_CodedError):
    """An error of the OAuth endpoints (token, authorize redirect), 10000–10009.

    ``error`` is the RFC 6749 name (``invalid_grant``…); ``message`` is the
    server's ``error_description``.
    """

    error: ClassVar[str] = ""

    @property
    def error_description(self) -> str:
        return self.message


class InvalidRequestError(OAuthError):
    """10000 ``invalid_request``: a parameter is missing, repeated or malformed."""

    codes = frozenset({10000})
    error = "invalid_request"


class InvalidClientError(OAuthError):
    """10001 ``invalid_client``: the client_id or secret was not accepted."""

    codes = frozenset({10001})
    error = "invalid_client"


class InvalidGrantError(OAuthError):
    """10002 ``invalid_grant``: the code or refresh token is unknown, used,
    revoked, or the PKCE verifier does not match."""

    codes = frozenset({10002})
    error = "invalid_grant"


class UnauthorizedClientError(OAuthError):
    """10003 ``unauthorized_client``: the app may not use this grant."""

    codes = frozenset({10003})
    error = "unauthorized_client"


class UnsupportedGrantTypeError(OAuthError):
    """10004 ``unsupported_grant_type``."""

    codes = frozenset({10004})
    error = "unsupported_grant_type"


class InvalidScopeError(OAuthError):
    """10005 ``invalid_scope``: a scope the app may not request."""

    codes = frozenset({10005})
    error = "invalid_scope"


class ExpiredTokenError(OAuthError):
    """10006 ``expired_token``: the refresh token expired; sign in again."""

    codes = frozenset({10006})
    error = "expired_token"


class RedirectURIMismatchError(OAuthError):
    """10007 ``redirect_uri_mismatch``."""

    codes = frozenset({10007})
    error = "redirect_uri_mismatch"


class UnsupportedResponseTypeError(OAuthError):
    """10008 ``unsupported_response_type``."""

    codes = frozenset({10008})
    error = "unsupported_response_type"


class AccessDeniedError(OAuthError):
    """10009 ``access_denied``: the user (or the server) refused."""

    codes = frozenset({10009})
    error = "access_denied"


_OAUTH_CLASSES: dict[int, type[OAuthError]] = {
    code: cls
    for cls in (
        InvalidRequestError,
        InvalidClientError,
        InvalidGrantError,
        UnauthorizedClientError,
        UnsupportedGrantTypeError,
        InvalidScopeError,
        ExpiredTokenError,
        RedirectURIMismatchError,
        UnsupportedResponseTypeError,
        AccessDeniedError,
    )
    for code in cls.codes
}
_OAUTH_CODES_BY_NAME = {cls.error: code for code, cls in _OAUTH_CLASSES.items()}


def oauth_error(
    code: int | None,
    error: str | None,
    message: str | None = None,
    *,
    lang: Lang = "en",
    error_detail: str | None = None,
    request_id: str | None = None,
    retry_after: float | None = None,
    http_status: int | None = None,
) -> OAuthError:
    """The exception for an OAuth error: by ``error_code``, or by the RFC
    ``error`` name when a server sends no code (another standard server)."""
    if code is None:
        code = _OAUTH_CODES_BY_NAME.get(error or "", 10000)
    cls = _OAUTH_CLASSES.get(code, OAuthError)
    return cls(
        code,
        message,
        lang=lang,
        error_detail=error_detail,
        request_id=request_id,
        retry_after=retry_after,
        http_status=http_status,
    )


class CallbackError(OpenPlatformError):
    """The redirect back from ``/authorize`` does not belong to the
    authorization request: its ``state`` or ``iss`` differs, or it has no code."""
