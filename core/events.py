"""Two ways the layers talk without importing each other.

1. The handler registry: payments publishes `payment.succeeded`, `payment.expired` and
   `payment.refunded`; `cashless/` registers each domain's handlers at start-up. Handlers run in
   the publisher's database transaction, so a domain's reaction commits or rolls back with it.
2. The live bus: messages for open streams (Server-Sent Events), published after commit. It is
   in-process on the embedded default and Redis pub/sub across processes otherwise.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections import defaultdict
from collections.abc import Callable
from typing import Any, Protocol

from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

Handler = Callable[[Session, dict[str, Any]], None]


class HandlerRegistry:
    """Event name → handlers, called synchronously inside the caller's transaction."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = defaultdict(list)

    def register(self, event: str, handler: Handler) -> None:
        if handler not in self._handlers[event]:
            self._handlers[event].append(handler)

    def publish(self, session: Session, event: str, payload: dict[str, Any]) -> None:
        for handler in list(self._handlers.get(event, ())):
            handler(session, payload)

    def clear(self) -> None:
        self._handlers.clear()


handlers = HandlerRegistry()


class Subscription(Protocol):
    def get(self, timeout: float) -> dict[str, Any] | None: ...

    def close(self) -> None: ...


class LiveBus(Protocol):
    def publish(self, channel: str, message: dict[str, Any]) -> None: ...

    def subscribe(self, channel: str) -> Subscription: ...


class _QueueSubscription:
    def __init__(self, bus: InProcessBus, channel: str) -> None:
        self.bus, self.channel = bus, channel
        self.inbox: queue.Queue[dict[str, Any]] = queue.Queue()

    def get(self, timeout: float) -> dict[str, Any] | None:
        try:
            return self.inbox.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        self.bus._remove(self.channel, self.inbox)


class InProcessBus:
    """Subscribers are queues in this process (the embedded default has one process)."""

    def __init__(self) -> None:
        self._subscribers: dict[str, list[queue.Queue[dict[str, Any]]]] = defaultdict(list)
        self._lock = threading.Lock()

    def publish(self, channel: str, message: dict[str, Any]) -> None:
        with self._lock:
            targets = list(self._subscribers.get(channel, ()))
        for target in targets:
            target.put(message)

    def subscribe(self, channel: str) -> Subscription:
        """Subscribed from the moment this returns: nothing published later is missed."""
        subscription = _QueueSubscription(self, channel)
        with self._lock:
            self._subscribers[channel].append(subscription.inbox)
        return subscription

    def _remove(self, channel: str, inbox: queue.Queue[dict[str, Any]]) -> None:
        with self._lock:
            if inbox in self._subscribers.get(channel, []):
                self._subscribers[channel].remove(inbox)


class _RedisSubscription:
    def __init__(self, pubsub: Any) -> None:
        self.pubsub = pubsub

    def get(self, timeout: float) -> dict[str, Any] | None:
        raw = self.pubsub.get_message(timeout=timeout)
        return json.loads(raw["data"]) if raw else None

    def close(self) -> None:
        self.pubsub.close()


class RedisBus:
    """Redis pub/sub: a message published by a worker reaches a stream served by any node."""

    def __init__(self, redis_url: str) -> None:
        from redis import Redis

        self.redis = Redis.from_url(redis_url, socket_connect_timeout=2)

    def publish(self, channel: str, message: dict[str, Any]) -> None:
        self.redis.publish(f"cashless:{channel}", json.dumps(message))

    def subscribe(self, channel: str) -> Subscription:
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(f"cashless:{channel}")
        return _RedisSubscription(pubsub)


def publish_after_commit(session: Session, channel: str, message: dict[str, Any]) -> None:
    """Queue a live message on the session; it is sent only if the transaction commits."""
    session.info.setdefault("live", []).append((channel, message))


def make_live_hook(bus: LiveBus) -> Callable[[Session], None]:
    """The after-commit hook that sends a session's queued live messages (never raises)."""

    def _hook(session: Session) -> None:
        for channel, message in session.info.pop("live", []):
            try:
                bus.publish(channel, message)
            except Exception:
                log.warning("live bus unavailable; stream clients fall back to polling")

    return _hook
