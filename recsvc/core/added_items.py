"""Items created after training, added to a trained model: what the service serves
from the moment an operator creates one (`PUT /items/{id}`), until the next training
learns it from the shop's catalog. The trained items keep their numbers (cached lists
stay valid); the new ones follow, and every algorithm places them as it can
(`Recommender.add_items`: the content model by the saved vocabulary)."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import numpy as np
import scipy.sparse as sp

from recsvc.core.algorithms.base import padded
from recsvc.core.model import RecommenderModel


def with_items(model: RecommenderModel, rows: list[dict[str, Any]], now: float
               ) -> RecommenderModel:
    """This model with catalog items it was not trained on appended (numbered after
    the trained ones, which keep their numbers): rows with `item_id` and the catalog's
    attributes (title, description, tags, category, brand, price, in_stock,
    created_at). Every algorithm places them as it can (`Recommender.add_items`).
    Rows naming items the model knows are left out."""
    seen: set[str] = set()
    fresh = []
    for row in rows:
        item = str(row["item_id"])
        if item not in seen and model.item_index([item])[0] < 0:
            seen.add(item)
            fresh.append(row)
    if not fresh:
        return model
    k = len(fresh)
    names = [str(n) for n in model.category_names.tolist()]
    known = {n.lower(): j for j, n in enumerate(names)}
    codes = []
    for row in fresh:
        category = str(row.get("category") or "").strip()
        if not category:
            codes.append(-1)
            continue
        if category.lower() not in known:
            known[category.lower()] = len(names)
            names.append(category)
        codes.append(known[category.lower()])
    tag_column = {str(t): j for j, t in enumerate(model.tag_names.tolist())}
    tag_rows = [[tag_column[t] for t in {t.strip().lower() for t in
                                          re.split(r"[|;,]", str(row.get("tags") or ""))}
                 if t in tag_column] for row in fresh]
    tags = model.item_tags
    if tags.shape != (0, 0):
        new_tags = sp.csr_matrix(
            (np.ones(sum(map(len, tag_rows)), dtype=tags.dtype),
             np.asarray([j for r in tag_rows for j in sorted(r)], dtype=np.int32),
             np.cumsum([0, *map(len, tag_rows)])), shape=(k, tags.shape[1]))
        tags = sp.csr_matrix(sp.vstack([tags, new_tags]), dtype=tags.dtype)

    def number(value: Any, default: float) -> float:  # noqa: ANN401
        try:
            out = float(value)
        except (TypeError, ValueError):
            return default
        return out if np.isfinite(out) else default

    wide = {name: padded(matrix, k, axes=(1,)) for name, matrix in (
        ("user_purchases", model.user_purchases), ("user_negatives", model.user_negatives),
        ("user_search_only", model.user_search_only)) if matrix is not None}
    return dataclasses.replace(
        model,
        item_ids=np.concatenate([model.item_ids,
                                 np.asarray([str(r["item_id"]) for r in fresh])]),
        user_items=padded(model.user_items, k, axes=(1,)),
        components={name: c.add_items(fresh) for name, c in model.components.items()},
        item_category=np.concatenate([model.item_category,
                                      np.asarray(codes, model.item_category.dtype)]),
        category_names=np.asarray(names, dtype=str),
        item_price=np.concatenate([model.item_price, np.asarray(
            [number(r.get("price"), np.nan) for r in fresh], model.item_price.dtype)]),
        item_in_stock=np.concatenate([model.item_in_stock, np.asarray(
            [r.get("in_stock") is not False for r in fresh], bool)]),
        item_created_at=np.concatenate([model.item_created_at, np.asarray(
            [number(r.get("created_at"), now) for r in fresh],
            model.item_created_at.dtype)]),
        item_tags=tags,
        trained_items=model.trained_items or model.n_items,
        **wide,
    )
