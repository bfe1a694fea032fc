"""Negative feedback: a shopper who says "not interested" in an item, or dislikes it,
never sees it again (until they engage with it), sees its close neighbours lower and,
mildly, its category lower. From the model (`user_negatives`, learned by the trainer
from the events log) and from fresh events alike, so it holds at once and after the next
training.

Penalties are in the blend's units (the sum of weighted z-scores): a neighbour loses up
to NEIGHBOUR_PENALTY, falling with its rank among the item's NEIGHBOURS related items;
every item of the category loses CATEGORY_PENALTY (per negative, at most
CATEGORY_FLOOR in all)."""

from __future__ import annotations

import numpy as np

from recsvc.core.model import RecommenderModel
from recsvc.core.policy.events import NEGATIVE
from recsvc.core.ranking.scoring import similar

NEIGHBOURS = 20
NEIGHBOUR_PENALTY = 1.0
CATEGORY_PENALTY = 0.3
CATEGORY_FLOOR = -1.0


def negatives_of(model: RecommenderModel, user: int,
                 fresh: list[tuple[int, float, str]]) -> dict[int, float]:
    """Item -> strength of what this shopper (model number, -1 none) said no to: stored,
    then their fresh events in order (item number, weight, type); engaging with an
    item again (a positive event) withdraws the no."""
    out: dict[int, float] = {}
    stored = model.user_negatives
    if user >= 0 and stored is not None:
        row = stored[user]
        out = dict(zip(row.indices.tolist(), row.data.tolist(), strict=True))
    for item, weight, kind in fresh:
        if kind in NEGATIVE:
            out[item] = NEGATIVE[kind]
        elif weight > 0:
            out.pop(item, None)
    return out


def feedback_bias(model: RecommenderModel, negatives: dict[int, float]
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(bias per item, items to hide) for these negatives."""
    bias = np.zeros(model.n_items, dtype=np.float32)
    items = np.fromiter(negatives, dtype=np.int64, count=len(negatives))
    strengths = np.fromiter(negatives.values(), dtype=np.float32, count=len(negatives))
    try:
        related = similar(model, items, NEIGHBOURS)
    except ValueError:  # a model with nothing that relates items
        related = None
    if related is not None:
        for row, strength in zip(related.items, strengths.tolist(), strict=True):
            fall = 1.0 - np.arange(row.size, dtype=np.float32) / NEIGHBOURS
            np.subtract.at(bias, row, NEIGHBOUR_PENALTY * strength * fall)
    category = model.item_category
    lowered = np.zeros(model.n_items, dtype=np.float32)
    for item, strength in zip(items.tolist(), strengths.tolist(), strict=True):
        if category[item] >= 0:
            lowered[category == category[item]] -= CATEGORY_PENALTY * strength
    bias += np.maximum(lowered, CATEGORY_FLOOR)
    return bias, items
