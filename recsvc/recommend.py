"""What the endpoints do, as plain functions of the engine and a query: rank (through
`recsvc.scoring`), apply the shop's rules, explain, and shape the response.

A list has two stages. `compute_entries` ranks up to `cache_list_size` candidates with
scores and reasons: the part worth caching (packed by `recsvc.lists`). `lists.select`
then applies what may change between two requests (stock, delistings, the request's own
filters, the per-category cap) and cuts the list to n, on fresh and cached lists alike,
so a cached list can never show a delisted item."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np
import scipy.sparse as sp

from recsvc.engine import Engine
from recsvc.explain import explain_batch
from recsvc.lists import pack_batch
from recsvc.models import UserBatch
from recsvc.rules import Variant, category_mask
from recsvc.scoring import Ranking, recommend, similar
from recsvc.topn import top_n

# A shopper we know nothing about: what sells, in their segment when we know it.
COLD_START_WEIGHTS = {"popularity": 1.0, "trending": 0.5}
MAX_ANCHORS = 20  # past items (most confidence first) considered when explaining a pick

Entry = list[Any]  # [item number, item id, score, reasons]: /similar and /popular


class QueryError(ValueError):
    """A query the catalog cannot answer as asked (an unknown category): a 4xx."""


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

    @property
    def cacheable(self) -> bool:
        """Only the plain per-user list is cached; options make a list of their own."""
        return not (self.exclude_seen is not None or self.category or self.exclude
                    or self.min_price is not None or self.max_price is not None
                    or self.recent_items or self.attributes)


def query_mask(engine: Engine, price: np.ndarray, category: str | None = None,
               exclude: tuple[str, ...] = (), min_price: float | None = None,
               max_price: float | None = None) -> np.ndarray | None:
    """The request's own filters over the catalog, or None without any."""
    mask = None
    if category:
        mask = category_mask(engine.model, category)
        if not mask.any():
            raise QueryError(f"unknown category {category!r}")
    if min_price is not None or max_price is not None:
        price = price.astype(np.float64)  # a bound like 1e308 must not overflow float32
        with np.errstate(invalid="ignore"):
            in_range = np.ones(price.size, dtype=bool)
            if min_price is not None:
                in_range &= price >= min_price
            if max_price is not None:
                in_range &= price <= max_price
        mask = in_range if mask is None else mask & in_range
    if exclude:
        excluded = engine.model.item_index(list(exclude))
        keep = np.ones(engine.model.n_items, dtype=bool)
        keep[excluded[excluded >= 0]] = False
        mask = keep if mask is None else mask & keep
    return mask


def allowed_items(engine: Engine, query: RecommendQuery, live: np.ndarray,
                  price: np.ndarray) -> np.ndarray:
    """What this query may list: the live catalog, minus the rules' exclusions, within
    the query's own filters."""
    allowed = live & engine.rules.allowed
    if query.cacheable:
        return allowed
    mask = query_mask(engine, price, query.category, query.exclude, query.min_price,
                      query.max_price)
    return allowed if mask is None else allowed & mask


def compute_entries(
    engine: Engine,
    query: RecommendQuery,
    variant: Variant,
    fresh: list[tuple[str, float]],
    live: np.ndarray,
    allowed: np.ndarray,
    size: int,
    now: float,
    new_arrival_days: float,
) -> tuple[bytes, str | None]:
    """Rank, pin and explain up to `size` items for one shopper. `live` is the live
    catalog (in stock, not delisted); `allowed` narrows it further (rules, the query's own
    filters: `allowed_items`). Returns the packed list (`recsvc.lists`) and the fallback
    used, if any (cold start, or nothing unseen left)."""
    model = engine.model
    user = int(model.user_index([query.user_id])[0])
    opted_out = model.is_opted_out(query.user_id)
    if opted_out:  # never personalized: no stored past, no fresh events
        user, fresh = -1, []
    view = engine.events.weights.get("view", 1.0)
    session = [] if opted_out else [
        int(i) for i in model.item_index(list(query.recent_items)) if i >= 0]
    fresh_items = model.item_index([item for item, _ in fresh]) if fresh else np.zeros(0, int)
    extra = [(i, view) for i in session] + [
        (int(i), w) for i, (_, w) in zip(fresh_items, fresh, strict=True) if i >= 0]
    history = engine.history_row(user, extra)
    attributes = engine.attribute_codes(user, query.attributes)
    batch = UserBatch(users=np.array([user if not extra else -1]), history=history,
                      attributes=attributes)

    weights = variant.weights or model.weights
    fallback = None
    if history.nnz == 0:
        weights = {k: v for k, v in COLD_START_WEIGHTS.items() if k in model.components}
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
    packed = rank_lists(engine, ranking, history, [np.asarray(session, np.int64)],
                        allowed, now, new_arrival_days, personal=user >= 0 or bool(fresh))
    return packed[0], fallback


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
    sessions: list[np.ndarray],
    allowed: np.ndarray,
    now: float,
    new_arrival_days: float,
    personal: bool = True,
) -> list[bytes]:
    """Pinned items first, then the ranking; every item explained; each list packed
    for the cache. One list per row of an explained ranking (`recommend(...,
    explain=True)`): the service calls this for one shopper, `warm-cache` for thousands,
    so both store exactly the same lists."""
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
    anchors, from_session = _anchors(histories, sessions, personal)
    codes, anchor = explain_batch(engine, items, contributions, anchors, from_session,
                                  pinned, now, new_arrival_days)
    return pack_batch(items, scores, codes, anchor, lengths)


