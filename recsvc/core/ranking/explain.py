"""Reason codes a shop can show beside each pick, from each algorithm's part of its score.

- `promoted`: pinned by a rule.
- `bought_before` ("buy again"): the shopper's own history carries the pick, and they
  bought it (and kept it); `seen_before` when their history holds it without a purchase.
- `because_you_bought` + `item_id`: a personal algorithm carries it; the item is the one
  of the shopper's past that speaks for it most, by the item relation of the model's
  relational algorithm of highest `relation_priority` (EASE's weights, else item-kNN's
  similarities, else content similarity), and they bought it; `because_you_viewed` +
  `item_id` when that item is in their past without a purchase.
- `similar_to` + `item_id`: the same, the item from this session (`recent_items`).
- `next_after` + `item_id`: a sequence algorithm carries it; the item is the shopper's
  recent one it most often came next after.

What a reason says is true of the shopper's events: "bought" only for a purchase
(`bought`, from the model's record of purchases and the fresh events' types).
- `popular_in` + `category`, or `popular` for an item without a category.
- `trending`.
- `new_arrival`: the item arrived within `new_arrival_days`.

At most three per item, strongest first; every item has at least one. Which code an
algorithm's part gives is its own declaration (`Recommender.reason`). Computed for a
whole batch of lists at once, compiled: the service explains one list, `warm-cache`
thousands, with the same function."""

from __future__ import annotations

import numba
import numpy as np
import scipy.sparse as sp

from recsvc.core.algorithms.base import ItemRelation, Reason
from recsvc.core.clock import SECONDS_PER_DAY
from recsvc.core.model import RecommenderModel
from recsvc.core.ranking.kernel import read_only
from recsvc.core.ranking.packed import (
    BECAUSE,
    BECAUSE_VIEWED,
    BOUGHT_BEFORE,
    NEW,
    NEXT_AFTER,
    NONE,
    POPULAR,
    POPULAR_IN,
    SEEN_BEFORE,
    SIMILAR,
    TRENDING,
)

MAX_REASONS = 3
MIN_CONTRIBUTION = 0.05  # z-score units: below this an algorithm did not carry the pick
_PERSONAL = 99  # placeholder until the anchor is known
_NEXT = 98  # placeholder: next_after, if a recent item leads to the pick


_NO_DENSE = np.zeros((0, 0), dtype=np.float32)
_NO_KEYS = np.zeros(0, dtype=np.int64)
_NO_VALUES = np.zeros(0, dtype=np.float32)
_NO_STRENGTHS = np.zeros((0, 0, 0), dtype=np.float32)
# How an anchor's strength for a pick is found (`_relation`).
_NO_RELATION, _DENSE, _SORTED_KEYS, _GIVEN = range(4)


def sequence_relation(model: RecommenderModel) -> ItemRelation | None:
    """The relation that names a sequence algorithm's anchor (what came next after what)."""
    for component in model.components.values():
        if component.reason is Reason.SEQUENCE:
            return component.item_relation()
    return None


def relation_of(model: RecommenderModel) -> ItemRelation | None:
    """The item relation that names anchors: the model's relational algorithm of highest
    priority (`Recommender.relation_priority`)."""
    relational = sorted((c for c in model.components.values() if c.relation is not None),
                        key=lambda c: c.relation_priority)
    for component in relational:
        relation = component.item_relation()
        if relation is not None:
            return relation
    return None


def _relation(model: RecommenderModel, picks: np.ndarray, anchors: np.ndarray,
              relation: ItemRelation | None = None
              ) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A relation (default: `relation_of(model)`) as the kernels take it: a mode and four
    arrays (read-only, as the kernels are compiled for, `warm_up`). Item vectors are
    turned into strengths for the batch's picks and anchors alone."""
    mode, dense, keys, values, strengths = _NO_RELATION, _NO_DENSE, _NO_KEYS, _NO_VALUES, \
        _NO_STRENGTHS
    relation = relation_of(model) if relation is None else relation
    if relation is None:
        pass
    elif relation.dense is not None:
        mode, dense = _DENSE, np.asarray(relation.dense)
    elif relation.keys is not None and relation.values is not None:
        mode, keys, values = _SORTED_KEYS, relation.keys, relation.values
    elif relation.vectors is not None:
        vectors = relation.vectors
        p, a = np.maximum(picks, 0), np.maximum(anchors, 0)
        strengths = np.zeros((*picks.shape, anchors.shape[1]), np.float32)
        for row in range(picks.shape[0]):
            strengths[row] = (vectors[p[row]] @ vectors[a[row]].T).toarray()
        mode = _GIVEN
    return (mode, read_only(dense, np.float32), read_only(keys, np.int64),
            read_only(values, np.float32), read_only(strengths, np.float32))


