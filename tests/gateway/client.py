"""The one HTTP client helper of the gateway tests: signs like an SDK would."""

from __future__ import annotations

import itertools
import time
from typing import Literal
from urllib.parse import urlencode

import httpx

from openplatform.gateway.signature import SignMethod, sign

_call_ids = itertools.count(int(time.time() * 1000))


class ApiClient:
    def __init__(self, http: httpx.AsyncClient, *, api_key: str, secret: str) -> None:
        self.http = http
        self.api_key = api_key
        self.secret = secret

    def signed_params(
        self,
        method: str,
        params: dict[str, str] | None = None,
        *,
        secret: str | None = None,
        sign_method: SignMethod | None = None,
        session_key: str | None = None,
        call_id: bool = True,
        method_in_params: bool = False,
    ) -> dict[str, str]:
        """Common parameters + ``params``, signed with the app secret (or ``secret``)."""
        full: dict[str, str] = {"api_key": self.api_key, "timestamp": str(int(time.time()))}
        if call_id:
            full["call_id"] = str(next(_call_ids))
        if sign_method is not None:
            full["sign_method"] = sign_method
        if session_key is not None:
            full["session_key"] = session_key
        if method_in_params:
            full["method"] = method
        full.update(params or {})
        signed = full if method_in_params else {**full, "method": method}
        full["sig"] = sign(
            list(signed.items()), self.secret if secret is None else secret, sign_method or "md5"
        )
        return full

    async def call(
        self,
        method: str,
        params: dict[str, str] | None = None,
        *,
        http_method: Literal["GET", "POST"] = "POST",
        headers: dict[str, str] | None = None,
        path: str | None = None,
        **sign_options: object,
    ) -> httpx.Response:
        """A signed call (``sign=False`` in ``params`` style: use :meth:`raw`)."""
        full = self.signed_params(method, params, **sign_options)  # type: ignore[arg-type]
        return await self.raw(path or f"/rest/2.0/{method}", full, http_method, headers)

    async def raw(
        self,
        path: str,
        params: dict[str, str] | list[tuple[str, str]],
        http_method: Literal["GET", "POST"] = "POST",
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        encoded = urlencode(list(params.items()) if isinstance(params, dict) else params)
        if http_method == "GET":
            return await self.http.get(f"{path}?{encoded}", headers=headers)
        form = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
        return await self.http.post(path, content=encoded, headers=form)

    async def bearer(
        self, method: str, token: str, params: dict[str, str] | None = None
    ) -> httpx.Response:
        return await self.http.post(
            f"/rest/2.0/{method}",
            data=params or {},
            headers={"Authorization": f"Bearer {token}"},
        )