@numba.njit(cache=True, nogil=True)
def _past_anchors(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray,
                  session_ptr: np.ndarray, session_items: np.ndarray, limit: int,
                  anchors: np.ndarray, from_session: np.ndarray) -> None:
    """Into row b of `anchors` (all -1): its session items, then its `limit` past items
    with the most confidence (ties: item order), less those already in the session."""
    order = np.empty(max(1, np.max(np.diff(indptr)) if indptr.size > 1 else 1),
                     dtype=np.int64)
    for b in range(indptr.size - 1):
        at = 0
        for p in range(session_ptr[b], session_ptr[b + 1]):
            anchors[b, at] = session_items[p]
            from_session[b, at] = True
            at += 1
        lo, hi = indptr[b], indptr[b + 1]
        count = 0
        for p in range(lo, hi):  # insertion by (-confidence, item)
            j = count
            while j > 0 and (data[order[j - 1]] < data[p] or (
                    data[order[j - 1]] == data[p] and indices[order[j - 1]] > indices[p])):
                order[j] = order[j - 1]
                j -= 1
            order[j] = p
            count += 1
        for j in range(min(count, limit)):
            item = indices[order[j]]
            in_session = False
            for p in range(session_ptr[b], session_ptr[b + 1]):
                in_session |= session_items[p] == item
            if not in_session:
                anchors[b, at] = item
                at += 1


def _anchors(histories: sp.csr_matrix, sessions: list[np.ndarray],
             personal: bool) -> tuple[np.ndarray, np.ndarray]:
    """Each row's candidate anchors, padded with -1: session items first, then the past
    items with the most confidence (at most MAX_ANCHORS of them, less those in the
    session), for the whole batch at once."""
    histories = sp.csr_matrix(histories)
    rows = histories.shape[0]
    lengths = [np.asarray(sessions[b]).size if b < len(sessions) else 0 for b in range(rows)]
    session_ptr = np.zeros(rows + 1, dtype=np.int64)
    session_ptr[1:] = np.cumsum(lengths)
    session_items = (np.concatenate([np.asarray(s, dtype=np.int64) for s in sessions[:rows]])
                     if any(lengths) else np.zeros(0, dtype=np.int64))
    indptr = histories.indptr.astype(np.int64)
    if not personal:
        indptr = np.zeros(rows + 1, dtype=np.int64)
    past = np.minimum(np.diff(indptr), MAX_ANCHORS)
    width = int((session_ptr[1:] - session_ptr[:-1] + past).max()) if rows else 0
    anchors = np.full((rows, width), -1, dtype=np.int64)
    from_session = np.zeros((rows, width), dtype=bool)
    if rows and width:
        _past_anchors(indptr, histories.indices.astype(np.int64),
                      histories.data.astype(np.float64), session_ptr, session_items,
                      MAX_ANCHORS, anchors, from_session)
    # Session items dropped from the past leave room at the end: trim unused columns.
    used = int((anchors >= 0).sum(axis=1).max()) if rows and width else 0
    return anchors[:, :used], from_session[:, :used]


def items_payload(entries: list[Entry]) -> list[dict[str, Any]]:
    return [{"item_id": e[1], "score": e[2], "reasons": e[3]} for e in entries]


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
            code = "similar_to" if name == "content" else "bought_together"
            if all(r["code"] != code for r in reasons):
                reasons.append({"code": code, "item_id": anchor})
        entries.append([int(i), str(model.item_ids[i]), round(float(s), 5),
                        reasons or [{"code": "similar_to", "item_id": anchor}]])
    return entries


def popular_entries(engine: Engine, kind: str, n: int, allowed: np.ndarray,
                    attributes: dict[str, str]) -> list[Entry]:
    """Most popular (overall, or among shoppers with the given attributes) or trending."""
    model = engine.model
    if kind == "trending" and "trending" in model.components:
        scores = model.components["trending"].scores()  # type: ignore[attr-defined]
        reason: dict[str, Any] = {"code": "trending"}
    else:
        popularity = model.components.get("popularity")
        if popularity is None:
            scores = np.asarray(model.user_items.sum(axis=0), dtype=np.float32).ravel()
        else:
            groups = [popularity.group_scores(name, code)  # type: ignore[attr-defined]
                      for name, value in attributes.items()
                      if name in popularity.by_attribute  # type: ignore[attr-defined]
                      and (code := engine.attribute_values[name].get(value.lower(), -1)) >= 0]
            scores = (np.log1p(np.mean(groups, axis=0)) if groups
                      else popularity.overall_scores())  # type: ignore[attr-defined]
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


def warm_up() -> None:
    """Compile (or load from numba's cache) before the first list needs anchors."""
    _anchors(sp.csr_matrix(np.ones((1, 1), dtype=np.float32)), [np.zeros(1, np.int64)], True)