@numba.njit(cache=True, nogil=True)
def _row_anchors(b: int, picks: np.ndarray, anchors: np.ndarray, mode: int,
                 dense: np.ndarray, keys: np.ndarray, values: np.ndarray,
                 strengths: np.ndarray, n_items: int, best: np.ndarray,
                 strongest: np.ndarray, scratch: np.ndarray) -> None:
    """For each of row b's picks, the position among its anchors of the one that speaks
    most for it (the first of equals) into best[k], or -1 when none does (no strength
    above 0). Anchor by anchor: one row of the relation at a time stays in cache. A
    sparse row is found once per anchor; with a `scratch` of n_items zeros (long lists)
    it is spread into it, so each pick is one read, and cleared after."""
    best[:] = -1
    strongest[:] = 0.0
    spread = mode == _SORTED_KEYS and scratch.size == n_items
    for m in range(anchors.shape[1]):
        anchor = anchors[b, m]
        if anchor < 0:  # padding comes last
            break
        lo = hi = 0
        if mode == _SORTED_KEYS:
            lo = np.searchsorted(keys, anchor * n_items)
            hi = np.searchsorted(keys, (anchor + 1) * n_items)
            if spread:
                for e in range(lo, hi):
                    scratch[keys[e] - anchor * n_items] = values[e]
        for k in range(picks.shape[1]):
            pick = picks[b, k]
            if pick < 0:
                break
            if mode == _DENSE:
                strength = dense[anchor, pick]
            elif spread:
                strength = scratch[pick]
            elif mode == _SORTED_KEYS:
                key = anchor * n_items + pick
                at = lo + np.searchsorted(keys[lo:hi], key)
                strength = values[at] if at < hi and keys[at] == key else 0.0
            elif mode == _GIVEN:
                strength = strengths[b, k, m]
            else:
                strength = 0.0
            if strength > strongest[k]:
                best[k], strongest[k] = m, strength
        if spread:
            for e in range(lo, hi):
                scratch[keys[e] - anchor * n_items] = 0.0


# From this many picks a row, spreading each anchor's sparse row into a catalog-wide
# buffer beats searching it once per pick (warm-cache's lists of 100; a request's 10
# search).
SPREAD_FROM = 32


@numba.njit(cache=True, nogil=True)
def _scratch(picks: np.ndarray, mode: int, n_items: int) -> np.ndarray:
    wide = mode == _SORTED_KEYS and picks.shape[1] >= SPREAD_FROM
    return np.zeros(n_items if wide else 0, dtype=np.float32)


@numba.njit(cache=True, nogil=True)
def _strongest(picks: np.ndarray, anchors: np.ndarray, mode: int, dense: np.ndarray,
               keys: np.ndarray, values: np.ndarray, strengths: np.ndarray,
               n_items: int, best: np.ndarray) -> None:
    strongest = np.empty(picks.shape[1], dtype=np.float32)
    scratch = _scratch(picks, mode, n_items)
    for b in range(picks.shape[0]):
        _row_anchors(b, picks, anchors, mode, dense, keys, values, strengths, n_items,
                     best[b], strongest, scratch)


def strongest_anchor(model: RecommenderModel, picks: np.ndarray,
                     anchors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each pick (B x K, -1 padded), the position among its row's anchors (B x M, -1
    padded at the end) of the one that speaks for it most, and whether any does (a
    strength above 0)."""
    picks = np.ascontiguousarray(picks, dtype=np.int64)
    anchors = np.ascontiguousarray(anchors, dtype=np.int64)
    best = np.full(picks.shape, -1, dtype=np.int64)
    _strongest(picks, anchors, *_relation(model, picks, anchors), model.n_items, best)
    return np.maximum(best, 0), best >= 0


@numba.njit(cache=True, nogil=True)
def _give(codes: np.ndarray, b: int, k: int, given: int, code: int) -> int:
    """Append `code` to the pick's codes unless it is NONE or already there."""
    if code == NONE:
        return given
    for t in range(given):
        if codes[b, k, t] == code:
            return given
    codes[b, k, given] = code
    return given + 1


@numba.njit(cache=True, nogil=True)
def _in_rows(indptr: np.ndarray, indices: np.ndarray, items: np.ndarray,
             out: np.ndarray) -> None:
    """out[b, k]: is items[b, k] in row b of a CSR matrix with sorted indices?"""
    for b in range(items.shape[0]):
        row = indices[indptr[b]:indptr[b + 1]]
        for k in range(items.shape[1]):
            item = items[b, k]
            if item >= 0 and row.size:
                at = np.searchsorted(row, item)
                out[b, k] = at < row.size and row[at] == item


