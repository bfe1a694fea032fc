"""The one scoring path: the service, the cache warmer, the evaluator and the tuner all
rank items through these functions, and they all blend with the compiled kernel
(`kernel.blend_rank`), so offline numbers measure what shoppers get."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recsvc.core.algorithms import Recommender, UserBatch
from recsvc.core.algorithms.forms import Scores
from recsvc.core.model import RecommenderModel
from recsvc.core.ranking.candidates import path_for
from recsvc.core.ranking.kernel import blend_rank


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


def dense_scores(
    components: Mapping[str, Recommender], batch: UserBatch, names: set[str] | None = None
) -> dict[str, np.ndarray]:
    """Each algorithm's raw scores for the batch, dense (only those named, if `names`)."""
    return {name: component.score(batch) for name, component in components.items()
            if names is None or name in names}


def compact_scores(
    components: Mapping[str, Recommender], batch: UserBatch, names: set[str]
) -> dict[str, Scores]:
    """The named algorithms' scores in their compact forms (`Recommender.score_compact`)."""
    return {name: component.score_compact(batch)
            for name, component in components.items() if name in names}


def blend_and_rank(
    sources: Mapping[str, Scores],
    weights: Mapping[str, float],
    n: int,
    candidates: np.ndarray,
    exclude: sp.csr_matrix | None = None,
    bias: np.ndarray | None = None,
    explain: bool = False,
) -> Ranking:
    """Blend the sources' per-row z-scores with `weights` and rank: only `candidates`
    (per item) are listed, never a row's items in `exclude`; `bias` (per item) is added
    to the blended scores (rules' boosts and burials); equal scores rank by item number.
    With `explain`, each source's part of every listed item's score."""
    # The rules' boosts, and -inf (never listed) for what may not be listed.
    per_item = np.where(candidates, np.float32(0.0) if bias is None
                        else bias.astype(np.float32), np.float32(-np.inf))
    out = blend_rank(sources, weights, n, per_item, exclude)
    return Ranking(out.items, out.scores, out.lengths, out.contributions if explain else None)


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
    seen: sp.csr_matrix | None = None,
) -> Ranking:
    """Blend the model's algorithms for each user of the batch and rank the catalog.

    Out-of-stock items are never recommended; `allowed` narrows the candidates further.
    `bias` (per item) is added to the blended scores: business rules' boosts and burials.
    With `explain`, the ranking carries each algorithm's part of every listed item's score.
    `in_stock` replaces the model's stock flags (the service's live catalog); `seen`,
    what `exclude_seen` excludes (default: the batch's histories; not what a search
    only matched)."""
    weights = dict(model.weights if weights is None else weights)
    exclude_seen = model.exclude_seen if exclude_seen is None else exclude_seen
    candidates = np.asarray(model.item_in_stock if in_stock is None else in_stock, dtype=bool)
    if allowed is not None:
        candidates = candidates & allowed
    exclude = (batch.history if seen is None else seen) if exclude_seen else None
    path = path_for(model)
    if path is not None:  # a million-item catalog: each shopper's candidates alone
        out = path.rank(model.components, batch, weights, n, candidates, bias, exclude)
        return Ranking(out.items, out.scores, out.lengths,
                       out.contributions if explain else None)
    active = {name for name, w in weights.items() if w != 0}
    sources = compact_scores(model.components, batch, active)
    return blend_and_rank(sources, weights, n, candidates, exclude, bias, explain)


def similar(
    model: RecommenderModel,
    items: np.ndarray,
    n: int,
    allowed: np.ndarray | None = None,
    in_stock: np.ndarray | None = None,
    explain: bool = False,
) -> Ranking:
    """Items related to each of `items` (never the item itself), best first: the
    item-to-item algorithms blended by their `similar_weight` (item-item CF where
    interactions exist, content for the rest, so a brand-new item still gets neighbours
    by its attributes)."""
    items = np.asarray(items, dtype=np.int64)
    sources: dict[str, Scores] = {}
    weights: dict[str, float] = {}
    for name, component in model.components.items():
        if component.similar_weight == 0:
            continue
        scores = component.similar(items)
        if scores is not None:
            sources[name], weights[name] = scores, component.similar_weight
    if not sources:
        raise ValueError("the model has no algorithm that relates items")
    itself = sp.csr_matrix((np.ones(items.size, dtype=np.float32),
                            (np.arange(items.size), items)), shape=(items.size, model.n_items))
    candidates = np.asarray(model.item_in_stock if in_stock is None else in_stock, dtype=bool)
    if allowed is not None:
        candidates = candidates & allowed
    return blend_and_rank(sources, weights, n, candidates, itself, explain=explain)
