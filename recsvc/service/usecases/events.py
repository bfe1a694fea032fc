"""`POST /events`: record what shoppers did. Each batch is appended durably to the
events log (the next training learns from it); a shopper's fresh events go to the
cache and their cached lists are dropped, so their next list reflects them at once."""

from __future__ import annotations

import time
from datetime import datetime

import numpy as np
from starlette.concurrency import run_in_threadpool

from recsvc.core.policy.events import epoch_seconds
from recsvc.service import telemetry
from recsvc.service.errors import Invalid, TooLarge
from recsvc.service.schemas import EventIn
from recsvc.service.state import ServiceState
from recsvc.stores.cache import encode_fresh, fresh_key, list_key


def _epoch(value: datetime | float | None, now: float) -> float:
    """Epoch seconds: now when absent; numbers by the trainer's rule (milliseconds
    recognised, anything else NaN, which the checks refuse)."""
    if value is None:
        return now
    if isinstance(value, datetime):
        return value.timestamp()
    return float(epoch_seconds(np.array([value]))[0])


async def record_events(state: ServiceState, batch: list[EventIn]) -> int:
    """Returns how many events were accepted (all, or none: an error names the first
    bad event)."""
    settings = state.settings
    if not batch:
        raise Invalid("no events")
    if len(batch) > settings.max_events_per_request:
        raise TooLarge(f"at most {settings.max_events_per_request} events per request")
    engine = state.engine
    now = time.time()
    records, fresh_by_user = [], {}
    for i, event in enumerate(batch):
        event_type = engine.events.canonical(event.event_type)
        if event_type is None:
            raise Invalid(f"event {i}: unknown event_type {event.event_type!r} "
                          f"(known: {', '.join(sorted(engine.events.weights))})")
        ts = _epoch(event.timestamp, now)
        refusal = engine.events.checks.check_one(event_type, ts, event.value, now)
        if refusal is not None:
            given = event.timestamp if refusal.field == "timestamp" else event.value
            raise Invalid(f"event {i}: {refusal.field} {given!r}: {refusal.message}")
        record = {"user_id": event.user_id, "item_id": event.item_id,
                  "event_type": event_type, "timestamp": round(ts, 3)}
        for name in ("value", "channel", "recommendation_id"):
            if getattr(event, name) is not None:
                record[name] = getattr(event, name)
        records.append(record)
        weight = engine.events.weight(event_type, event.value)
        if weight != 0 and not engine.model.is_opted_out(event.user_id):
            fresh_by_user.setdefault(event.user_id, []).append(
                encode_fresh(event.item_id, weight, max(ts, engine.reference_time + 1e-3)))
    await run_in_threadpool(state.events.append, records)
    variants = [v.name for _, v in engine.rules.variants] or ["default"]
    for user_id, fresh in fresh_by_user.items():
        await state.cache.add_fresh(fresh_key(settings.cache_namespace, user_id), fresh,
                                    settings.fresh_events_per_user,
                                    settings.fresh_events_ttl_s)
        await state.cache.delete(list_key(settings.cache_namespace, engine.version, v, user_id)
                                 for v in variants)
    for record in records:
        telemetry.EVENTS.labels(event_type=record["event_type"]).inc()
    return len(records)
