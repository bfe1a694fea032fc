"""Reason codes a shop can show beside each pick, from each algorithm's part of its score.

- `promoted`: pinned by a rule.
- `bought_before` ("buy again"): the shopper's own history carries the pick.
- `because_you_bought` + `item_id`: a personal algorithm carries it; the item is the one
  of the shopper's past that speaks for it most (its EASE weight, or item-kNN similarity
  where the model has no EASE, or content similarity where it has neither).
- `similar_to` + `item_id`: the same, the item from this session (`recent_items`, events).
- `popular_in` + `category`, or `popular` for an item without a category.
- `trending`.
- `new_arrival`: the item arrived within `new_arrival_days`.

At most three per item, strongest first; every item has at least one. Computed for a
whole batch of lists at once (numpy over users x picks x sources): the service explains
one list, `warm-cache` thousands, with the same function."""

from __future__ import annotations

import numpy as np

from recsvc.engine import Engine
from recsvc.lists import (
    BECAUSE,
    BOUGHT_BEFORE,
    NEW,
    NONE,
    POPULAR,
    POPULAR_IN,
    PROMOTED,
    SIMILAR,
    TRENDING,
)
from recsvc.models.base import SECONDS_PER_DAY

PERSONAL_SOURCES = ("ease", "item_knn", "cf", "content")
MAX_REASONS = 3
MIN_CONTRIBUTION = 0.05  # z-score units: below this an algorithm did not carry the pick
_PERSONAL = 99  # placeholder until the anchor is known


def anchor_strength(engine: Engine, picks: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """How much each anchor item speaks for each pick: B x K x M (invalid pairs -inf)."""
    model = engine.model
    p = np.maximum(picks, 0)[:, :, None]
    a = np.maximum(anchors, 0)[:, None, :]
    comps = model.components
    if "ease" in comps:
        weights = comps["ease"].weights  # type: ignore[attr-defined]
        strength = np.asarray(weights[a, p], dtype=np.float32)
    elif "item_knn" in comps:
        keys, values = engine.similarity_lookup()
        query = (a.astype(np.int64) * model.n_items + p).ravel()
        pos = np.minimum(np.searchsorted(keys, query), max(keys.size - 1, 0))
        found = keys[pos] == query if keys.size else np.zeros(query.size, dtype=bool)
        strength = np.where(found, values[pos] if keys.size else 0.0, 0.0).astype(
            np.float32).reshape(picks.shape[0], picks.shape[1], anchors.shape[1])
    elif "content" in comps:
        vectors = comps["content"].item_vectors  # type: ignore[attr-defined]
        strength = np.zeros((picks.shape[0], picks.shape[1], anchors.shape[1]), np.float32)
        for b in range(picks.shape[0]):
            strength[b] = (vectors[np.maximum(picks[b], 0)]
                           @ vectors[np.maximum(anchors[b], 0)].T).toarray()
    else:
        strength = np.zeros((picks.shape[0], picks.shape[1], anchors.shape[1]), np.float32)
    valid = (picks >= 0)[:, :, None] & (anchors >= 0)[:, None, :]
    return np.where(valid, strength, -np.inf)


def explain_batch(
    engine: Engine,
    picks: np.ndarray,
    contributions: dict[str, np.ndarray],
    anchors: np.ndarray,
    from_session: np.ndarray,
    pinned: np.ndarray,
    now: float,
    new_arrival_days: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Reason codes (B x K x 3, NONE-padded) and the anchor item of each pick (-1 none).

    `picks` B x K (-1 padded), `contributions` name -> B x K, `anchors` B x M candidate
    items (-1 padded), `from_session` B x M, `pinned` B x K."""
    model = engine.model
    b, k = picks.shape
    anchor = np.full((b, k), -1, dtype=np.int64)
    anchor_code = np.full((b, k), NONE, dtype=np.uint8)
    if anchors.shape[1] and b and k:
        strength = anchor_strength(engine, picks, anchors)
        best = strength.argmax(axis=2)
        best_value = np.take_along_axis(strength, best[:, :, None], axis=2)[:, :, 0]
        has = np.isfinite(best_value) & (best_value > 0)
        chosen = np.take_along_axis(anchors, best, axis=1)
        anchor = np.where(has, chosen, -1)
        session = np.take_along_axis(from_session, best, axis=1)
        anchor_code = np.where(has, np.where(session, SIMILAR, BECAUSE), NONE).astype(np.uint8)

    names = list(contributions)
    source_code = np.array([BOUGHT_BEFORE if n == "history" else _PERSONAL
                            if n in PERSONAL_SOURCES else POPULAR_IN if n == "popularity"
                            else TRENDING if n == "trending" else NONE for n in names],
                           dtype=np.int64)
    # Candidate codes per pick, in order: promoted, then the strongest sources (below
    # the threshold a source did not carry the pick), then new arrival. Each is a B x K
    # plane; with a handful of sources, ranks by pairwise comparison beat sorting.
    slots = [np.where(pinned, PROMOTED, NONE).astype(np.uint8)]
    if names:
        values = [contributions[n] for n in names]
        no_category = model.item_category[np.maximum(picks, 0)] < 0
        rank = []
        for i, v in enumerate(values):  # how many sources beat source i (ties: order)
            r = np.zeros(v.shape, dtype=np.int8)
            for j, w in enumerate(values):
                if j != i:
                    r += (w > v) if j > i else (w >= v)
            rank.append(r)
        for position in range(min(len(names), MAX_REASONS + 1)):
            code = np.zeros(picks.shape, dtype=np.int64)
            for i, (v, r) in enumerate(zip(values, rank, strict=True)):
                here = (r == position) & (v >= MIN_CONTRIBUTION)
                code = np.where(here, source_code[i], code)
            code = np.where(code == _PERSONAL, anchor_code, code)
            code = np.where((code == POPULAR_IN) & no_category, POPULAR, code)
            slots.append(code.astype(np.uint8))
    arrived = model.item_created_at[np.maximum(picks, 0)]
    slots.append(np.where(arrived >= now - new_arrival_days * SECONDS_PER_DAY, NEW,
                          NONE).astype(np.uint8))
    kept = [slot != NONE for slot in slots]
    for level in range(1, len(slots)):  # a code already given earlier is not repeated
        for earlier in range(level):
            kept[level] &= slots[earlier] != slots[level]
    # The first kept codes, in order: each kept slot's place among the kept ones.
    out = np.zeros((MAX_REASONS, *picks.shape), dtype=np.uint8)
    place = np.zeros(picks.shape, dtype=np.int8)
    for slot, keep in zip(slots, kept, strict=True):
        for t in range(MAX_REASONS):
            out[t] = np.where(keep & (place == t), slot, out[t])
        place += keep
    out[0] = np.where(out[0] == NONE, POPULAR, out[0])  # every item has a reason
    out = np.ascontiguousarray(np.moveaxis(out, 0, -1))
    needs_anchor = ((out == BECAUSE) | (out == SIMILAR)).any(axis=-1)
    return out, np.where(needs_anchor, anchor, -1).astype(np.int32)
