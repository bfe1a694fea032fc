"""`POST /events`: record what shoppers did. Each batch is appended durably to the
events log (the next training learns from it); a shopper's fresh events go to the
cache and their cached lists are dropped, so their next list reflects them at once."""

from __future__ import annotations

import time
from datetime import datetime

import numpy as np
from starlette.concurrency import run_in_threadpool

from recsvc.core.algorithms.content import ContentModel
from recsvc.core.engine import Engine
from recsvc.core.policy import frequency
from recsvc.core.policy.events import SEARCH, SEARCH_MATCHES, epoch_seconds
from recsvc.service import telemetry
from recsvc.service.auth import Caller
from recsvc.service.errors import Invalid, TooLarge, Unavailable
from recsvc.service.schemas import EventIn
from recsvc.service.state import ServiceState
from recsvc.stores.cache import encode_fresh, event_key, fresh_key, list_key, shown_key


def _epoch(value: datetime | float | None, now: float) -> float:
    """Epoch seconds: now when absent; numbers by the trainer's rule (milliseconds
    recognised, anything else NaN, which the checks refuse)."""
    if value is None:
        return now
    if isinstance(value, datetime):
        return value.timestamp()
    return float(epoch_seconds(np.array([value]))[0])


async def record_events(state: ServiceState, batch: list[EventIn], caller: Caller
                        ) -> tuple[int, int, int]:
    """(accepted, duplicates, ignored): all are accepted, or none (an error names the
    first bad event, and nothing of the batch is recorded). An event whose `event_id` was
    already recorded (a client's retry) is a duplicate: acknowledged, not recorded
    again. An event of a shopper who was forgotten or does not consent to
    personalization is ignored: valid, acknowledged, and nothing of it kept anywhere."""
    settings = state.settings
    if not batch:
        raise Invalid("no events", ("body",))
    if len(batch) > settings.max_events_per_request:
        raise TooLarge(f"at most {settings.max_events_per_request} events per request")
    for i, event in enumerate(batch):
        caller.check_user(event.user_id, f"event {i}")
    engine = state.engine
    now = time.time()
    batch, origin, unmatched = _searches(engine, batch)
    checked = _checked(engine, batch, origin, now)
    personal = {user: state.personal(user) for user in {event.user_id for event in batch}}
    ignored = unmatched + sum(not personal[event.user_id] for event in batch)
    batch, checked = ([e for e in batch if personal[e.user_id]],
                      [c for e, c in zip(batch, checked, strict=True) if personal[e.user_id]])
    claimed, new = await _claim_ids(state, batch)
    duplicates = new.count(False)
    kept = [(event, record, weight) for event, (record, weight), keep
            in zip(batch, checked, new, strict=True) if keep]
    records = [record for _, record, _ in kept]
    try:
        if records:
            await run_in_threadpool(state.events.append, records)
    except OSError as exc:
        await state.cache.delete(claimed)  # not recorded: the retry must get through
        raise Unavailable(f"events not recorded ({exc.strerror or exc}); retry") from None
    fresh_by_user: dict[str, list[bytes]] = {}
    for event, record, weight in kept:
        if weight != 0:
            fresh_by_user.setdefault(state.subject(event.user_id), []).append(encode_fresh(
                event.item_id, weight, max(record["timestamp"], engine.reference_time + 1e-3),
                record["event_type"]))
    variants = engine.rules.variant_names
    engaged: dict[str, list[str]] = {}
    if settings.frequency_cap is not None:  # engagement restarts an item's cap
        for event, _, weight in kept:
            if weight > 0:
                engaged.setdefault(state.subject(event.user_id), []).append(event.item_id)
    for user_id, items in engaged.items():
        await state.cache.update_shown(shown_key(settings.cache_namespace, user_id), {},
                                       frequency.engaged(items), settings.frequency.ttl_s)
    for user_id, fresh in fresh_by_user.items():
        await state.cache.add_fresh(fresh_key(settings.cache_namespace, user_id), fresh,
                                    settings.fresh_events_per_user,
                                    settings.fresh_events_ttl_s)
        await state.cache.delete(list_key(settings.cache_namespace, engine.version, v, user_id)
                                 for v in variants)
    for record in records:
        telemetry.EVENTS.labels(event_type=record["event_type"]).inc()
    telemetry.EVENTS_IGNORED.inc(ignored)
    return len(records), duplicates, ignored