def in_rows(rows: sp.csr_matrix, items: np.ndarray) -> np.ndarray:
    """B x K bool: is each of items (B x K, -1 padded) in its row of `rows`?"""
    rows = sp.csr_matrix(rows)
    rows.sort_indices()
    out = np.zeros(items.shape, dtype=np.bool_)
    if items.size:
        _in_rows(rows.indptr.astype(np.int64), rows.indices.astype(np.int64),
                 np.ascontiguousarray(items, dtype=np.int64), out)
    return out


@numba.njit(cache=True, nogil=True)
def _explain(picks: np.ndarray, values: np.ndarray, source_code: np.ndarray,
             anchors: np.ndarray, from_session: np.ndarray, anchor_bought: np.ndarray,
             pick_bought: np.ndarray, pick_seen: np.ndarray, next_of: np.ndarray,
             mode: int,
             dense: np.ndarray, keys: np.ndarray, similarity: np.ndarray,
             strengths: np.ndarray, n_items: int, no_category: np.ndarray,
             new: np.ndarray, codes: np.ndarray, anchor_of: np.ndarray) -> None:
    sources = source_code.size
    order = np.empty(sources, dtype=np.int64)
    best = np.empty(picks.shape[1], dtype=np.int64)
    strongest = np.empty(picks.shape[1], dtype=np.float32)
    scratch = _scratch(picks, mode, n_items)
    for b in range(picks.shape[0]):
        _row_anchors(b, picks, anchors, mode, dense, keys, similarity, strengths, n_items,
                     best, strongest, scratch)
        for k in range(picks.shape[1]):
            pick = picks[b, k]
            item = max(pick, 0)
            anchor, anchor_code = -1, NONE
            m = best[k] if pick >= 0 else -1
            if m >= 0:
                anchor = anchors[b, m]
                anchor_code = (SIMILAR if from_session[b, m] else BECAUSE if anchor_bought[b, m]
                               else BECAUSE_VIEWED)
            # One anchor an item (the cached format keeps one): the first code that
            # names an item takes it, a later one naming another item is left out.
            named = -1
            # Codes in order, each once, until there are MAX_REASONS: the sources that
            # carried the pick (strongest first; ties: the one listed first; at most
            # MAX_REASONS + 1 of them), then new arrival. (`promoted` is given when a
            # list is read: pins are a read-time rule.)
            given = 0
            carried = 0
            for i in range(sources):
                if values[i, b, k] >= MIN_CONTRIBUTION:
                    order[carried] = i
                    carried += 1
            for position in range(min(carried, MAX_REASONS + 1)):
                if given == MAX_REASONS:
                    break
                for j in range(position + 1, carried):  # the next strongest to the front
                    if values[order[j], b, k] > values[order[position], b, k] or (
                            values[order[j], b, k] == values[order[position], b, k]
                            and order[j] < order[position]):
                        order[position], order[j] = order[j], order[position]
                code = source_code[order[position]]
                names = -1
                if code == _PERSONAL:
                    code, names = anchor_code, anchor
                elif code == _NEXT:
                    code, names = (NEXT_AFTER, next_of[b, k]) if next_of[b, k] >= 0 else (
                        NONE, -1)
                elif code == BOUGHT_BEFORE and not pick_bought[b, k]:
                    # Only what they touched is "seen" (not what a search matched).
                    code = SEEN_BEFORE if pick_seen[b, k] else NONE
                elif code == POPULAR_IN and no_category[item]:
                    code = POPULAR
                if names >= 0:
                    if named >= 0 and named != names:
                        continue
                    named = names
                given = _give(codes, b, k, given, code)
            if new[item] and given < MAX_REASONS:
                given = _give(codes, b, k, given, NEW)
            if given == 0:
                codes[b, k, 0] = POPULAR  # every item has a reason
            anchor_of[b, k] = named


# The stored code of each kind of reason an algorithm declares.
_REASON_CODES = {Reason.OWN_PAST: BOUGHT_BEFORE, Reason.ANCHORED: _PERSONAL,
                 Reason.SEQUENCE: _NEXT, Reason.POPULAR: POPULAR_IN,
                 Reason.TRENDING: TRENDING, Reason.NONE: NONE}


