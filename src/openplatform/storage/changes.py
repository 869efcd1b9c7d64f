"""Who needs to know, once it is committed, that an app's settings or one of
its credentials changed: processes that keep apps, tokens and session keys
in memory (:mod:`openplatform.gateway.credential_cache`). Repositories
publish the ids of the apps concerned after their transaction committed;
listeners are subscribed by whoever holds such memory. Business code never
has to remember to invalidate anything."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

__all__ = ["AppChanges", "Listener"]

Listener = Callable[[frozenset[int]], Awaitable[None]]


class AppChanges:
    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        self._listeners.remove(listener)

    async def publish(self, app_ids: Iterable[int]) -> None:
        """Tell every listener that these apps changed (after the commit). A
        listener that fails makes the caller fail: the change is durable, but
        whoever made it must learn that caches may not have heard of it."""
        changed = frozenset(app_ids)
        if changed:
            for listener in list(self._listeners):
                await listener(changed)
