from tests.gateway.world import backends, gateway_database_url, shared_state, world

__all__ = ["backends", "gateway_database_url", "shared_state", "world"]
