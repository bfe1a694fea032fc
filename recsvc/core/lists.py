"""What a list holds, made from an Engine: a shopper's ranked, pinned and explained list
(the part worth caching, packed by `ranking.packed`), related items and popular items.

A shopper's list has two stages. `shopper_list` ranks up to `cache_list_size`
candidates with scores and reasons; the filter stage (`policy.filters`) then applies
what may change between two requests and cuts the list to n, on fresh and cached lists
alike, so a cached list can never show a delisted item. `rank_lists` does the first
stage for thousands of shoppers at once (`warm-cache`), with the same code."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from recsvc.core.algorithms import Popularity, Trending, UserBatch
from recsvc.core.algorithms.base import RECENT, Relation
from recsvc.core.engine import Engine
from recsvc.core.model import RecommenderModel
from recsvc.core.policy.events import net_purchases
from recsvc.core.policy.filters import ItemFilters
from recsvc.core.policy.rules import Variant
from recsvc.core.ranking.anchors import anchor_candidates
from recsvc.core.ranking.explain import explain_batch
from recsvc.core.ranking.packed import pack_batch
from recsvc.core.ranking.scoring import Ranking, recommend, similar
from recsvc.core.ranking.topn import top_n

Entry = list[Any]  # [item number, item id, score, reasons]: /similar and /popular


@dataclass(frozen=True)
class RecommendQuery:
    user_id: str
    n: int = 10
    exclude_seen: bool | None = None
    category: str | None = None
    exclude: tuple[str, ...] = ()
    min_price: float | None = None
    max_price: float | None = None
    recent_items: tuple[str, ...] = ()
    attributes: dict[str, str] = field(default_factory=dict)  # segment, region of a stranger
    placement: str | None = None  # where the list is shown: logged with the impression

    @property
    def filters(self) -> ItemFilters:
        return ItemFilters(self.category, self.exclude, self.min_price, self.max_price)

    @property
    def cacheable(self) -> bool:
        """Only the plain per-user list is cached; options make a list of their own."""
        return not (self.exclude_seen is not None or self.filters or self.recent_items
                    or self.attributes)


def cold_start_weights(engine: Engine) -> dict[str, float]:
    """A shopper we know nothing about: each algorithm's `cold_start_weight` (what sells,
    in their segment when we know it)."""
    return {name: c.cold_start_weight for name, c in engine.model.components.items()
            if c.cold_start_weight}


def shopper_list(
    engine: Engine,
    query: RecommendQuery,
    variant: Variant,
    fresh: list[tuple[str, float, str]],
    live: np.ndarray,
    allowed: np.ndarray,
    size: int,
    now: float,
    new_arrival_days: float,
) -> tuple[bytes, str | None]:
    """Rank, pin and explain up to `size` items for one shopper, from their stored past,
    `fresh` events (item, weight, event type) and the query's session. `live` is the live
    catalog (in stock, not delisted); `allowed` narrows it further (the request's filter
    stage). Returns the packed list and the fallback used, if any (cold start, or
    nothing unseen left)."""
    model = engine.model
    user = int(model.user_index([query.user_id])[0])
    opted_out = model.is_opted_out(query.user_id)
    if opted_out:  # never personalized: no stored past, no fresh events
        user, fresh = -1, []
    view = engine.events.weights.get("view", 1.0)
    session = [] if opted_out else [
        int(i) for i in model.item_index(list(query.recent_items)) if i >= 0]
    fresh_items = model.item_index([f[0] for f in fresh]) if fresh else np.zeros(0, int)
    extra = [(i, view) for i in session] + [
        (int(i), w) for i, (_, w, _) in zip(fresh_items, fresh, strict=True) if i >= 0]
    history = engine.history_row(user, extra)
    attributes = engine.attribute_codes(user, query.attributes)
    # Newest first: the session (its last item is the newest), fresh events (newest
    # last), then what the model knew.
    newer = [*reversed(session), *reversed([int(i) for i in fresh_items if i >= 0])]
    recent = _recent(newer, model.recent_rows(np.array([user]))[0])
    batch = UserBatch(users=np.array([user if not extra else -1]), history=history,
                      attributes=attributes, recent=recent)

    weights = variant.weights or model.weights
    fallback = None
    if history.nnz == 0:
        weights = cold_start_weights(engine)
        known = any(int(codes[0]) >= 0 for codes in attributes.values())
        fallback = "segment_popular" if known else "popular"
    exclude_seen = next(x for x in (query.exclude_seen, variant.exclude_seen,
                                    model.exclude_seen) if x is not None)
    ranking = recommend(model, batch, size, exclude_seen, allowed, weights,
                        bias=engine.rules.bias, explain=True, in_stock=live)
    if ranking.lengths[0] == 0 and exclude_seen and history.nnz:
        # Everything allowed was already seen: better the seen items than an empty page.
        ranking = recommend(model, batch, size, False, allowed, weights,
                            bias=engine.rules.bias, explain=True, in_stock=live)
        fallback = "seen_items"
    bought = _bought(model, user, [(int(i), kind) for i, (_, _, kind)
                                   in zip(fresh_items, fresh, strict=True) if i >= 0])
    packed = rank_lists(engine, ranking, history, bought, recent,
                        [np.asarray(session, np.int64)], allowed, now, new_arrival_days,
                        personal=user >= 0 or bool(fresh))
    return packed[0], fallback


def _recent(newer: list[int], known: np.ndarray) -> np.ndarray:
    """1 x RECENT: the newest distinct items first, then the stored ones."""
    seen: list[int] = []
    for item in [*newer, *(int(i) for i in known if i >= 0)]:
        if item not in seen:
            seen.append(item)
    row = np.full((1, RECENT), -1, dtype=np.int32)
    row[0, :min(RECENT, len(seen))] = seen[:RECENT]
    return row


def _bought(model: RecommenderModel, user: int, fresh: list[tuple[int, str]]
            ) -> sp.csr_matrix:
    """1 x items: what the shopper bought and kept, as stored and with their fresh
    purchases and refunds. A session's items are never bought."""
    row = model.bought_rows(np.array([user]))
    if not fresh:
        return row
    net = row.toarray()[0].astype(np.int32)
    for item, change in zip([i for i, _ in fresh], net_purchases(
            np.array([kind for _, kind in fresh], dtype=object)), strict=True):
        net[item] += change
    return sp.csr_matrix(net[None, :] > 0)


