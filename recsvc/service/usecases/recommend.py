"""`GET /recommend`: a shopper's list, from the cache when it is there and enough of it
may still be shown, else computed (and cached; a stranger's plain list under one shared
key). The route and the fast path both answer
with `recommend_body`."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import time

import orjson
from starlette.concurrency import run_in_threadpool

from recsvc.core.lists import RecommendQuery, new_arrivals, shopper_list
from recsvc.core.policy import frequency
from recsvc.core.policy.filters import filter_stage
from recsvc.core.ranking.packed import EMPTY, unpack
from recsvc.service import telemetry
from recsvc.service.auth import Caller
from recsvc.service.state import ServiceState
from recsvc.stores.cache import decode_fresh, fresh_key, list_key, shown_key


async def _none() -> None:
    return None


async def _remember(state: ServiceState, user_id: str, key: str, fields: dict[str, bytes],
                    drop: list[str], ttl_s: int) -> None:
    """Record what a shopper was shown, unless they were forgotten (or withdrew consent)
    while it waited: nothing of theirs is written after that."""
    if state.personal(user_id):
        await state.cache.update_shown(key, fields, drop, ttl_s)


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
    page = query.page or 1
    n, skip = query.n, (page - 1) * query.n
    policy = state.frequency
    # What a shopper was shown is read and written only where it is used (a cap, or a
    # storefront that pages): it costs a read and a write on the cache-hit path.
    paging = query.page is not None and policy.page_memory_s > 0
    memory = shown_key(settings.cache_namespace, subject) if (
        subject and log and (policy.cap is not None or paging)) else None
    shown = None
    if memory is not None:  # what they were shown lately: caps, earlier pages
        raw, raw_shown = await asyncio.gather(
            state.cache.get(key) if key is not None else _none(), state.cache.shown(memory))
        shown = frequency.parse(raw_shown)
        now = time.time()
        hidden = frequency.capped(shown, policy, now)
        earlier = frequency.earlier_pages(shown, policy, page, now) if skip and paging \
            else None
        if earlier is not None:
            hidden += earlier
            skip = 0  # the earlier pages' items are hidden instead: nothing repeats
        if hidden:
            stage = stage.without(engine.model.item_index(hidden))
    elif key is not None:
        raw = await state.cache.get(key)
    packed, positions = None, None
    if key is not None:
        packed = unpack(raw) if raw is not None else None
        if packed is not None and packed.tag == variant.tag:
            packed, positions = stage.show(packed, n, skip)
            if len(positions) < min(n, len(packed) - skip):
                positions = None  # too many went out of stock since: compute afresh
            elif len(positions) < n and len(packed) >= settings.cache_list_size:
                positions = None  # a page beyond the cached candidates: a longer list
        (telemetry.CACHE_HIT if positions is not None else telemetry.CACHE_MISS).inc()
    else:
        telemetry.CACHE_SKIP.inc()
    if packed is None or positions is None:
        fresh = []
        if query.user_id:
            raw_fresh = await state.cache.fresh(fresh_key(settings.cache_namespace, subject))
            fresh = [(item, w, kind) for item, w, ts, kind in decode_fresh(raw_fresh)
                     if ts > engine.reference_time]
        size = max(settings.cache_list_size, n + skip)
        # A cached list is ranked without the rules' exclusions (read-time rules, which
        # may be lifted before it expires); a list of the request's own is ranked within
        # everything that may show.
        # (Stock too: an item back in stock then shows on cached lists.)
        stock, rankable = ((stage.rankable, stage.rankable) if key is not None
                           else (live, stage.allowed))
        value, fallback = await run_in_threadpool(
            shopper_list, engine, query, variant, fresh, stock, rankable, size, time.time(),
            settings.new_arrival_days)
        packed, positions = stage.show(unpack(value) or EMPTY, n, skip)
        if key is not None and len(positions) < min(n, len(packed) - skip):
            # Exclusions or stock took too much of it: ranked again within them, not
            # cached.
            value, fallback = await run_in_threadpool(
                shopper_list, engine, query, variant, fresh, live, stage.allowed, size,
                time.time(), settings.new_arrival_days)
            packed, positions = stage.show(unpack(value) or EMPTY, n, skip)
        elif key is not None:
            await state.cache.set(key, value, settings.cache_ttl_s)
        if fallback:
            telemetry.FALLBACKS.labels(kind=fallback).inc()
    if settings.rotation > 0 and subject and query.page is None:
        # The lower places change from one period to the next (a page of a visit keeps
        # its slices: no rotation there).
        pinned = stage.shown_pins.size  # `packed` has them first already
        k = frequency.rotating(n, settings.rotation, pinned)
        longer = stage.select(packed.items, n + 2 * k, fixed=pinned)
        positions = frequency.rotate(longer, n, k, subject,
                                     int(time.time() // settings.rotation_period_s))
    explored = -1
    if subject and log and engine.rules.explore > 0 and random.random() < engine.rules.explore:
        # A small share of a shopper's lists gives its last place to the new arrival
        # ranked best for them that the list holds but does not show.
        positions, at = stage.explore(packed, positions, new_arrivals(
            engine, time.time(), settings.new_arrival_days))
        if at >= 0:
            explored = int(packed.items[at])
            telemetry.EXPLORED.inc()
    if memory is not None and shown is not None:
        ids = engine.model.item_ids[packed.items[positions]].tolist()
        fields, drop = frequency.record(shown, policy, [str(i) for i in ids],
                                        page if paging else None, time.time())
        # Written before the answer, not after it: a forget that follows the answer,
        # through any worker, must find it to delete (one write where caps or pages
        # are on; a background write could land after the forget and outlive it).
        await _remember(state, query.user_id, memory, fields, drop, policy.ttl_s)
    telemetry.count_recommendation(variant.name)
    rid = os.urandom(16).hex()
    if log:
        state.impression(rid, subject or None, variant.name,
                         query.placement or "recommend", packed.items[positions], explored)
    head = orjson.dumps({"user_id": shown_id or None, "model_version": engine.version,
                         "variant": variant.name, "recommendation_id": rid})
    exposure = settings.open_reasons if caller.kind == "open" else "full"
    return (head[:-1] + b',"items":' + engine.renderer.items_json(packed, positions, exposure)
            + b"}")
