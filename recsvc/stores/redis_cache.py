"""Redis as the cache: per-request reads and writes for the service (`RedisCache`) and
bulk writes for the jobs (`RedisBulkWriter`), on one Redis (and its replicas) or on a
Redis Cluster (`redis-cluster://` URLs: every shopper's keys in one slot, `stores.keys`).

Redis trouble never fails a request: every call has a short timeout, and after a few
consecutive errors a circuit breaker stops calling Redis for a while (the service
computes instead and `/readyz` says `degraded`), then lets one call through to see
whether Redis is back."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from recsvc.stores.keys import fresh_prefix, user_of

log = logging.getLogger("recsvc.cache")
T = TypeVar("T")


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


def is_cluster(url: str) -> bool:
    return url.split("://", 1)[0].lower().endswith("-cluster")


def cluster_url(url: str) -> str:
    """`redis-cluster://h:p` as redis-py's cluster client takes it (`redis://h:p`)."""
    scheme, rest = url.split("://", 1)
    return f"{scheme.lower().removesuffix('-cluster')}://{rest}"


class RedisCache:
    def __init__(self, url: str, timeout_ms: float, failures: int, reset_s: float) -> None:
        import redis.asyncio as aioredis
        from redis.asyncio.cluster import RedisCluster

        timeout = timeout_ms / 1000.0
        options = {"socket_timeout": timeout, "socket_connect_timeout": timeout,
                   "health_check_interval": 0}
        self.client = (RedisCluster.from_url(cluster_url(url), **options)
                       if is_cluster(url)
                       else aioredis.Redis.from_url(url, retry_on_timeout=False, **options))
        self.breaker = Breaker(failures, reset_s)
        self.errors = 0

    async def _call(self, what: str, coro_fn: Callable[[], Awaitable[T]], default: T) -> T:
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

    async def delete(self, keys: Iterable[str]) -> int:
        keys = list(keys)
        if not keys:
            return 0
        return int(await self._call("DEL", lambda: self.client.delete(*keys), 0) or 0)

    async def purge(self, namespace: str, is_target: Callable[[str], bool]) -> int:
        return 0  # one Redis for every worker: the forget request deleted its keys there

    async def add_fresh(self, key: str, events: list[bytes], cap: int, ttl_s: int) -> None:
        async def push() -> None:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.rpush(key, *events).ltrim(key, -cap, -1).expire(key, ttl_s)
                await pipe.execute()

        await self._call("RPUSH", push, None)

    async def fresh(self, key: str) -> list[bytes]:
        return await self._call("LRANGE", lambda: self.client.lrange(key, 0, -1), [])

    async def shown(self, key: str) -> dict[bytes, bytes]:
        return await self._call("HGETALL", lambda: self.client.hgetall(key), {})

    async def update_shown(self, key: str, fields: dict[str, bytes], drop: list[str],
                           ttl_s: int) -> None:
        async def update() -> None:
            async with self.client.pipeline(transaction=True) as pipe:
                if drop:
                    pipe.hdel(key, *drop)
                if fields:
                    pipe.hset(key, mapping=fields).expire(key, ttl_s)
                await pipe.execute()

        if fields or drop:
            await self._call("HSET", update, None)

    async def claim(self, key: str, ttl_s: int) -> bool:
        claimed = await self._call("SET NX", lambda: self.client.set(key, b"1", ex=ttl_s,
                                                                      nx=True), True)
        return bool(claimed)

    def status(self) -> str:
        return "ok" if self.breaker.state == "closed" else "degraded"

    async def close(self) -> None:
        await self.client.aclose()


# Sets each key of KEYS to its value in ARGV[2..] with the expiry ARGV[1].
SET_MANY = """
local ttl = ARGV[1]
for i, key in ipairs(KEYS) do
  redis.call('SET', key, ARGV[i + 1], 'EX', ttl)
end
return #KEYS
"""
SET_MANY_KEYS = 500


class RedisBulkWriter:
    """Writes lists with SET ... EX, SET_MANY_KEYS per call of a short server-side loop:
    the client packs one command and parses one reply per few hundred lists (measured:
    9 against 14-21 µs a list for a pipeline of SETs), and Redis is blocked for about a
    millisecond at a time. The command is packed here in one buffer and sent in one
    write: redis-py's packer sends a large command as many small writes."""

    def __init__(self, url: str, timeout_s: float) -> None:
        import redis

        self.cluster = is_cluster(url)
        try:
            if self.cluster:
                self.client = redis.RedisCluster.from_url(cluster_url(url),
                                                          socket_timeout=timeout_s)
            else:
                self.client = redis.Redis.from_url(url, socket_timeout=timeout_s)
                self.sha = self.client.script_load(SET_MANY).encode()
        except (redis.RedisError, OSError) as exc:
            raise ConnectionError(f"cannot reach Redis at {url}: {exc}") from None

    def set_many(self, keys: list[bytes], values: list[bytes], ttl_s: int) -> None:
        import redis

        if self.cluster:
            # Keys of many shoppers span every node: a pipeline, which sends each node
            # its share, rather than one script (whose keys must share a slot).
            for at in range(0, len(keys), SET_MANY_KEYS):
                with self.client.pipeline(transaction=False) as pipe:
                    for key, value in zip(keys[at:at + SET_MANY_KEYS],
                                          values[at:at + SET_MANY_KEYS], strict=True):
                        pipe.set(key, value, ex=ttl_s)
                    pipe.execute()
            return

        ttl = str(int(ttl_s)).encode()
        for at in range(0, len(keys), SET_MANY_KEYS):
            part_keys, part_values = keys[at:at + SET_MANY_KEYS], values[at:at + SET_MANY_KEYS]
            args = [b"EVALSHA", self.sha, str(len(part_keys)).encode(), *part_keys, ttl,
                    *part_values]
            try:
                self._send(args)
            except redis.exceptions.NoScriptError:  # Redis restarted: load it again
                self.sha = self.client.script_load(SET_MANY).encode()
                args[1] = self.sha
                self._send(args)

    def _send(self, args: list[bytes]) -> None:
        payload = b"".join([b"*%d\r\n" % len(args),
                            *(b"$%d\r\n%s\r\n" % (len(arg), arg) for arg in args)])
        pool = self.client.connection_pool
        connection = pool.get_connection()
        try:
            connection.send_packed_command([payload])
            connection.read_response()  # raises on an error reply (NOSCRIPT included)
        finally:
            pool.release(connection)

    def users_with_fresh(self, namespace: str) -> set[str]:
        """One SCAN for every user with fresh events, rather than a look-up per user."""
        prefix = fresh_prefix(namespace)
        return {user_of(key.decode()[len(prefix):])
                for key in self.client.scan_iter(match=f"{prefix}*", count=10_000)}

    def close(self) -> None:
        self.client.close()