def _widened(array: np.ndarray, width: int, fill: float) -> np.ndarray:
    """A copy with at least `width` columns, the new ones `fill`."""
    extra = max(0, width - array.shape[1])
    if extra == 0:  # the usual case (no pins): np.pad costs far more than a copy
        return array.copy()
    return np.pad(array, ((0, 0), (0, extra)), constant_values=fill)


def rank_lists(
    engine: Engine,
    ranking: Ranking,
    histories: sp.csr_matrix,
    bought: sp.csr_matrix,
    recent: np.ndarray | None,
    sessions: list[np.ndarray],
    allowed: np.ndarray,
    now: float,
    new_arrival_days: float,
    personal: bool = True,
) -> list[bytes]:
    """Pinned items first, then the ranking; every item explained; each list packed
    for the cache. One list per row of an explained ranking (`recommend(...,
    explain=True)`): the service calls this for one shopper, `warm-cache` for thousands,
    so both store exactly the same lists. `bought`: what each row's shopper bought (rows
    x items), the only items its reasons may call bought; `recent`: each row's last
    items, newest first (what a pick came next after)."""
    pins = np.array([p for p in engine.rules.pins if allowed[p]], dtype=np.int64)
    lengths = ranking.lengths.astype(np.int64)  # a copy: pins change it below
    size = max(int(lengths.max(initial=0)), pins.size)
    items = _widened(ranking.padded_items, size, -1)
    scores = _widened(ranking.padded_scores, size, 0.0)
    contributions = {name: _widened(values, size, 0.0)
                     for name, values in (ranking.padded_contributions or {}).items()}
    pinned = np.zeros(items.shape, dtype=bool)
    for b in range(items.shape[0] if pins.size else 0):
        keep = np.flatnonzero(~np.isin(items[b, :lengths[b]], pins))  # pins leave their place
        n = min(pins.size + keep.size, size)
        top = scores[b, 0] if lengths[b] else 0.0
        for row, head, fill in ((scores, np.full(pins.size, top), 0.0), (items, pins, -1),
                                *((values, np.zeros(pins.size), 0.0)
                                  for values in contributions.values())):
            row[b, :n] = np.concatenate([head, row[b, keep]])[:n]
            row[b, n:] = fill
        pinned[b, :pins.size] = True
        lengths[b] = n
    anchors, from_session = anchor_candidates(histories, sessions, personal)
    if recent is None:
        recent = np.full((items.shape[0], 0), -1, dtype=np.int64)
    codes, anchor = explain_batch(engine.model, items, contributions, anchors, from_session,
                                  bought, recent, pinned, now, new_arrival_days)
    return pack_batch(items, scores, codes, anchor, lengths)


