"""The open API gateway (PROTOCOL §3): ``/rest/2.0/<method>``.

:func:`gateway_routes` gives the routes the application mounts; the checks of
§3.3 are in :mod:`openplatform.gateway.pipeline`, one module per check.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from openplatform.gateway.app_cache import app_cache, invalidate_app
from openplatform.gateway.asgi import GatewayApp
from openplatform.gateway.maintenance import maintenance_switch, set_maintenance
from openplatform.gateway.pipeline import Gateway
from openplatform.methods import default_registry
from openplatform.methods.registry import MethodRegistry
from openplatform.services import Services

__all__ = ["Gateway", "gateway_routes", "invalidate_app", "set_maintenance"]


def gateway_routes(services: Services, registry: MethodRegistry | None = None) -> list[BaseRoute]:
    """``/rest/2.0`` and everything below it, answered by one raw ASGI app.
    ``registry`` defaults to every method of :mod:`openplatform.methods`."""
    gateway = Gateway(
        services,
        registry if registry is not None else default_registry(),
        app_cache(services),
        maintenance_switch(services),
    )
    app = GatewayApp(gateway)
    return [Route("/rest/2.0", app), Route("/rest/2.0/{method:path}", app)]
