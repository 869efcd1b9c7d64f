"""An ASGI target for ``signed_call.py``: the gateway alone, with one extra
method ``bench.echo`` that does no I/O, behind the platform's request-id and
metrics middleware — the cost of the checks of PROTOCOL §3.3 without a
method's database work."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route

from openplatform.app import RequestContextMiddleware, build_services, healthz
from openplatform.config import Settings
from openplatform.gateway import gateway_routes
from openplatform.methods import default_registry
from openplatform.methods.registry import MethodCall, MethodSpec

__all__ = ["ECHO", "gateway_echo_app"]

ECHO = "bench.echo"


async def _echo(call: MethodCall) -> object:
    return {"app_id": call.app.id}


def gateway_echo_app() -> Starlette:
    registry = default_registry()
    registry.register(MethodSpec(ECHO, _echo, description="Answers at once (bench only)."))
    services = build_services(Settings.from_env())
    return Starlette(
        routes=[Route("/healthz", healthz), *gateway_routes(services, registry)],
        middleware=[Middleware(RequestContextMiddleware)],
    )