def similar_entries(engine: Engine, item: int, n: int, allowed: np.ndarray,
                    live: np.ndarray) -> list[Entry]:
    """Related items for a product page, each with why it is related."""
    model = engine.model
    ranking = similar(model, np.array([item]), n, allowed=allowed, in_stock=live, explain=True)
    picks, scores = ranking.items[0], ranking.scores[0]
    anchor = str(model.item_ids[item])
    contributions = ranking.contributions or {}
    entries = []
    for j, (i, s) in enumerate(zip(picks, scores, strict=True)):
        parts = sorted(((float(v[0][j]), name) for name, v in contributions.items()),
                       reverse=True)
        reasons = []
        for value, name in parts:
            if value <= 0:
                break
            relation = model.components[name].relation
            code = str(relation or Relation.SIMILAR_TO)
            if all(r["code"] != code for r in reasons):
                reasons.append({"code": code, "item_id": anchor})
        entries.append([int(i), str(model.item_ids[i]), round(float(s), 5),
                        reasons or [{"code": str(Relation.SIMILAR_TO), "item_id": anchor}]])
    return entries


def popular_entries(engine: Engine, kind: str, n: int, allowed: np.ndarray,
                    attributes: dict[str, str]) -> list[Entry]:
    """Most popular (overall, or among shoppers with the given attributes) or trending."""
    model = engine.model
    trending = model.components.get(Trending.name)
    popularity = model.components.get(Popularity.name)
    if kind == "trending" and isinstance(trending, Trending):
        scores = trending.scores()
        reason: dict[str, Any] = {"code": "trending"}
    else:
        if not isinstance(popularity, Popularity):
            scores = np.asarray(model.user_items.sum(axis=0), dtype=np.float32).ravel()
        else:
            groups = [popularity.group_scores(name, code)
                      for name, value in attributes.items()
                      if name in popularity.by_attribute
                      and (code := engine.attribute_values[name].get(value.lower(), -1)) >= 0]
            scores = (np.log1p(np.mean(groups, axis=0)) if groups
                      else popularity.overall_scores())
        reason = {"code": "popular"}
    # The exact top n without sorting the catalog (~10 ms a request at 100,000 items);
    # ties go to the lower item number, and what is not allowed is never listed.
    items, top, lengths = top_n(np.where(allowed, scores, -np.inf)[None, :], n)
    entries = []
    for i, score in zip(items[0, :lengths[0]].tolist(), top[0, :lengths[0]].tolist(),
                        strict=True):
        r = reason
        if reason["code"] == "popular" and model.item_category[i] >= 0:
            r = {"code": "popular_in",
                 "category": str(model.category_names[model.item_category[i]])}
        entries.append([i, str(model.item_ids[i]), round(score, 5), [r]])
    return entries
