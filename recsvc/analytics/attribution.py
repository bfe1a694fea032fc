"""Which list earned what: each click, add-to-cart and purchase is attributed to the
impression that showed the item, by `recommendation_id` when the event carries it, and
otherwise to the last impression of that item to that shopper within a window before the
event. Vectorised: millions of impressions are sorted once, and each event finds its
impression by binary search."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CLICKS = ("click", "view")  # a list's click lands as a view of the item page
CARTS = ("add_to_cart", "cart")
PURCHASES = ("purchase", "order")


@dataclass(frozen=True)
class Impressions:
    """One row per item shown: the impression it belongs to and what it showed."""

    rid: np.ndarray  # recommendation id (str)
    ts: np.ndarray  # float seconds
    user: np.ndarray  # str, "" for nobody
    item: np.ndarray  # str
    position: np.ndarray  # 1-based
    impression: np.ndarray  # index of the impression (one per list served)


@dataclass(frozen=True)
class Events:
    user: np.ndarray
    item: np.ndarray
    kind: np.ndarray  # event type
    ts: np.ndarray
    rid: np.ndarray  # "" when the event names no list
    revenue: np.ndarray  # price x quantity of a purchase, 0 otherwise


def explode(records: list[dict]) -> Impressions:
    """The impression log's records, one row per item shown."""
    rid, ts, user, item, position, impression = [], [], [], [], [], []
    for i, r in enumerate(records):
        for p, it in enumerate(r["items"], start=1):
            rid.append(r["recommendation_id"])
            ts.append(r["ts"])
            user.append(r.get("user_id") or "")
            item.append(it)
            position.append(p)
            impression.append(i)
    return Impressions(np.array(rid, dtype=str), np.array(ts, dtype=np.float64),
                       np.array(user, dtype=str), np.array(item, dtype=str),
                       np.array(position, dtype=np.int64), np.array(impression, dtype=np.int64))


def events_from(records: list[dict]) -> Events:
    def price_x_quantity(r: dict) -> float:
        if r.get("event_type") not in PURCHASES or r.get("price") is None:
            return 0.0
        quantity = r.get("value")
        return float(r["price"]) * (float(quantity) if quantity not in (None, 0) else 1.0)

    return Events(
        user=np.array([str(r["user_id"]) for r in records], dtype=str),
        item=np.array([str(r["item_id"]) for r in records], dtype=str),
        kind=np.array([str(r["event_type"]) for r in records], dtype=str),
        ts=np.array([float(r["timestamp"]) for r in records], dtype=np.float64),
        rid=np.array([str(r.get("recommendation_id") or "") for r in records], dtype=str),
        revenue=np.array([price_x_quantity(r) for r in records], dtype=np.float64))


def attribute(shown: Impressions, events: Events, window_s: float) -> np.ndarray:
    """For each event, the row of `shown` (an item of an impression) it is attributed
    to, or -1. By id: the row of that recommendation showing that item, when it was
    shown before the event. Otherwise: the last row showing that item to that shopper
    in the `window_s` before the event."""
    out = np.full(events.user.size, -1, dtype=np.int64)
    if shown.rid.size == 0 or events.user.size == 0:
        return out
    # By recommendation id and item: one sorted key, one search per event.
    key = np.char.add(np.char.add(shown.rid, "\x1f"), shown.item)
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    wanted = np.char.add(np.char.add(events.rid, "\x1f"), events.item)
    at = np.searchsorted(sorted_key, wanted)
    hit = (events.rid != "") & (at < key.size)
    hit[hit] = sorted_key[at[hit]] == wanted[hit]
    rows = np.where(hit, order[np.minimum(at, key.size - 1)], -1)
    rows[hit] = np.where(shown.ts[rows[hit]] <= events.ts[hit] + 1.0, rows[hit], -1)
    out[hit] = rows[hit]
    # By shopper, item and time: the last showing at or before the event, in the window.
    rest = (out < 0) & (events.user != "")
    if rest.any():
        pair = np.char.add(np.char.add(shown.user, "\x1f"), shown.item)
        order = np.lexsort((shown.ts, pair))
        pair_sorted, ts_sorted = pair[order], shown.ts[order]
        wanted = np.char.add(np.char.add(events.user[rest], "\x1f"), events.item[rest])
        when = events.ts[rest]
        # The last row of the pair with ts <= event time: search the pair's block.
        lo = np.searchsorted(pair_sorted, wanted, side="left")
        hi = np.searchsorted(pair_sorted, wanted, side="right")
        found = np.full(wanted.size, -1, dtype=np.int64)
        for j in np.flatnonzero(hi > lo):
            k = lo[j] + np.searchsorted(ts_sorted[lo[j]:hi[j]], when[j], side="right") - 1
            if k >= lo[j] and when[j] - ts_sorted[k] <= window_s:
                found[j] = order[k]
        out[np.flatnonzero(rest)] = found
    return out
