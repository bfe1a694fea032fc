"""Reason codes a shop can show beside each pick, from each algorithm's part of its score.

- `promoted`: pinned by a rule.
- `bought_before` ("buy again"): the shopper's own history carries the pick.
- `because_you_bought` + `item_id`: a personal algorithm carries it; the item is the one
  of the shopper's past that speaks for it most (EASE weights, item-kNN similarity).
- `similar_to` + `item_id`: the same, the item from this session (`recent_items`, events).
- `popular_in` + `category`, or `popular` for an item without a category.
- `trending`.
- `new_arrival`: the item arrived within `new_arrival_days`.

At most three per item, strongest first; every item has at least one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from recsvc.engine import Engine
from recsvc.models.base import SECONDS_PER_DAY

PERSONAL = ("ease", "item_knn", "cf", "content")
MAX_REASONS = 3
MIN_CONTRIBUTION = 0.05  # z-score units: below this an algorithm did not carry the pick


@dataclass
class Anchors:
    """Items that may explain a pick: the shopper's past and this session's."""

    past: np.ndarray
    session: np.ndarray

    @property
    def all(self) -> np.ndarray:
        return np.concatenate([self.session, self.past])


def explain(
    engine: Engine,
    picks: np.ndarray,
    contributions: dict[str, np.ndarray],
    anchors: Anchors,
    now: float,
    new_arrival_days: float,
    pinned: np.ndarray | None = None,
) -> list[list[dict[str, Any]]]:
    model = engine.model
    candidates = anchors.all
    related = engine.related(picks, candidates) if candidates.size and picks.size else None
    n_session = anchors.session.size
    fresh_after = now - new_arrival_days * SECONDS_PER_DAY
    out: list[list[dict[str, Any]]] = []
    for j, item in enumerate(picks):
        reasons: list[dict[str, Any]] = []
        if pinned is not None and pinned[j]:
            reasons.append({"code": "promoted"})
        parts = sorted(((float(v[j]), name) for name, v in contributions.items()),
                       reverse=True)
        personal_done = False
        for value, name in parts:
            if value < MIN_CONTRIBUTION:
                break
            if name == "history":
                reasons.append({"code": "bought_before"})
            elif name in PERSONAL and not personal_done and related is not None:
                k = int(np.argmax(related[j]))
                if related[j, k] > 0:
                    anchor = str(model.item_ids[candidates[k]])
                    code = "similar_to" if k < n_session else "because_you_bought"
                    reasons.append({"code": code, "item_id": anchor})
                    personal_done = True
            elif name == "popularity":
                category = int(model.item_category[item])
                reasons.append({"code": "popular_in",
                                "category": str(model.category_names[category])}
                               if category >= 0 else {"code": "popular"})
            elif name == "trending":
                reasons.append({"code": "trending"})
        if model.item_created_at[item] >= fresh_after:
            reasons.append({"code": "new_arrival"})
        if not reasons:
            reasons.append({"code": "popular"})
        seen: set[str] = set()
        unique = [r for r in reasons if not (r["code"] in seen or seen.add(r["code"]))]
        out.append(unique[:MAX_REASONS])
    return out
