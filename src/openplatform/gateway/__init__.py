"""The open API gateway (PROTOCOL §3): ``/rest/2.0/<method>``.

:func:`gateway_routes` gives the routes the application mounts; the checks of
§3.3 are in :mod:`openplatform.gateway.pipeline`, one module per check.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from openplatform.gateway.asgi import GatewayApp
from openplatform.gateway.credential_cache import credential_cache, invalidate_app
from openplatform.gateway.maintenance import maintenance_switch, set_maintenance
from openplatform.gateway.pipeline import Gateway
from openplatform.methods import default_registry
from openplatform.methods.registry import MethodRegistry
from openplatform.services import Services

__all__ = [
    "PREFIX",
    "Gateway",
    "GatewayApp",
    "gateway_app",
    "gateway_routes",
    "invalidate_app",
    "set_maintenance",
]

PREFIX = "/rest/2.0"


def gateway_app(services: Services, registry: MethodRegistry | None = None) -> GatewayApp:
    """The raw ASGI app that answers ``/rest/2.0`` and everything below it.
    ``registry`` defaults to every method of :mod:`openplatform.methods`."""
    gateway = Gateway(
        services,
        registry if registry is not None else default_registry(),
        credential_cache(services),
        maintenance_switch(services),
    )
    return GatewayApp(gateway, services.settings.max_params)


def gateway_routes(services: Services, registry: MethodRegistry | None = None) -> list[BaseRoute]:
    """:func:`gateway_app` as Starlette routes."""
    app = gateway_app(services, registry)
    return [Route(PREFIX, app), Route(PREFIX + "/{method:path}", app)]
