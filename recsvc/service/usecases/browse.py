"""Lists that are not a shopper's own: related items for a product page (`/similar`),
and popular and trending items for a category page (`/popular`)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import orjson
from starlette.concurrency import run_in_threadpool

from recsvc.core.lists import Entry, popular_entries, similar_entries
from recsvc.core.policy.filters import ItemFilters, filter_stage
from recsvc.service.errors import NotFound
from recsvc.service.state import ServiceState


def items_payload(entries: list[Entry]) -> list[dict[str, Any]]:
    return [{"item_id": e[1], "score": e[2], "reasons": e[3]} for e in entries]


def _viewer(state: ServiceState, user_id: str | None) -> str | None:
    """Who an impression is logged for: the shopper when they allow it, else nobody."""
    return state.subject(user_id) if user_id and state.personal(user_id) else None


async def similar_body(state: ServiceState, item_id: str, n: int, user_id: str | None = None,
                       placement: str | None = None, log: bool = True) -> bytes:
    engine = state.engine
    item = int(engine.model.item_index([item_id])[0])
    if item < 0:
        raise NotFound(f"unknown item {item_id!r}")
    live, price = state.live()
    stage = filter_stage(engine.model, engine.rules, live, price)
    entries = await run_in_threadpool(similar_entries, engine, item, n, stage.allowed, live)
    rid = os.urandom(16).hex()
    if log:
        state.impression(rid, _viewer(state, user_id), "default", placement or "similar",
                         np.array([e[0] for e in entries], dtype=np.int64))
    return orjson.dumps({"item_id": item_id, "model_version": engine.version,
                         "recommendation_id": rid, "items": items_payload(entries)})


def popular_body(state: ServiceState, n: int, category: str | None,
                 attributes: dict[str, str], user_id: str | None = None,
                 placement: str | None = None) -> bytes:
    engine = state.engine
    live, price = state.live()
    stage = filter_stage(engine.model, engine.rules, live, price, ItemFilters(category))
    popular = popular_entries(engine, "popular", n, stage.allowed, attributes)
    trending = popular_entries(engine, "trending", n, stage.allowed, attributes)
    rid, viewer = os.urandom(16).hex(), _viewer(state, user_id)
    for surface, entries in (("popular", popular), ("trending", trending)):
        state.impression(rid, viewer, "default", f"{placement}:{surface}" if placement
                         else surface, np.array([e[0] for e in entries], dtype=np.int64))
    return orjson.dumps({"model_version": engine.version, "recommendation_id": rid,
                         "popular": items_payload(popular),
                         "trending": items_payload(trending)})
