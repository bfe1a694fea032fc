"""The one scoring path: the service, the cache warmer, the evaluator and the tuner all
rank items through these functions, so offline numbers measure what shoppers get."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recsvc.blend import blend, standardize
from recsvc.fused import blend_rank
from recsvc.model import RecommenderModel
from recsvc.models import Recommender, UserBatch
from recsvc.models.base import Scores
from recsvc.topn import top_n


@dataclass(frozen=True)
class Ranking:
    """Top items per user, best first, as rows x n arrays for code that works on whole
    batches: item numbers (-1 past a row's end: filters may leave fewer than n
    candidates), blended scores (0 there) and, with `explain`, each algorithm's
    weighted, standardized score at each listed item (0 there)."""

    padded_items: np.ndarray
    padded_scores: np.ndarray
    lengths: np.ndarray  # items listed per row
    padded_contributions: dict[str, np.ndarray] | None = None

    @property
    def items(self) -> list[np.ndarray]:
        return [self.padded_items[b, :n] for b, n in enumerate(self.lengths.tolist())]

    @property
    def scores(self) -> list[np.ndarray]:
        return [self.padded_scores[b, :n] for b, n in enumerate(self.lengths.tolist())]

    @property
    def contributions(self) -> dict[str, list[np.ndarray]] | None:
        if self.padded_contributions is None:
            return None
        lengths = self.lengths.tolist()
        return {name: [values[b, :n] for b, n in enumerate(lengths)]
                for name, values in self.padded_contributions.items()}


def source_scores(
    components: Mapping[str, Recommender], batch: UserBatch, names: set[str] | None = None
) -> dict[str, np.ndarray]:
    """Each algorithm's raw scores for the batch, dense (only those named, if `names`)."""
    return {
        name: component.score(batch)
        for name, component in components.items()
        if names is None or name in names
    }


def compact_scores(
    components: Mapping[str, Recommender], batch: UserBatch, names: set[str]
) -> dict[str, Scores]:
    """The named algorithms' scores in their compact forms (`Recommender.score_compact`)."""
    return {name: component.score_compact(batch)
            for name, component in components.items() if name in names}


def rank(
    scores: np.ndarray,
    n: int,
    history: sp.csr_matrix | None = None,
    allowed: np.ndarray | None = None,
) -> Ranking:
    """Top-n per row, best first; equal scores rank by item number (lower first). Items in
    `history` (when given) and items not `allowed` never appear (-inf scores never do
    either)."""
    scores = np.array(scores, dtype=np.float32)
    if allowed is not None:
        scores[:, ~allowed] = -np.inf
    if history is not None and history.nnz:
        coo = history.tocoo()
        scores[coo.row, coo.col] = -np.inf
    return Ranking(*top_n(scores, n))


def rank_sources(
    sources: Mapping[str, np.ndarray],
    weights: Mapping[str, float],
    n: int,
    history: sp.csr_matrix,
    exclude_seen: bool,
    candidates: np.ndarray | None,
    standardized: bool = False,
) -> Ranking:
    """Blend dense per-algorithm scores and rank: the tuner's step, which standardizes each
    algorithm once and tries many weights (`recommend` blends compact forms in
    `recsvc.fused`; a test holds the two to the same rankings)."""
    blended = blend(sources, weights, standardized=standardized)
    return rank(blended, n, history=history if exclude_seen else None, allowed=candidates)


def recommend(
    model: RecommenderModel,
    batch: UserBatch,
    n: int,
    exclude_seen: bool | None = None,
    allowed: np.ndarray | None = None,
    weights: Mapping[str, float] | None = None,
    bias: np.ndarray | None = None,
    explain: bool = False,
    in_stock: np.ndarray | None = None,
) -> Ranking:
    """Blend the model's algorithms for each user of the batch and rank the catalog.

    Out-of-stock items are never recommended; `allowed` narrows the candidates further.
    `bias` (per item) is added to the blended scores: business rules' boosts and burials.
    With `explain`, the ranking carries each algorithm's part of every listed item's score.
    `in_stock` replaces the model's stock flags (the service's live catalog)."""
    weights = dict(model.weights if weights is None else weights)
    exclude_seen = model.exclude_seen if exclude_seen is None else exclude_seen
    active = {name for name, w in weights.items() if w != 0}
    sources = compact_scores(model.components, batch, active)
    candidates = np.asarray(model.item_in_stock if in_stock is None else in_stock, dtype=bool)
    if allowed is not None:
        candidates = candidates & allowed
    # The rules' boosts, and -inf (never listed) for what may not be listed.
    per_item = np.where(candidates, np.float32(0.0) if bias is None
                        else bias.astype(np.float32), np.float32(-np.inf))
    out = blend_rank(sources, weights, n, per_item,
                     batch.history if exclude_seen else None)
    return Ranking(out.items, out.scores, out.lengths,
                   out.contributions if explain else None)


# Related items ("goes with"): item-item CF where interactions exist, content for the rest,
# so a brand-new item still gets neighbours by its attributes.
SIMILAR_WEIGHTS = {"ease": 1.0, "item_knn": 1.0, "content": 0.5}


def similar(
    model: RecommenderModel,
    items: np.ndarray,
    n: int,
    allowed: np.ndarray | None = None,
    in_stock: np.ndarray | None = None,
    weights: Mapping[str, float] = SIMILAR_WEIGHTS,
    explain: bool = False,
) -> Ranking:
    """Items related to each of `items` (never the item itself), best first."""
    items = np.asarray(items, dtype=np.int64)
    sources = {}
    for name, weight in weights.items():
        component = model.components.get(name)
        if component is None or weight == 0:
            continue
        scores = component.similar(items)
        if scores is not None:
            sources[name] = standardize(scores) * np.float32(weight)
    if not sources:
        raise ValueError("the model has no algorithm that relates items")
    blended = blend(sources, {name: 1.0 for name in sources}, standardized=True)
    itself = sp.csr_matrix((np.ones(items.size, dtype=np.float32),
                            (np.arange(items.size), items)), shape=blended.shape)
    candidates = np.asarray(model.item_in_stock if in_stock is None else in_stock, dtype=bool)
    if allowed is not None:
        candidates = candidates & allowed
    ranking = rank(blended, n, history=itself, allowed=candidates)
    if not explain:
        return ranking
    # The sources are weighted z-scores already: their parts are their values at the picks.
    picks = ranking.padded_items
    at = np.maximum(picks, 0)
    return Ranking(picks, ranking.padded_scores, ranking.lengths,
                   {name: np.where(picks >= 0, np.take_along_axis(values, at, axis=1),
                                   0.0).astype(np.float32)
                    for name, values in sources.items()})
