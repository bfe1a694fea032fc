"""What the cache holds, under which keys, for every backend.

A user's list is one pre-serialized value under a key that carries the model version
and the A/B variant, so a new model never serves old lists and a hit is one GET. A
user's fresh events (newer than the model) are a short list under their own key, each
entry `[item_id, weight, timestamp, event_type]` as JSON; what they were shown lately, a
small hash.

The shopper's part of each key is a hash tag, `{USER}`: on a Redis Cluster every key of
one shopper lives in one slot, so what is written together (a shopper's lists and fresh
events) is written to one node, and deleted in one call."""

from __future__ import annotations

import orjson


def tagged(user_id: str) -> str:
    """The shopper's part of a key: a hash tag (`{id}`; `}` cannot end it early: a
    shop's id or its keyed hash holds none)."""
    return "{" + user_id.replace("}", "%7D") + "}"


def user_of(tag: str) -> str:
    """The shopper's id (or hash) back from a key's last part."""
    inner = tag[1:-1] if tag.startswith("{") and tag.endswith("}") else tag
    return inner.replace("%7D", "}")


def list_key(namespace: str, version: str, variant: str, user_id: str) -> str:
    return f"{namespace}:list:{version}:{variant}:{tagged(user_id)}"


def fresh_prefix(namespace: str) -> str:
    return f"{namespace}:fresh:"


def fresh_key(namespace: str, user_id: str) -> str:
    return fresh_prefix(namespace) + tagged(user_id)


def shown_prefix(namespace: str) -> str:
    return f"{namespace}:shown:"


def shown_key(namespace: str, user_id: str) -> str:
    """What a shopper was shown lately (a hash: `policy.frequency`): frequency caps and
    the pages of one visit."""
    return shown_prefix(namespace) + tagged(user_id)


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
