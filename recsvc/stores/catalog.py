"""Operators' catalog changes between trainings: stock, delisting and price.

Kept in one JSON file in the state directory, replaced atomically under a file lock, and
re-read by every worker as soon as its modification stamp changes (one `stat` per
request), so an item marked out of stock disappears from every response at once, from
every worker, cached lists included (they are filtered when served)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from recsvc.core.artifacts import write_atomically
from recsvc.core.model import RecommenderModel

FIELDS = ("in_stock", "delisted", "price")


class CatalogOverrides:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._items: dict[str, dict[str, Any]] = {}
        self.generation = 0
        self._masks: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
        self.refresh()

    def refresh(self) -> None:
        try:
            st = os.stat(self.path)
        except (FileNotFoundError, NotADirectoryError):  # nothing overridden (yet)
            if self._stamp is not None:
                self._stamp, self._items = None, {}
                self.generation += 1
            return
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return
        try:
            items = orjson.loads(self.path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return  # mid-replace on a strange filesystem: keep the last good copy
        self._stamp, self._items = stamp, items if isinstance(items, dict) else {}
        self.generation += 1
        self._masks.clear()

    def get(self, item_id: str) -> dict[str, Any]:
        return dict(self._items.get(item_id, {}))

    def update(self, item_id: str, changes: dict[str, Any], replace: bool = False) -> dict:
        """Merge (PATCH) or replace (PUT) one item's overrides; returns them."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                current = orjson.loads(self.path.read_bytes())
            except FileNotFoundError:
                current = {}
            entry = {} if replace else dict(current.get(item_id, {}))
            entry.update({k: v for k, v in changes.items() if k in FIELDS and v is not None})
            current[item_id] = entry
            write_atomically(self.path, orjson.dumps(current))
        self.refresh()
        return entry

    def masks(self, model: RecommenderModel) -> tuple[np.ndarray, np.ndarray]:
        """(allowed, price) over the model's items: in stock, not delisted, with prices
        as overridden. Cached until the overrides or the model change."""
        key = (model.version, self.generation)
        cached = self._masks.get(key)
        if cached is not None:
            return cached
        allowed = np.asarray(model.item_in_stock, dtype=bool).copy()
        price = np.asarray(model.item_price, dtype=np.float32).copy()
        if self._items:
            ids = list(self._items)
            index = model.item_index(ids)
            for item_id, i in zip(ids, index, strict=True):
                if i < 0:
                    continue
                entry = self._items[item_id]
                if "in_stock" in entry:
                    allowed[i] = bool(entry["in_stock"])
                if entry.get("delisted"):
                    allowed[i] = False
                if entry.get("price") is not None:
                    price[i] = float(entry["price"])
        self._masks = {key: (allowed, price)}
        return allowed, price
