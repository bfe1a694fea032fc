"""The in-process cache: an LRU with expiry, private to one process (the demo, tests,
one-worker setups)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

from recsvc.stores.keys import fresh_prefix, shown_prefix, user_of


class LocalCache:
    """An LRU with expiry, private to one process (the demo, tests, one-worker setups)."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._lists: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._fresh: dict[str, tuple[float, list[bytes]]] = {}
        self._shown: dict[str, tuple[float, dict[bytes, bytes]]] = {}

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

    async def delete(self, keys: Iterable[str]) -> int:
        removed = 0
        for key in keys:
            removed += (self._lists.pop(key, None) is not None) + (
                self._fresh.pop(key, None) is not None) + (
                self._shown.pop(key, None) is not None)
        return removed

    async def purge(self, namespace: str, is_target: Callable[[str], bool]) -> int:
        lists = f"{namespace}:list:"
        doomed = [k for k in self._lists
                  if k.startswith(lists) and is_target(user_of(k.rsplit(":", 1)[-1]))]
        for prefix, held in ((fresh_prefix(namespace), self._fresh),
                             (shown_prefix(namespace), self._shown)):
            doomed += [k for k in held if k.startswith(prefix)
                       and is_target(user_of(k[len(prefix):]))]
        return await self.delete(doomed)

    async def add_fresh(self, key: str, events: list[bytes], cap: int, ttl_s: int) -> None:
        _, current = self._fresh.get(key, (0.0, []))
        self._fresh[key] = (time.monotonic() + ttl_s, (current + events)[-cap:])

    async def fresh(self, key: str) -> list[bytes]:
        expires, events = self._fresh.get(key, (0.0, []))
        if expires < time.monotonic():
            self._fresh.pop(key, None)
            return []
        return events

    async def shown(self, key: str) -> dict[bytes, bytes]:
        expires, fields = self._shown.get(key, (0.0, {}))
        if expires < time.monotonic():
            self._shown.pop(key, None)
            return {}
        return dict(fields)

    async def update_shown(self, key: str, fields: dict[str, bytes], drop: list[str],
                           ttl_s: int) -> None:
        expires, current = self._shown.get(key, (0.0, {}))
        if expires < time.monotonic():
            current = {}
        for name in drop:
            current.pop(name.encode(), None)
        current.update({k.encode(): v for k, v in fields.items()})
        if fields:
            expires = time.monotonic() + ttl_s
        while len(self._shown) >= self.max_entries and key not in self._shown:
            self._shown.pop(next(iter(self._shown)))  # the oldest shopper's
        self._shown[key] = (expires, current)

    async def claim(self, key: str, ttl_s: int) -> bool:
        if await self.get(key) is not None:
            return False
        await self.set(key, b"1", ttl_s)
        return True

    def status(self) -> str:
        return "embedded"

    async def close(self) -> None:
        return None
