"""The checks of PROTOCOL §3.3, in order; the first that fails answers.

:meth:`Gateway.handle` reads like the table of §3.3: each step calls one small
check (a module of this package) that raises :class:`ApiError`. One place at
the end renders the answer (JSON or XML, zh or en, HTTP 200 for apps that
chose ``legacy_http_200``); anything unexpected becomes code 1 with the
request id, its traceback logged server-side only.

Shared state is asked once per call: replay (10), ``call_id`` (11) and every
rate limit (13) are one atomic :meth:`SharedState.check_call`. Access-token
validity (12) is read-only, so it is resolved before that call, which then
consumes no rate limit when the token is invalid, and the answers keep the
order of §3.3.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from starlette.responses import Response

from openplatform.cache import (
    CallCheck,
    CallVerdict,
    Outcome,
    RateLimitRule,
    SharedStateUnavailable,
)
from openplatform.errors import ApiError, Code, Lang
from openplatform.errors.internal import internal_failure
from openplatform.errors.render import (
    ASGIResponse,
    Format,
    api_error_response,
    negotiate_lang,
    result_response,
)
from openplatform.gateway.batch import BatchItem, PlannedBatch, read_feed
from openplatform.gateway.call_counter import call_counter
from openplatform.gateway.call_id import call_id_key, check_call_id
from openplatform.gateway.client_ip import check_ip_allowlist, resolve_client_ip
from openplatform.gateway.credential_cache import CredentialCache
from openplatform.gateway.maintenance import MaintenanceSwitch, check_maintenance
from openplatform.gateway.params import check_param_count, check_well_formed
from openplatform.gateway.rate_limits import rules_for_call
from openplatform.gateway.referer import check_referer
from openplatform.gateway.signature import SIGN_METHODS, SignMethod, verify_signature
from openplatform.gateway.timestamp import check_timestamp
from openplatform.methods.batch import BATCH_METHOD
from openplatform.methods.registry import MethodCall, MethodRegistry, MethodSpec
from openplatform.services import Services
from openplatform.storage.apps import AppRecord
from openplatform.storage.errors import DatabaseUnavailable
from openplatform.storage.models import utcnow
from openplatform.storage.tokens import AccessTokenRecord, CredentialState, SessionRecord

__all__ = ["Gateway", "IncomingCall"]


@dataclass(slots=True)
class IncomingCall:
    """One ``/rest/2.0/`` request as the transport saw it."""

    request_id: str
    path_method: str | None
    pairs: list[tuple[str, str]]
    problem: str | None = None
    count: int | None = None  # of the pairs as sent, when not all are in ``pairs``
    peer: str | None = None
    forwarded_for: list[str] = field(default_factory=list)
    referer: str | None = None
    bearer: str | None = None
    accept_language: str | None = None

    def first(self, key: str) -> str | None:
        for k, value in self.pairs:
            if k == key:
                return value
        return None


@dataclass(slots=True)
class _Answer:
    """What the renderer needs, filled in as the checks learn it."""

    lang: Lang
    fmt: Format
    legacy_http_200: bool | None = None  # None until check 5 has found the app
    headers: dict[str, str] = field(default_factory=dict)
    method: str | None = None
    app_id: int | None = None  # the app once known (for the call counts of §5)


@dataclass(frozen=True, slots=True)
class _Credential:
    """Who acts: the app, and the user of a token or session (if any)."""

    user_id: int | None
    scopes: frozenset[str]
    error: ApiError | None = None  # check 12, answered after replay and call_id


@dataclass(frozen=True, slots=True)
class _Checked:
    """What checks 5-9 and 12 established, and what checks 10, 11 and 13 need."""

    app: AppRecord
    method: str
    credential: _Credential
    generation: int | None  # of the app, as this process knew it when reading
    nonce: str | None  # the signature (replay, check 10), on signed calls
    call_id: str | None
    call_id_key: str
    rate_ip: str  # whose per-IP limits apply: a signed call may name its end user's


# Refusals that rest on nothing read from memory: no need to confirm them on
# fresh reads (any other is confirmed — the memory may be stale).
_NOT_FROM_MEMORY = frozenset(
    {Code.INVALID_API_KEY, Code.UNSUPPORTED_SIGNATURE_METHOD, Code.INVALID_TIMESTAMP}
)


class Gateway:
    """The open-API gateway of one process."""

    def __init__(
        self,
        services: Services,
        registry: MethodRegistry,
        cache: CredentialCache,
        maintenance: MaintenanceSwitch,
    ) -> None:
        self._services = services
        self._settings = services.settings
        self._registry = registry
        self._cache = cache
        self._maintenance = maintenance
        self._calls = call_counter(services)

    async def handle(self, call: IncomingCall) -> tuple[ASGIResponse, str | None, int]:
        """The response, the method name when it is a registered one, and the
        error code answered. Calls of a registered method by a known app are
        counted (PROTOCOL §5)."""
        started = time.perf_counter()
        code = 0
        fmt: Format = "xml" if call.first("format") == "xml" else "json"
        answer = _Answer(negotiate_lang(call.first("lang"), call.accept_language), fmt)
        response: ASGIResponse
        try:
            spec = await self._method(call)
            answer.method = spec.name
            result = await self._run(call, spec, answer)
            response = result_response(
                result,
                fmt=answer.fmt,
                root=spec.xml_root,
                request_id=call.request_id,
                headers=answer.headers,
            )
        except ApiError as error:
            code = error.code
            if answer.legacy_http_200 is None:
                answer.legacy_http_200 = await self._legacy_before_check_5(call, answer)
            response = self._error(error, call, answer)
        except (DatabaseUnavailable, SharedStateUnavailable) as outage:
            code = Code.SERVICE_UNAVAILABLE
            failure = internal_failure(code, call.request_id, outage)
            response = self._error(failure, call, answer)
        except Exception as unexpected:
            code = Code.UNKNOWN
            failure = internal_failure(code, call.request_id, unexpected)
            response = self._error(failure, call, answer)
        if answer.method is not None and answer.app_id is not None:
            self._calls.record(
                answer.app_id, answer.method, int(code), time.perf_counter() - started
            )
        return response, answer.method, int(code)

    def _error(self, error: ApiError, call: IncomingCall, answer: _Answer) -> Response:
        if answer.headers:
            error.headers = {**answer.headers, **error.headers}
        args = call.pairs
        if error.code == Code.TOO_MANY_PARAMETERS:
            # Echoing every parameter of a refused request would turn 1 MiB of
            # "a&a&…" into megabytes of answer.
            args = args[: self._settings.max_params]
        return api_error_response(
            error,
            lang=answer.lang,
            fmt=answer.fmt,
            request_id=call.request_id,
            request_args=args,
            legacy_http_200=bool(answer.legacy_http_200),
        )

    async def _legacy_before_check_5(self, call: IncomingCall, answer: _Answer) -> bool:
        """PROTOCOL §1: a ``legacy_http_200`` app gets HTTP 200 for every API
        error — also those of checks 1-4, answered before its app was looked
        up. The app cache answers; a lookup that fails keeps the HTTP status.
        An active app found so is the app the call counts for."""
        api_key = call.first("api_key")
        if not api_key:
            return False
        try:
            app = await self._cache.app_by_key(api_key)
        except (DatabaseUnavailable, SharedStateUnavailable):
            return False
        if app is None:
            return False
        if app.active:
            answer.app_id = app.id
        return app.settings.legacy_http_200

    async def _method(self, call: IncomingCall) -> MethodSpec:
        """Checks 1 and 2: maintenance (the state this process caches, no
        query per call), then the method exists."""
        name = call.path_method or call.first("method") or ""
        check_maintenance(await self._maintenance.current(), name)
        spec = self._registry.get(name)
        if spec is None:
            raise ApiError(
                Code.UNSUPPORTED_METHOD,
                f"unknown method {name[:100]!r}" if name else "no method given",
            )
        return spec

    async def _run(self, call: IncomingCall, spec: MethodSpec, answer: _Answer) -> object:
        settings = self._settings
        # 3, 4
        check_param_count(
            len(call.pairs) if call.count is None else call.count, settings.max_params
        )
        params = check_well_formed(
            call.pairs, call.problem, spec, path_method=call.path_method, bearer=call.bearer
        )
        client_ip = resolve_client_ip(call.peer, call.forwarded_for, settings.trusted_proxies)
        # 5-9 and 12, on what this process has in memory (CredentialCache); a
        # refusal is confirmed on fresh reads, since what it rests on may be stale.
        try:
            checked = await self._authenticate(call, spec, params, client_ip, answer, fresh=False)
        except ApiError as refusal:
            if refusal.code in _NOT_FROM_MEMORY:
                raise
            checked = await self._authenticate(call, spec, params, client_ip, answer, fresh=True)
        # batch.run: its whole feed is read before anything runs, and each
        # item's rate limits join the call's in the one shared-state step
        batch = None
        if spec.name == BATCH_METHOD:
            arguments = spec.parse_arguments(params)
            feed = arguments.get_str("method_feed") or ""
            batch = read_feed(feed, self._registry, settings.max_params)
        # 10, 11, 13: one atomic step in shared state, which also reports the
        # app's generation: if the app or a credential changed since this
        # process read them, read afresh and check 5-9 and 12 again.
        verdict = await self._shared_state(checked, batch)
        if verdict is None:
            # unchecked rate limits (OPENPLATFORM_RATE_LIMITS_FAIL_OPEN): no
            # generation to trust either, so 5-9 and 12 are read afresh
            checked = await self._authenticate(call, spec, params, client_ip, answer, fresh=True)
            verdict = CallVerdict(Outcome.OK, item_waits=(0,) * len(batch or ()))
        elif not self._cache.observe(checked.app.id, verdict.generation, checked.generation):
            checked = await self._authenticate(call, spec, params, client_ip, answer, fresh=True)
        if verdict.rate is not None:
            answer.headers.update(verdict.rate.headers())
        if verdict.outcome is Outcome.REPLAYED:
            raise ApiError(
                Code.INVALID_TIMESTAMP, "this signed request was already received (replay)"
            )
        if verdict.outcome is Outcome.CALL_ID_NOT_INCREASING:
            raise ApiError(
                Code.INVALID_CALL_ID, "call_id must be greater than the last accepted one"
            )
        credential = checked.credential
        if credential.error is not None:
            raise credential.error
        if verdict.outcome is Outcome.RATE_LIMITED:
            assert verdict.rate is not None
            raise ApiError(
                Code.REQUEST_LIMIT_REACHED,
                f"at most {verdict.rate.limit} calls; retry in {verdict.rate.retry_after_s} s",
                headers={"Retry-After": str(max(verdict.rate.retry_after_s, 1))},
            )
        # 14
        spec.check_permission(credential.user_id, credential.scopes)
        args = spec.parse_arguments(params)
        plan = None
        if batch is not None:
            app_id = checked.app.id
            plan = PlannedBatch(
                batch,
                verdict.item_waits,
                serial=args.get_bool("serial_only") is True,
                record=lambda method, code, seconds: self._calls.record(
                    app_id, method, code, seconds
                ),
            )
        return await spec.handler(
            MethodCall(
                services=self._services,
                app=checked.app,
                user_id=credential.user_id,
                scopes=credential.scopes,
                args=args,
                client_ip=checked.rate_ip,
                lang=answer.lang,
                request_id=call.request_id,
                batch=plan,
            )
        )

    async def _authenticate(
        self,
        call: IncomingCall,
        spec: MethodSpec,
        params: dict[str, str],
        client_ip: str,
        answer: _Answer,
        *,
        fresh: bool,
    ) -> _Checked:
        """Checks 5-9, and 12 resolved (answered after 10 and 11): everything
        that rests on the app and the credential, read from this process's
        memory, or from the database when ``fresh``."""
        access_token = params.get("access_token", call.bearer)
        session_key = params.get("session_key")
        # 5
        app, token = await self._app(params.get("api_key"), access_token, fresh)
        generation = self._cache.generation(app.id)
        answer.legacy_http_200 = app.settings.legacy_http_200
        answer.app_id = app.id
        # 6, 7
        check_ip_allowlist(client_ip, app.settings.ip_networks)
        check_referer(
            call.referer,
            app.settings.referer_allowlist,
            allow_missing=app.settings.allow_missing_referer,
        )
        # 8-11 (signed calls only)
        nonce = call_id = None
        session: SessionRecord | None = None
        sig = params.get("sig")
        if sig is not None:
            session = await self._verify_signature(call, spec, params, app, session_key, sig, fresh)
            check_timestamp(
                params.get("timestamp"),
                now=int(time.time()),
                window_s=self._settings.timestamp_window_s,
                tz=self._settings.timezone,
            )
            nonce = sig
            call_id = check_call_id(params.get("call_id"), required=app.settings.require_call_id)
        elif app.settings.require_signature:
            raise ApiError(Code.INCORRECT_SIGNATURE, "this app accepts signed calls only")
        elif access_token is None:
            raise ApiError(
                Code.INCORRECT_SIGNATURE, "a call needs a sig, or an access_token on its own"
            )
        # 12
        credential = self._credential(app, access_token, token, session)
        return _Checked(
            app=app,
            method=spec.name,
            credential=credential,
            generation=generation,
            nonce=nonce,
            call_id=call_id,
            call_id_key=call_id_key(session_key=session_key, access_token=access_token),
            rate_ip=params.get("client_ip", client_ip) if sig is not None else client_ip,
        )

    async def _app(
        self, api_key: str | None, access_token: str | None, fresh: bool
    ) -> tuple[AppRecord, AccessTokenRecord | None]:
        """Check 5: the app of ``api_key``, else of the bearer token (whose
        record is read now and judged at check 12)."""
        cache = self._cache
        token = None
        if api_key is not None:
            app = await cache.app_by_key(api_key, fresh=fresh)
            if app is None:
                raise ApiError(Code.INVALID_API_KEY)
            if access_token is not None:
                token = await cache.access_token(access_token, fresh=fresh)
        elif access_token is not None:
            token = await cache.access_token(access_token, fresh=fresh)
            # Without api_key the token names the app; a token that does not
            # exist (a deleted app's included) names none.
            app = None if token is None else await cache.app_by_id(token.app_id, fresh=fresh)
            if app is None or app.status == "deleted":
                raise ApiError(Code.INVALID_ACCESS_TOKEN)
        else:
            raise ApiError(Code.INVALID_API_KEY, "api_key (or an access_token) is required")
        if not app.active:
            raise ApiError(Code.NO_SUCH_APPLICATION, "this app is suspended or deleted")
        return app, token

    async def _verify_signature(
        self,
        call: IncomingCall,
        spec: MethodSpec,
        params: dict[str, str],
        app: AppRecord,
        session_key: str | None,
        sig: str,
        fresh: bool,
    ) -> SessionRecord | None:
        """Check 8: sign method, the session whose secret signs, the signature."""
        sign_method = params.get("sign_method", "md5")
        if sign_method not in SIGN_METHODS:
            raise ApiError(
                Code.UNSUPPORTED_SIGNATURE_METHOD, "sign_method must be md5 or hmac-sha256"
            )
        method: SignMethod = "hmac-sha256" if sign_method == "hmac-sha256" else "md5"
        secret = app.secret
        session = None
        if session_key is not None:
            session = await self._cache.session(session_key, fresh=fresh)
            state = CredentialState.INVALID if session is None else session.state(app.id)
            if state is CredentialState.INVALID:
                raise ApiError(Code.INVALID_SESSION_KEY)
            if state is CredentialState.EXPIRED:
                raise ApiError(Code.SESSION_KEY_EXPIRED)
            assert session is not None
            secret = session.session_secret
        signed: Sequence[tuple[str, str]] = call.pairs
        if "method" not in params:
            signed = [*call.pairs, ("method", spec.name)]
        if not verify_signature(signed, sig, secret, method):
            raise ApiError(Code.INCORRECT_SIGNATURE)
        return session

    @staticmethod
    def _credential(
        app: AppRecord,
        access_token: str | None,
        token: AccessTokenRecord | None,
        session: SessionRecord | None,
    ) -> _Credential:
        """Check 12: the user and scopes the call acts with."""
        if session is not None:
            return _Credential(session.user_id, session.scopes)
        if access_token is None:
            return _Credential(None, frozenset())
        state = CredentialState.INVALID if token is None else token.state(app.id, utcnow())
        if state is CredentialState.INVALID:
            return _Credential(None, frozenset(), ApiError(Code.INVALID_ACCESS_TOKEN))
        if state is CredentialState.EXPIRED:
            return _Credential(None, frozenset(), ApiError(Code.ACCESS_TOKEN_EXPIRED))
        assert token is not None
        return _Credential(token.user_id, token.scopes)

    async def _shared_state(
        self, checked: _Checked, batch: Sequence[BatchItem] | None
    ) -> CallVerdict | None:
        """Checks 10, 11 and 13 in one atomic step (always asked: it also tells
        whether what this process read of the app is current), with the rate
        limits of a batch's items. A call whose credential is refused (check
        12) consumes no rate limit.

        When the shared state cannot be reached the call answers 2 (fail
        closed) — unless ``OPENPLATFORM_RATE_LIMITS_FAIL_OPEN`` is on and the
        call needs the shared state for rate limits only: then None (serve
        it, unlimited). Of §3.3's checks three use the shared state: 10
        (replay: the ``sig`` of every signed call is a nonce), 11 (``call_id``,
        signed calls only) and 13 (rate limits). Skipping 13 costs at most
        some extra load; skipping 10 or 11 would let a captured signed request
        be replayed, which nothing else prevents. So every signed call still
        fails closed (its ``sig`` always needs check 10, with or without
        ``call_id``), and only unsigned calls — an access token on its own,
        e.g. an OAuth ``Authorization: Bearer`` call, whose protection is the
        token and TLS, not the shared state — are served open. The token is
        read afresh from the database (the caller's job), since no generation
        says whether what this process holds is current."""
        credential = checked.credential
        limits: list[RateLimitRule] = []
        items: list[list[RateLimitRule]] = []
        if credential.error is None:
            app_limits = checked.app.settings.rate_limits
            by_method: dict[str, list[RateLimitRule]] = {}

            def rules(method: str) -> list[RateLimitRule]:
                found = by_method.get(method)
                if found is None:  # a batch's items share the user and the address
                    found = by_method[method] = rules_for_call(
                        method, app_limits, user_id=credential.user_id, client_ip=checked.rate_ip
                    )
                return found

            limits = rules(checked.method)
            # an item refused already (unknown method, bad parameters) takes nothing
            items = [rules(i.method) if i.refusal is None else [] for i in batch or ()]
        try:
            return await self._services.shared_state.check_call(
                CallCheck(
                    app=str(checked.app.id),
                    nonce=checked.nonce,
                    nonce_ttl_s=2 * self._settings.timestamp_window_s,
                    call_id_key=checked.call_id_key if checked.call_id is not None else None,
                    call_id=checked.call_id,
                    limits=limits,
                    batch=items,
                )
            )
        except SharedStateUnavailable:
            # Generations seen before cannot be trusted after an outage (the
            # shared state may have lost them, or missed a change).
            self._cache.forget_everything()
            if self._settings.rate_limits_fail_open and checked.nonce is None:
                # no sig, hence no call_id either (checks 10-11 are signed-only)
                return None
            raise
