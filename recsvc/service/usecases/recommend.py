"""`GET /recommend`: a shopper's list, from the cache when it is there and enough of it
may still be shown, else computed (and cached; a stranger's plain list under one shared
key). The route and the fast path both answer
with `recommend_body`."""

from __future__ import annotations

import dataclasses
import os
import time

import orjson
from starlette.concurrency import run_in_threadpool

from recsvc.core.lists import RecommendQuery, shopper_list
from recsvc.core.policy.filters import filter_stage
from recsvc.core.ranking.packed import unpack
from recsvc.service import telemetry
from recsvc.service.auth import Caller
from recsvc.service.state import ServiceState
from recsvc.stores.cache import decode_fresh, fresh_key, list_key


async def recommend_body(state: ServiceState, query: RecommendQuery, caller: Caller,
                         log: bool = True) -> bytes:
    """The response to `GET /recommend`, as JSON bytes (`log`: as an impression; not
    for an operator's look at a shopper's list)."""
    if caller.kind == "shopper":
        if not query.user_id:
            query = dataclasses.replace(query, user_id=caller.user_id or "")
        caller.check_user(query.user_id, "user_id")
    engine = state.engine
    settings = state.settings
    shown_id = query.user_id
    if shown_id and not state.personal(shown_id):
        # forgotten, or no consent to personalization: a stranger's list, nothing kept
        query = dataclasses.replace(query, user_id="", recent_items=())
    variant = engine.rules.variant_for(query.user_id)
    live, price = state.live()
    stage = filter_stage(engine.model, engine.rules, live, price, query.filters)
    # A stranger's plain list is the same for every stranger: cached once, under no id
    # (the forgotten and those who refused consent are served it on every request).
    subject = state.subject(query.user_id) if query.user_id else ""
    key = (list_key(settings.cache_namespace, engine.version, variant.name, subject)
           if query.cacheable else None)
    packed, positions = None, None
    if key is not None:
        raw = await state.cache.get(key)
        packed = unpack(raw) if raw is not None else None
        if packed is not None:
            positions = stage.select(packed.items, query.n)
            if len(positions) < min(query.n, len(packed)):
                positions = None  # too many went out of stock since: compute afresh
        (telemetry.CACHE_HIT if positions is not None else telemetry.CACHE_MISS).inc()
    else:
        telemetry.CACHE_SKIP.inc()
    if packed is None or positions is None:
        fresh = []
        if query.user_id:
            raw_fresh = await state.cache.fresh(fresh_key(settings.cache_namespace, subject))
            fresh = [(item, w, kind) for item, w, ts, kind in decode_fresh(raw_fresh)
                     if ts > engine.reference_time]
        value, fallback = await run_in_threadpool(
            shopper_list, engine, query, variant, fresh, live, stage.allowed,
            max(settings.cache_list_size, query.n), time.time(), settings.new_arrival_days)
        if fallback:
            telemetry.FALLBACKS.labels(kind=fallback).inc()
        if key is not None:
            await state.cache.set(key, value, settings.cache_ttl_s)
        packed = unpack(value)
        assert packed is not None
        positions = stage.select(packed.items, query.n)
    telemetry.count_recommendation(variant.name)
    rid = os.urandom(16).hex()
    if log:
        state.impression(rid, subject or None, variant.name,
                         query.placement or "recommend", packed.items[positions])
    head = orjson.dumps({"user_id": shown_id or None, "model_version": engine.version,
                         "variant": variant.name, "recommendation_id": rid})
    exposure = settings.open_reasons if caller.kind == "open" else "full"
    return (head[:-1] + b',"items":' + engine.renderer.items_json(packed, positions, exposure)
            + b"}")
