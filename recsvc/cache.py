"""The top-N cache and the fresh-events store: Redis when configured, else in-process.

A user's list is one pre-serialized value under a key that carries the model version
and the A/B variant, so a new model never serves old lists and a hit is one GET.

Redis trouble never fails a request: every call has a short timeout, and after a few
consecutive errors a circuit breaker stops calling Redis for a while (the service
computes instead and `/readyz` says `degraded`), then lets one call through to see
whether Redis is back."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Protocol

import orjson

log = logging.getLogger("recsvc.cache")


def list_key(namespace: str, version: str, variant: str, user_id: str) -> str:
    return f"{namespace}:list:{version}:{variant}:{user_id}"


def fresh_key(namespace: str, user_id: str) -> str:
    return f"{namespace}:fresh:{user_id}"


class Cache(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_s: int) -> None: ...

    async def delete(self, keys: Iterable[str]) -> None: ...

    async def add_fresh(self, key: str, events: list[bytes], cap: int, ttl_s: int) -> None: ...

    async def fresh(self, key: str) -> list[bytes]: ...

    def status(self) -> str: ...

    async def close(self) -> None: ...


class LocalCache:
    """An LRU with expiry, private to one process (the demo, tests, one-worker setups)."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._lists: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._fresh: dict[str, tuple[float, list[bytes]]] = {}

    async def get(self, key: str) -> bytes | None:
        entry = self._lists.get(key)
        if entry is None:
            return None
        if entry[0] < time.monotonic():
            del self._lists[key]
            return None
        self._lists.move_to_end(key)
        return entry[1]

    async def set(self, key: str, value: bytes, ttl_s: int) -> None:
        self._lists[key] = (time.monotonic() + ttl_s, value)
        self._lists.move_to_end(key)
        while len(self._lists) > self.max_entries:
            self._lists.popitem(last=False)

    async def delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._lists.pop(key, None)

    async def add_fresh(self, key: str, events: list[bytes], cap: int, ttl_s: int) -> None:
        _, current = self._fresh.get(key, (0.0, []))
        self._fresh[key] = (time.monotonic() + ttl_s, (current + events)[-cap:])

    async def fresh(self, key: str) -> list[bytes]:
        expires, events = self._fresh.get(key, (0.0, []))
        if expires < time.monotonic():
            self._fresh.pop(key, None)
            return []
        return events

    def status(self) -> str:
        return "embedded"

    async def close(self) -> None:
        return None


class Breaker:
    """Closed (calls go through) until `failures` errors in a row; then open for
    `reset_s`; then half-open: one call decides whether to close or open again."""

    def __init__(self, failures: int, reset_s: float) -> None:
        self.failures = failures
        self.reset_s = reset_s
        self._errors = 0
        self._opened_at: float | None = None
        self._trial = False

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        return "half_open" if time.monotonic() >= self._opened_at + self.reset_s else "open"

    def allow(self) -> bool:
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._trial:
            self._trial = True
            return True
        return False

    def success(self) -> None:
        self._errors, self._opened_at, self._trial = 0, None, False

    def failure(self) -> None:
        self._errors += 1
        self._trial = False
        if self._opened_at is not None or self._errors >= self.failures:
            self._opened_at = time.monotonic()


class RedisCache:
    def __init__(self, url: str, timeout_ms: float, failures: int, reset_s: float) -> None:
        import redis.asyncio as aioredis

        timeout = timeout_ms / 1000.0
        self.client = aioredis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout,
            retry_on_timeout=False, health_check_interval=0)
        self.breaker = Breaker(failures, reset_s)
        self.errors = 0

    async def _call(self, what: str, coro_fn, default):  # noqa: ANN001, ANN202
        if not self.breaker.allow():
            return default
        try:
            result = await coro_fn()
        except Exception as exc:  # noqa: BLE001 - any Redis trouble means "compute instead"
            self.errors += 1
            self.breaker.failure()
            log.warning("redis %s failed: %s (breaker %s)", what, exc, self.breaker.state)
            return default
        self.breaker.success()
        return result

    async def get(self, key: str) -> bytes | None:
        return await self._call("GET", lambda: self.client.get(key), None)

    async def set(self, key: str, value: bytes, ttl_s: int) -> None:
        await self._call("SET", lambda: self.client.set(key, value, ex=ttl_s), None)

    async def delete(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        if keys:
            await self._call("DEL", lambda: self.client.delete(*keys), None)

    async def add_fresh(self, key: str, events: list[bytes], cap: int, ttl_s: int) -> None:
        async def push() -> None:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.rpush(key, *events).ltrim(key, -cap, -1).expire(key, ttl_s)
                await pipe.execute()

        await self._call("RPUSH", push, None)

    async def fresh(self, key: str) -> list[bytes]:
        return await self._call("LRANGE", lambda: self.client.lrange(key, 0, -1), [])

    def status(self) -> str:
        return "ok" if self.breaker.state == "closed" else "degraded"

    async def close(self) -> None:
        await self.client.aclose()


def encode_fresh(item_id: str, weight: float, timestamp: float) -> bytes:
    return orjson.dumps([item_id, weight, timestamp])


def decode_fresh(raw: list[bytes]) -> list[tuple[str, float, float]]:
    out = []
    for value in raw:
        try:
            item, weight, ts = orjson.loads(value)
            out.append((str(item), float(weight), float(ts)))
        except (orjson.JSONDecodeError, TypeError, ValueError):
            continue  # a foreign value under our key: ignore it rather than fail a page
    return out
