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


def strongest_anchor(engine: Engine, picks: np.ndarray,
                     anchors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each pick (B x K, -1 padded), the position among its row's anchors (B x M, -1
    padded at the end) of the one that speaks for it most, and whether any does (a
    strength above 0)."""
    model = engine.model
    b, k = picks.shape
    m = anchors.shape[1]
    counts = (anchors >= 0).sum(axis=1)
    # Padding repeats each row's first anchor: an equal value at a later place never
    # wins argmax, so no -inf mask over B x K x M is needed.
    filled = np.where(anchors >= 0, anchors, anchors[:, :1]).clip(min=0)
    p = np.maximum(picks, 0)
    comps = model.components
    dense = None  # items x items: how much each item speaks for another
    if "ease" in comps:
        dense = comps["ease"].weights  # type: ignore[attr-defined]
    elif "item_knn" not in comps and "content" in comps:
        dense = comps["content"].item_similarity  # type: ignore[attr-defined]  # small catalogs
    if dense is not None:  # items x items: one flat gather
        n = model.n_items
        index_type = np.int32 if n * n < 2**31 else np.int64
        index = (filled.astype(index_type) * index_type(n))[:, None, :] \
            + p.astype(index_type)[:, :, None]
        strength = np.take(np.asarray(dense).reshape(-1), index)
    elif "item_knn" in comps:
        keys, values = engine.similarity_lookup()
        query = (filled.astype(np.int64) * model.n_items)[:, None, :] + p[:, :, None]
        if keys.size:
            pos = np.minimum(np.searchsorted(keys, query), keys.size - 1)
            strength = np.where(keys[pos] == query, values[pos], 0.0).astype(np.float32)
        else:
            strength = np.zeros((b, k, m), dtype=np.float32)
    elif "content" in comps:
        vectors = comps["content"].item_vectors  # type: ignore[attr-defined]
        strength = np.zeros((b, k, m), np.float32)
        for row in range(b):
            strength[row] = (vectors[p[row]] @ vectors[filled[row]].T).toarray()
    else:
        strength = np.zeros((b, k, m), np.float32)
    best = strength.argmax(axis=2)
    value = np.take_along_axis(strength, best[:, :, None], axis=2)[:, :, 0]
    has = (value > 0) & (picks >= 0) & (counts > 0)[:, None]
    return best, has


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
        best, has = strongest_anchor(engine, picks, anchors)
        anchor = np.where(has, np.take_along_axis(anchors, best, axis=1), -1)
        session = np.take_along_axis(from_session, best, axis=1)
        anchor_code = np.where(has, np.where(session, SIMILAR, BECAUSE), NONE).astype(np.uint8)

    names = list(contributions)
    source_code = np.array([BOUGHT_BEFORE if n == "history" else _PERSONAL
                            if n in PERSONAL_SOURCES else POPULAR_IN if n == "popularity"
                            else TRENDING if n == "trending" else NONE for n in names],
                           dtype=np.uint8)
    # Candidate codes per pick, in order: promoted, then the strongest sources, then new
    # arrival: B x K planes of codes.
    slots = [np.where(pinned, PROMOTED, NONE).astype(np.uint8)]
    if names:
        values = [np.asarray(contributions[n], dtype=np.float32) for n in names]
        no_category = model.item_category[np.maximum(picks, 0)] < 0
        # Each source's place among all sources at each pick (ties: the one listed
        # first): with a handful of sources, comparing pairs of B x K planes is several
        # times faster than sorting along a short axis.
        places = []
        for i, v in enumerate(values):
            place = np.zeros((b, k), dtype=np.uint8)
            for j, w in enumerate(values):
                if j != i:
                    place += (w > v) if j > i else (w >= v)
            # Below the threshold a source did not carry the pick: no place at all.
            np.copyto(place, np.uint8(255), where=v < MIN_CONTRIBUTION)
            places.append(place)
        for position in range(min(len(names), MAX_REASONS + 1)):
            code = np.full((b, k), NONE, dtype=np.uint8)
            for i, place in enumerate(places):
                np.copyto(code, source_code[i], where=place == position)
            np.copyto(code, anchor_code, where=code == _PERSONAL)
            code[(code == POPULAR_IN) & no_category] = POPULAR
            slots.append(code)
    arrived = model.item_created_at[np.maximum(picks, 0)]
    slots.append(np.where(arrived >= now - new_arrival_days * SECONDS_PER_DAY, NEW,
                          NONE).astype(np.uint8))
    # The first MAX_REASONS codes kept, in slot order; a code already given by an
    # earlier slot is not repeated.
    out = [np.full((b, k), NONE, dtype=np.uint8) for _ in range(MAX_REASONS)]
    given = np.zeros((b, k), dtype=np.uint8)  # codes given so far, per pick
    for level, slot in enumerate(slots):
        keep = slot != NONE
        for earlier in slots[:level]:
            keep &= earlier != slot
        for t in range(MAX_REASONS):
            np.copyto(out[t], slot, where=keep & (given == t))
        given += keep
    out[0] = np.where(out[0] == NONE, POPULAR, out[0])  # every item has a reason
    needs_anchor = np.zeros((b, k), dtype=bool)
    for codes in out:
        needs_anchor |= (codes == BECAUSE) | (codes == SIMILAR)
    out = np.stack(out, axis=-1)
    return out, np.where(needs_anchor, anchor, -1).astype(np.int32)
