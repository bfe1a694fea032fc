"""What a list holds, made from an Engine: a shopper's ranked and explained list (the
part worth caching, packed by `ranking.packed`), related items and popular items.

A shopper's list has two stages. `shopper_list` ranks up to `cache_list_size`
candidates with scores and reasons; the filter stage (`policy.filters`) then applies
what may change between two requests (stock, pins, exclusions, caps) and cuts the list
to n, on fresh and cached lists alike, so a cached list can never show a delisted item
and a rule changed a moment ago holds on it. `rank_lists` does the first
stage for thousands of shoppers at once (`warm-cache`), with the same code."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from recsvc.core.algorithms import Popularity, Trending, UserBatch
from recsvc.core.algorithms.base import RECENT, Relation
from recsvc.core.clock import SECONDS_PER_DAY
from recsvc.core.engine import Engine
from recsvc.core.model import RecommenderModel
from recsvc.core.policy.events import SEARCH, net_purchases
from recsvc.core.policy.feedback import feedback_bias, negatives_of
from recsvc.core.policy.filters import FilterStage, ItemFilters
from recsvc.core.policy.rules import Variant
from recsvc.core.ranking.anchors import anchor_candidates
from recsvc.core.ranking.explain import explain_batch
from recsvc.core.ranking.packed import EMPTY, PackedList, pack_batch, unpack
from recsvc.core.ranking.scoring import Ranking, recommend, similar
from recsvc.core.ranking.topn import top_n

Entry = list[Any]  # [item number, item id, score, reasons]: /similar and /popular


@dataclass(frozen=True)
class RecommendQuery:
    user_id: str
    n: int = 10
    page: int | None = None  # of n items (None: not paging: 1, and no visit to remember)
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
    """Rank and explain up to `size` items for one shopper, from their stored past,
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
    # A search's matches shape the scores, but the shopper never touched them: no reason
    # names them ("because you viewed", "next after").
    searched = {int(i) for i, (_, _, kind) in zip(fresh_items, fresh, strict=True)
                if i >= 0 and kind == SEARCH}
    touched = {int(i) for i, (_, _, kind) in zip(fresh_items, fresh, strict=True)
               if i >= 0 and kind != SEARCH} | set(session)
    # Newest first: the session (its last item is the newest), fresh events (newest
    # last), then what the model knew.
    newer = [*reversed(session), *reversed([int(i) for i, (_, _, kind)
                                            in zip(fresh_items, fresh, strict=True)
                                            if i >= 0 and kind != SEARCH])]
    recent = _recent(newer, model.recent_rows(np.array([user]))[0])
    bought, occasions = _purchases(model, user, [
        (int(i), kind) for i, (_, _, kind) in zip(fresh_items, fresh, strict=True) if i >= 0])
    batch = UserBatch(users=np.array([user if not extra else -1]), history=history,
                      attributes=attributes, recent=recent, bought=occasions)

    weights = variant.weights or model.weights
    fallback = None
    if history.nnz == 0:
        weights = cold_start_weights(engine)
        known = any(int(codes[0]) >= 0 for codes in attributes.values())
        fallback = "segment_popular" if known else "popular"
    exclude_seen = next(x for x in (query.exclude_seen, variant.exclude_seen,
                                    model.exclude_seen) if x is not None)
    bias, allowed = said_no(engine, user, [(int(i), w, kind) for i, (_, w, kind)
                                           in zip(fresh_items, fresh, strict=True) if i >= 0],
                            allowed, ranking_bias(engine, now, new_arrival_days))
    anchorable = _without(history, (searched | set(model.search_only(user))) - touched)
    ranking = recommend(model, batch, size, exclude_seen, allowed, weights,
                        bias=bias, explain=True, in_stock=live, seen=anchorable)
    if ranking.lengths[0] == 0 and exclude_seen and history.nnz:
        # Everything allowed was already seen: better the seen items than an empty page.
        ranking = recommend(model, batch, size, False, allowed, weights,
                            bias=bias, explain=True, in_stock=live)
        fallback = "seen_items"
    packed = rank_lists(engine, ranking, anchorable, bought, recent,
                        [np.asarray(session, np.int64)], now, new_arrival_days,
                        personal=user >= 0 or bool(fresh), tag=variant.tag)
    return packed[0], fallback


def new_arrivals(engine: Engine, now: float, days: float) -> np.ndarray:
    """Which items arrived within `days` of `now` (their created_at known)."""
    return _arrivals(engine, now, days)[0]


def ranking_bias(engine: Engine, now: float, new_arrival_days: float) -> np.ndarray | None:
    """What ranking adds to every shopper's blended scores: the rules' boosts and
    burials, and the new-arrival boost (`[new_arrivals] boost`, falling linearly from
    its full value for an item created now to nothing at `new_arrival_days`)."""
    return _arrivals(engine, now, new_arrival_days)[1]


