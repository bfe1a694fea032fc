"""The cache's interface: what the service reads and writes per request (`Cache`,
async) and what jobs write in bulk (`BulkWriter`), each opened from a URL, so a backend
is chosen by configuration and another one plugs in here.

- `redis://`, `rediss://`, `unix://`: Redis (`stores.redis_cache`), shared by every
  worker, replica and job;
- `redis-cluster://host:port` (`rediss-cluster://`): a Redis Cluster, any of its nodes
  named (the others are discovered); a shopper's keys share a slot (`stores.keys`);
- `memory://`: an LRU inside the process (`stores.local_cache`): the demo, tests,
  one-worker setups.

What lives under which key: `stores.keys`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from recsvc.stores.keys import (
    decode_fresh,
    encode_fresh,
    event_key,
    fresh_key,
    list_key,
    shown_key,
)

__all__ = ["BulkWriter", "Cache", "decode_fresh", "encode_fresh", "event_key", "fresh_key",
           "list_key", "open_bulk_writer", "open_cache", "shown_key"]

CLUSTER_SCHEMES = ("redis-cluster", "rediss-cluster")
REDIS_SCHEMES = ("redis", "rediss", "unix", *CLUSTER_SCHEMES)
MEMORY = "memory://"


class Cache(Protocol):
    """Per-request reads and writes. Never raises for a backend's trouble: a read
    answers as a miss, a write is dropped, and `status()` says `degraded`."""

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_s: int) -> None: ...

    async def delete(self, keys: Iterable[str]) -> int:
        """Delete lists and fresh-event keys; how many existed (0 when unreachable)."""
        ...

    async def purge(self, namespace: str, is_target: Callable[[str], bool]) -> int:
        """Delete what this process alone holds for shoppers whose key part (id, or its
        hash) `is_target` picks: a forget made by another worker. 0 for a shared store."""
        ...

    async def add_fresh(self, key: str, events: list[bytes], cap: int, ttl_s: int) -> None: ...

    async def fresh(self, key: str) -> list[bytes]: ...

    async def shown(self, key: str) -> dict[bytes, bytes]:
        """A shopper's shown-items hash ({} when none, or unreachable)."""
        ...

    async def update_shown(self, key: str, fields: dict[str, bytes], drop: list[str],
                           ttl_s: int) -> None:
        """Set `fields` and delete `drop` in a shown-items hash; it expires `ttl_s` after
        the last update that set something."""
        ...

    async def claim(self, key: str, ttl_s: int) -> bool:
        """Set `key` unless it exists; True if this call set it. When the backend is
        unreachable: True (better a duplicate, which the trainer drops, than a loss)."""
        ...

    def status(self) -> str: ...

    async def close(self) -> None: ...


class BulkWriter(Protocol):
    """What a job writes: many lists at once, and which users have fresh events (their
    lists are left to the service, which folds those events in)."""

    def set_many(self, keys: list[bytes], values: list[bytes], ttl_s: int) -> None: ...

    def users_with_fresh(self, namespace: str) -> set[str]: ...

    def close(self) -> None: ...


def scheme(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


def open_cache(url: str | None, *, timeout_ms: float = 50.0, breaker_failures: int = 3,
               breaker_reset_s: float = 5.0, local_entries: int = 100_000) -> Cache:
    """The service's cache for `url` (None: in-process)."""
    if url is None or url == MEMORY:
        from recsvc.stores.local_cache import LocalCache

        return LocalCache(local_entries)
    if scheme(url) in REDIS_SCHEMES:
        from recsvc.stores.redis_cache import RedisCache

        return RedisCache(url, timeout_ms, breaker_failures, breaker_reset_s)
    raise ValueError(f"cache URL {url!r}: unknown scheme (redis://, rediss://, unix://, "
                     f"redis-cluster:// or {MEMORY})")


def open_bulk_writer(url: str, timeout_s: float = 30.0) -> BulkWriter:
    """A job's writer for `url`; a ConnectionError when the cache cannot be reached.
    An in-process cache cannot be written from another process: refused."""
    if scheme(url) in REDIS_SCHEMES:
        from recsvc.stores.redis_cache import RedisBulkWriter

        return RedisBulkWriter(url, timeout_s)
    raise ValueError(f"cache URL {url!r}: a job can only fill a shared cache "
                     "(redis://, rediss://, unix:// or redis-cluster://)")