def _searches(engine: Engine, batch: list[EventIn]) -> tuple[list[EventIn], list[int], int]:
    """The batch with each search that names a query replaced by the items its query
    matches (`ContentModel.match`; `value`: how well, 0..1, relative to the best), the
    index in the given batch of each event, and how many searches matched nothing.
    Invalid for an event without the item (or, for a search, the query) it needs."""
    out: list[EventIn] = []
    origin: list[int] = []
    unmatched = 0
    content = engine.model.components.get("content")
    for i, event in enumerate(batch):
        search = engine.events.canonical(event.event_type) == SEARCH
        if event.query is not None and not search:
            raise Invalid(f"event {i}: only a search has a query", ("body", i, "query"))
        if event.item_id is None and not (search and event.query is not None):
            field = "query" if search else "item_id"
            raise Invalid(f"event {i}: {field} is required"
                          + (" (or the item_id chosen)" if search else ""),
                          ("body", i, field))
        if not search or event.item_id is not None:
            out.append(event.model_copy(update={"query": None}))
            origin.append(i)
            continue
        items, scores = (content.match(event.query, SEARCH_MATCHES)
                         if isinstance(content, ContentModel) else (np.zeros(0), None))
        if items.size == 0:
            unmatched += 1
            continue
        for k, (item, score) in enumerate(zip(items.tolist(), scores.tolist(), strict=True)):
            out.append(event.model_copy(update={
                "item_id": str(engine.model.item_ids[item]), "query": None,
                "value": round(score / float(scores[0]), 4),
                "event_id": (event.event_id if k == 0 or event.event_id is None
                             else f"{event.event_id}#{k}")}))
            origin.append(i)
    return out, origin, unmatched


def _checked(engine: Engine, batch: list[EventIn], origin: list[int], now: float
             ) -> list[tuple[dict, float]]:
    """Each event as the log records it, with its weight, checked and weighed for the
    whole batch at once by the rules the model was trained with; Invalid naming the
    first bad event (`origin`: its index in the request) and its field."""
    types = []
    for j, event in enumerate(batch):
        event_type = engine.events.canonical(event.event_type)
        if event_type is None:
            i = origin[j]
            raise Invalid(f"event {i}: unknown event_type {event.event_type!r} "
                          f"(known: {', '.join(sorted(engine.events.weights))})",
                          ("body", i, "event_type"))
        types.append(event_type)
    names = sorted(set(types))
    codes = np.array([names.index(t) for t in types], dtype=np.int64)
    seconds = np.array([_epoch(event.timestamp, now) for event in batch])
    given = np.array([event.value is not None for event in batch])
    values = np.array([np.nan if event.value is None else event.value for event in batch])
    checks = engine.events.checks
    verdict = checks.check(codes, names, seconds, values, given, now)
    refused = np.flatnonzero(verdict)
    if refused.size:
        j = int(refused[0])
        refusal = checks.describe(int(verdict[j]))
        event, i = batch[j], origin[j]
        shown = event.timestamp if refusal.field == "timestamp" else event.value
        raise Invalid(f"event {i}: {refusal.field} {shown!r}: {refusal.message}",
                      ("body", i, refusal.field))
    weights = engine.events.weigh(codes, names, values).tolist()
    out = []
    for event, event_type, ts, weight in zip(batch, types, seconds.tolist(), weights,
                                             strict=True):
        record = {"user_id": event.user_id, "item_id": event.item_id,
                  "event_type": event_type, "timestamp": round(ts, 3)}
        for name in ("value", "price", "channel", "recommendation_id", "event_id"):
            if getattr(event, name) is not None:
                record[name] = getattr(event, name)
        out.append((record, weight))
    return out


async def _claim_ids(state: ServiceState, batch: list[EventIn]
                     ) -> tuple[list[str], list[bool]]:
    """Claim the batch's event ids in the cache, first come first served: the keys this
    request claimed, and for each event whether it is new (False: its id was recorded
    before, or came earlier in the batch)."""
    namespace, ttl = state.settings.cache_namespace, state.settings.event_ids_ttl_s
    claimed: list[str] = []
    new: list[bool] = []
    for event in batch:
        key = None if event.event_id is None else event_key(namespace, event.event_id)
        fresh = key is None or (key not in claimed and await state.cache.claim(key, ttl))
        if fresh and key is not None:
            claimed.append(key)
        new.append(fresh)
    return claimed, new
