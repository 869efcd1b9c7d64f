"""Open API methods (PROTOCOL §4), registered declaratively.

Each module of this package lists its methods in ``METHODS``;
:func:`default_registry` gathers them into the registry the gateway serves.
"""

from __future__ import annotations

from openplatform.methods.registry import MethodRegistry

__all__ = ["default_registry"]


def default_registry() -> MethodRegistry:
    """Every method of the platform."""
    from openplatform.methods import application, batch, data, users

    return MethodRegistry((*users.METHODS, *application.METHODS, *data.METHODS, *batch.METHODS))
