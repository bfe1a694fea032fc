"""What the cache holds, under which keys, for every backend.

A user's list is one pre-serialized value under a key that carries the model version
and the A/B variant, so a new model never serves old lists and a hit is one GET. A
user's fresh events (newer than the model) are a short list under their own key, each
entry `[item_id, weight, timestamp, event_type]` as JSON."""

from __future__ import annotations

import orjson


def list_key(namespace: str, version: str, variant: str, user_id: str) -> str:
    return f"{namespace}:list:{version}:{variant}:{user_id}"


def fresh_key(namespace: str, user_id: str) -> str:
    return f"{namespace}:fresh:{user_id}"


def shown_key(namespace: str, user_id: str) -> str:
    """What a shopper was shown lately (a hash: `policy.frequency`): frequency caps and
    the pages of one visit."""
    return f"{namespace}:shown:{user_id}"


def event_key(namespace: str, event_id: str) -> str:
    """Claimed by the first request that records the event with this id."""
    return f"{namespace}:event:{event_id}"


def encode_fresh(item_id: str, weight: float, timestamp: float, event_type: str) -> bytes:
    return orjson.dumps([item_id, weight, timestamp, event_type])


def decode_fresh(raw: list[bytes]) -> list[tuple[str, float, float, str]]:
    """(item, weight, timestamp, event type) of each fresh event; entries written before
    the type was kept have type "" (never a purchase)."""
    out = []
    for value in raw:
        try:
            item, weight, ts, *kind = orjson.loads(value)
            out.append((str(item), float(weight), float(ts), str(kind[0]) if kind else ""))
        except (orjson.JSONDecodeError, TypeError, ValueError):
            continue  # a foreign value under our key: ignore it rather than fail a page
    return out