def _arrivals(engine: Engine, now: float, days: float) -> tuple[np.ndarray, np.ndarray | None]:
    """(new arrivals, ranking bias), made once per engine and ten minutes (ages move
    slowly), not per list: ranking and exploration share it."""
    key = (days, int(now // 600))
    cached = engine.__dict__.get("_arrivals")
    if cached is not None and cached[0] == key:
        return cached[1]
    created = engine.model.item_created_at
    age = (now - created.astype(np.float64)) / SECONDS_PER_DAY
    fresh = (created > 0) & (age < days)
    bias, boost = engine.rules.bias, engine.rules.new_arrival_boost
    if boost > 0 and days > 0 and fresh.any():
        arrival = np.where(fresh, boost * (1.0 - np.clip(age, 0, None) / days),
                           0.0).astype(np.float32)
        bias = arrival if bias is None else bias + arrival
    engine.__dict__["_arrivals"] = (key, (fresh, bias))
    return fresh, bias


def said_no(engine: Engine, user: int, fresh: list[tuple[int, float, str]],
            allowed: np.ndarray, bias: np.ndarray | None
            ) -> tuple[np.ndarray | None, np.ndarray]:
    """`bias` (`ranking_bias`) and `allowed`, with what this shopper said no to (stored
    and fresh: `policy.feedback`) hidden and its neighbours and category lowered."""
    negatives = negatives_of(engine.model, user, fresh)
    if not negatives:
        return bias, allowed
    extra, hidden = feedback_bias(engine.model, negatives)
    allowed = allowed.copy()
    allowed[hidden] = False
    return (extra if bias is None else bias + extra), allowed


def _without(history: sp.csr_matrix, items: set[int]) -> sp.csr_matrix:
    """A one-row history without these items."""
    if not items:
        return history
    row = sp.csr_matrix(history, copy=True)
    row.data[np.isin(row.indices, list(items))] = 0
    row.eliminate_zeros()
    return row


def _recent(newer: list[int], known: np.ndarray) -> np.ndarray:
    """1 x RECENT: the newest distinct items first, then the stored ones."""
    seen: list[int] = []
    for item in [*newer, *(int(i) for i in known if i >= 0)]:
        if item not in seen:
            seen.append(item)
    row = np.full((1, RECENT), -1, dtype=np.int32)
    row[0, :min(RECENT, len(seen))] = seen[:RECENT]
    return row


def _purchases(model: RecommenderModel, user: int, fresh: list[tuple[int, str]]
               ) -> tuple[sp.csr_matrix, sp.csr_matrix | None]:
    """1 x items each, from the stored row with the fresh purchases and refunds: what the
    shopper bought and kept (all a reason may call bought; a session's items never are),
    and their purchase occasions, one more for each item bought since (None where the
    model keeps no occasions). Only the freshly touched items are recomputed: no pass
    over the catalog on the request path."""
    occasions = model.occasion_rows(np.array([user]))
    stored = model.bought_rows(np.array([user])) if occasions is None else occasions
    if not fresh:
        return sp.csr_matrix(stored, dtype=bool), occasions
    items = np.array([i for i, _ in fresh], dtype=np.int64)
    changes = net_purchases(np.array([kind for _, kind in fresh], dtype=object))
    touched, at = np.unique(items, return_inverse=True)
    net = np.zeros(touched.size, dtype=np.int32)
    np.add.at(net, at, changes)
    bought_since = np.zeros(touched.size, dtype=bool)
    bought_since[at[changes > 0]] = True
    was = np.zeros(touched.size, dtype=np.float32)
    position = np.searchsorted(stored.indices, touched)  # model rows are sorted
    found = position < stored.indices.size
    found[found] = stored.indices[position[found]] == touched[found]
    was[found] = stored.data[position[found]]
    untouched = ~np.isin(stored.indices, touched)
    keep = (was > 0).astype(np.int32) + net > 0
    columns = np.concatenate([stored.indices[untouched], touched[keep]])
    values = np.concatenate([np.asarray(stored.data[untouched], np.float32),
                             (was + bought_since)[keep]])  # a fresh occasion, not decayed
    order = np.argsort(columns)
    row = sp.csr_matrix((values[order], columns[order], np.array([0, columns.size])),
                        shape=(1, model.n_items), dtype=np.float32)
    return sp.csr_matrix(row, dtype=bool), (None if occasions is None else row)


def rank_lists(
    engine: Engine,
    ranking: Ranking,
    histories: sp.csr_matrix,
    bought: sp.csr_matrix,
    recent: np.ndarray | None,
    sessions: list[np.ndarray],
    now: float,
    new_arrival_days: float,
    personal: bool = True,
    tag: int = 0,
) -> list[bytes]:
    """The ranking with every item explained, each list packed for the cache (under
    the ranking rules' `tag`). One list per row of an explained ranking (`recommend(...,
    explain=True)`): the service calls this for one shopper, `warm-cache` and `export`
    for thousands, so all store exactly the same lists. `histories`: what each row's
    shopper touched (rows x items; not what a search only matched), the items its
    reasons may name as seen or as anchors; `bought`: what each row's shopper bought,
    the only items its reasons may call bought; `recent`:
    each row's last items, newest first (what a pick came next after)."""
    items = ranking.padded_items
    anchors, from_session = anchor_candidates(histories, sessions, personal)
    if recent is None:
        recent = np.full((items.shape[0], 0), -1, dtype=np.int64)
    codes, anchor = explain_batch(engine.model, items, ranking.padded_contributions or {},
                                  anchors, from_session, bought, histories, recent, now,
                                  new_arrival_days)
    return pack_batch(items, ranking.padded_scores, codes, anchor, ranking.lengths, tag)


@dataclass(frozen=True)
class RankedBatch:
    """Lists of some shoppers of one variant, packed as the cache holds them."""

    users: np.ndarray  # model user numbers
    variant: Variant
    lists: list[bytes]
    lengths: np.ndarray  # items in each list (0: nothing to list: the service's fallbacks)


def rank_users(engine: Engine, users: np.ndarray, size: int, rankable: np.ndarray,
               now: float, new_arrival_days: float, rows: int) -> Iterator[RankedBatch]:
    """The cached lists of known shoppers (model user numbers), `rows` at a time, each
    in the variant the rules assign: exactly what `GET /recommend` caches for them
    (without events newer than the model). `rankable`: the filter stage's (a cached
    list is ranked regardless of stock and exclusions: they act when it is read)."""
    model = engine.model
    ids = [str(u) for u in model.user_ids[users].tolist()]
    variants = [engine.rules.variant_for(u) for u in ids] if engine.rules.variants else (
        [engine.rules.variant_for("")] * len(ids))
    names = np.array([v.name for v in variants], dtype=object)
    for name in sorted(set(names.tolist())):
        members = users[names == name]
        variant = variants[int(np.flatnonzero(names == name)[0])]
        weights = variant.weights or model.weights
        exclude_seen = (variant.exclude_seen if variant.exclude_seen is not None
                        else model.exclude_seen)
        said = (np.diff(model.user_negatives.indptr)[members] > 0
                if model.user_negatives is not None else np.zeros(members.size, bool))
        # Most shoppers share the rules' bias and are ranked a batch at a time; those
        # who said no to something have their own, and are ranked one by one.
        shared = ranking_bias(engine, now, new_arrival_days)
        plain = members[~said]
        parts = [(plain[start:start + rows], shared, rankable)
                 for start in range(0, plain.size, rows)]
        parts += [(members[j:j + 1], *said_no(engine, int(members[j]), [], rankable, shared))
                  for j in np.flatnonzero(said).tolist()]
        for chunk, bias, allowed in parts:
            batch = model.batch(chunk)
            touched = model.anchorable_rows(chunk)
            ranking = recommend(model, batch, size, exclude_seen, allowed, weights,
                                bias=bias, explain=True, in_stock=rankable, seen=touched)
            lists = rank_lists(engine, ranking, touched,
                               model.bought_rows(chunk),
                               batch.recent, [], now, new_arrival_days, tag=variant.tag)
            yield RankedBatch(chunk, variant, lists, ranking.lengths)


def shown_lists(engine: Engine, users: np.ndarray, n: int, stage: FilterStage,
                live: np.ndarray, size: int, now: float, new_arrival_days: float, rows: int
                ) -> Iterator[tuple[int, Variant, PackedList, list[int]]]:
    """What `GET /recommend?n=n` shows each of these known shoppers (model user numbers)
    under `stage` (the request's filter stage: rules, stock), with no events newer than
    the model: (user, variant, the list as read, positions shown). For offline uses of
    the very lists the service serves: campaign export, previews of rules."""
    for ranked in rank_users(engine, users, size, stage.rankable, now, new_arrival_days,
                             rows):
        for user, value, length in zip(ranked.users.tolist(), ranked.lists,
                                       ranked.lengths.tolist(), strict=True):
            packed, positions = stage.show(unpack(value) or EMPTY, n)
            if length == 0 or len(positions) < min(n, len(packed)):
                # As the service does: a fallback for an empty list, or ranked again
                # within the exclusions when they took too much of it.
                query = RecommendQuery(user_id=str(engine.model.user_ids[user]), n=n)
                stock, allowed = ((live, stage.allowed) if length
                                  else (stage.rankable, stage.rankable))
                value, _ = shopper_list(engine, query, ranked.variant, [], stock, allowed,
                                        size, now, new_arrival_days)
                packed, positions = stage.show(unpack(value) or EMPTY, n)
            yield user, ranked.variant, packed, positions


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
