from tests.client.live import live_world

__all__ = ["live_world"]
