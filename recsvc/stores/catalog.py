"""Operators' catalog changes between trainings: stock, delisting and price, and items
created since the training (with their title, description, category, brand, price and
tags: `with_added` makes them recommendable at once, `core.added_items`).

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

from recsvc.core.added_items import with_items
from recsvc.core.artifacts import write_atomically
from recsvc.core.engine import Engine
from recsvc.core.model import RecommenderModel, lookup
from recsvc.core.policy.rules import RulesFile
from recsvc.core.ranking.warmup import warm_up

STATE_FIELDS = ("in_stock", "delisted", "price", "stock")
ATTRIBUTES = ("title", "description", "category", "brand", "tags", "created_at")
FIELDS = STATE_FIELDS + ATTRIBUTES


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
        key = (model.version, model.n_items, self.generation)
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
                if entry.get("stock") is not None:
                    allowed[i] = int(entry["stock"]) > 0
                if entry.get("delisted"):
                    allowed[i] = False
                if entry.get("price") is not None:
                    price[i] = float(entry["price"])
        self._masks = {key: (allowed, price)}
        return allowed, price

    def created_rows(self) -> list[dict[str, Any]]:
        """Catalog rows of the items created here (in the order they were created): id,
        attributes and price. Stock is not a row's: it acts when lists are read
        (`masks`), so a change of stock never rebuilds an engine."""
        self.refresh()
        out = [{**{k: entry.get(k) for k in ATTRIBUTES}, "item_id": item_id,
                "price": entry.get("price")}
               for item_id, entry in self._items.items() if "created_at" in entry]
        return sorted(out, key=lambda r: (float(r["created_at"]), r["item_id"]))

    def added_rows(self, model: RecommenderModel) -> list[dict[str, Any]]:
        """The created items that `model` was not trained on, for
        `added_items.with_items`."""
        trained = model.item_ids[:model.trained_items or model.n_items]
        return [r for r in self.created_rows() if lookup(trained, [r["item_id"]])[0] < 0]

    def with_added(self, trained: Engine, rules: RulesFile, now: float) -> Engine:
        """The engine of a trained model (`trained`) with the items created here since
        added (the same engine when there are none): what the service and the jobs
        serve from."""
        self.refresh()
        rows = self.added_rows(trained.model)
        if not rows:
            return trained
        engine = Engine.build(with_items(trained.model, rows, now), rules)
        warm_up(engine.model)
        return engine