def explain_batch(
    model: RecommenderModel,
    picks: np.ndarray,
    contributions: dict[str, np.ndarray],
    anchors: np.ndarray,
    from_session: np.ndarray,
    bought: sp.csr_matrix,
    seen: sp.csr_matrix,
    recent: np.ndarray,
    now: float,
    new_arrival_days: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Reason codes (B x K x 3, NONE-padded) and the anchor item of each pick (-1 none).

    `picks` B x K (-1 padded), `contributions` name -> B x K, `anchors` B x M candidate
    items (-1 padded), `from_session` B x M, `bought` B x items (what each row's shopper
    bought: only those may be called bought), `seen` B x items (what they touched: only
    those may be called seen), `recent` B x R (each row's last items,
    newest first, -1 padded: what a sequence algorithm's pick came next after)."""
    picks = np.ascontiguousarray(picks, dtype=np.int64)
    anchors = np.ascontiguousarray(anchors, dtype=np.int64)
    b, k = picks.shape
    names = list(contributions)
    source_code = np.array([_REASON_CODES[model.components[n].reason] for n in names],
                           dtype=np.uint8)
    values = (np.stack([np.asarray(contributions[n], dtype=np.float32) for n in names])
              if names else np.zeros((0, b, k), np.float32))
    codes = np.zeros((b, k, MAX_REASONS), dtype=np.uint8)
    anchor = np.full((b, k), -1, dtype=np.int32)
    new = model.item_created_at >= now - new_arrival_days * SECONDS_PER_DAY
    if model.n_items and b and k:
        _explain(picks, values, source_code, anchors,
                 np.ascontiguousarray(from_session, dtype=np.bool_),
                 in_rows(bought, anchors), in_rows(bought, picks), in_rows(seen, picks),
                 _next_anchor(model, picks, recent, _carried(model, names, values)),
                 *_relation(model, picks, anchors), model.n_items,
                 model.item_category < 0, new, codes, anchor)
    return codes, anchor


def _carried(model: RecommenderModel, names: list[str], values: np.ndarray) -> np.ndarray:
    """B x K: picks a sequence algorithm carried enough to give a reason."""
    sequence = [i for i, n in enumerate(names)
                if model.components[n].reason == Reason.SEQUENCE]
    if not sequence:
        return np.zeros(values.shape[1:], dtype=np.bool_)
    return (values[sequence] >= MIN_CONTRIBUTION).any(axis=0)


def _next_anchor(model: RecommenderModel, picks: np.ndarray, recent: np.ndarray,
                 needed: np.ndarray) -> np.ndarray:
    """B x K: the recent item each `needed` pick most often came next after (-1: none,
    not needed, or no sequence algorithm). Only the needed picks are looked up (moved
    to the front of their rows): most picks are not the sequence algorithm's."""
    out = np.full(picks.shape, -1, dtype=np.int64)
    relation = sequence_relation(model)
    recent = np.ascontiguousarray(recent, dtype=np.int64)
    if relation is None or recent.size == 0 or not needed.any():
        return out
    order = np.argsort(~needed, axis=1, kind="stable")[:, :int(needed.sum(axis=1).max())]
    sub = np.where(np.take_along_axis(needed, order, axis=1),
                   np.take_along_axis(picks, order, axis=1), -1)
    sub = np.ascontiguousarray(sub, dtype=np.int64)
    best = np.full(sub.shape, -1, dtype=np.int64)
    _strongest(sub, recent, *_relation(model, sub, recent, relation), model.n_items, best)
    found = best >= 0
    named = np.full(sub.shape, -1, dtype=np.int64)
    named[found] = recent[np.nonzero(found)[0], best[found]]
    np.put_along_axis(out, order, named, axis=1)
    return out


def warm_up(model: RecommenderModel | None = None) -> None:
    """Compile (or load from numba's cache) before the first list needs explaining; with
    a model, also build what its anchors are looked up in (item-kNN's sorted keys take
    most of a second at 100,000 items: not the first shopper's to wait for)."""
    picks = np.zeros((1, 1), dtype=np.int64)
    anchors = np.zeros((1, 1), dtype=np.int64)
    relation = (_DENSE, read_only(np.zeros((1, 1)), np.float32), read_only(_NO_KEYS, np.int64),
                read_only(_NO_VALUES, np.float32), read_only(_NO_STRENGTHS, np.float32))
    _strongest(picks, anchors, *relation, 1, np.zeros((1, 1), dtype=np.int64))
    in_rows(sp.csr_matrix((1, 1), dtype=bool), picks)
    _explain(picks, np.zeros((1, 1, 1), dtype=np.float32), np.zeros(1, dtype=np.uint8),
             anchors, np.zeros((1, 1), dtype=np.bool_), np.zeros((1, 1), dtype=np.bool_),
             np.zeros((1, 1), dtype=np.bool_), np.zeros((1, 1), dtype=np.bool_),
             np.full((1, 1), -1, dtype=np.int64), *relation, 1, np.zeros(1, np.bool_),
             np.zeros(1, np.bool_),
             np.zeros((1, 1, MAX_REASONS), dtype=np.uint8), np.zeros((1, 1), dtype=np.int32))
    if model is not None and model.n_items:
        strongest_anchor(model, picks, anchors)
        _next_anchor(model, picks, anchors, np.ones(picks.shape, dtype=np.bool_))
