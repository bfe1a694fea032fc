"""The one scoring path: the service, the cache warmer, the evaluator and the tuner all
rank items through these functions, so offline numbers measure what shoppers get."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recsvc.blend import accumulate, blend, standardize, values_at
from recsvc.model import RecommenderModel
from recsvc.models import Recommender, UserBatch
from recsvc.models.base import Scores


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
    overwrite: bool = False,
) -> Ranking:
    """Top-n per row, best first; equal scores rank by item number (lower first). Items in
    `history` (when given) and items not `allowed` never appear (-inf scores never do
    either). With `overwrite`, `scores` (float32) may be changed in place: no copy."""
    scores = np.array(scores, dtype=np.float32, copy=not overwrite)
    if allowed is not None:
        scores[:, ~allowed] = -np.inf
    if history is not None and history.nnz:
        coo = history.tocoo()
        scores[coo.row, coo.col] = -np.inf
    n = max(0, min(n, scores.shape[1]))
    if n == 0:
        rows = scores.shape[0]
        return Ranking(np.zeros((rows, 0), dtype=np.int64), np.zeros((rows, 0), np.float32),
                       np.zeros(rows, dtype=np.int64))
    # Partition for the last n places rather than the first n of -scores: no negated copy.
    top = np.argpartition(scores, scores.shape[1] - n, axis=1)[:, scores.shape[1] - n:]
    top.sort(axis=1)  # item order first, so the stable sort below breaks ties by item number
    top_scores = np.take_along_axis(scores, top, axis=1)
    order = np.argsort(-top_scores, axis=1, kind="stable")
    top = np.take_along_axis(top, order, axis=1)
    top_scores = np.take_along_axis(top_scores, order, axis=1)
    _settle_boundary_ties(scores, top, top_scores)
    # Excluded items (-inf) sort last: each row's listed items are a prefix.
    finite = np.isfinite(top_scores)
    padded = np.where(finite, top, -1).astype(np.int64)
    padded_scores = np.where(finite, top_scores, 0.0).astype(np.float32)
    return Ranking(padded, padded_scores, finite.sum(axis=1))


def _settle_boundary_ties(scores: np.ndarray, top: np.ndarray, top_scores: np.ndarray) -> None:
    """argpartition picks arbitrarily among items tied at the last place; take the
    lowest-numbered ones instead, so that rankings (and metrics) are reproducible."""
    n = top.shape[1]
    last = top_scores[:, -1:]
    tied_everywhere = (scores == last).sum(axis=1)
    tied_kept = (top_scores == last).sum(axis=1)
    for row in np.flatnonzero((tied_everywhere > tied_kept) & np.isfinite(last[:, 0])):
        row_scores = scores[row]
        above = np.flatnonzero(row_scores > last[row, 0])
        tied = np.flatnonzero(row_scores == last[row, 0])[: n - above.size]
        chosen = np.concatenate([above, tied])
        chosen = chosen[np.lexsort((chosen, -row_scores[chosen]))]
        top[row], top_scores[row] = chosen, row_scores[chosen]


def rank_sources(
    sources: Mapping[str, np.ndarray],
    weights: Mapping[str, float],
    n: int,
    history: sp.csr_matrix,
    exclude_seen: bool,
    candidates: np.ndarray | None,
    standardized: bool = False,
) -> Ranking:
    """Blend per-algorithm scores and rank: the step shared by serving and tuning."""
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
    parts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    blended, shift = accumulate(sources, weights, parts=parts)
    # The rules' boosts and the candidates in one pass: -inf is never listed. The shift
    # (a constant per row) is left for the listed items alone.
    per_item = np.where(candidates, np.float32(0.0) if bias is None
                        else bias.astype(np.float32), np.float32(-np.inf))
    blended += per_item[np.newaxis, :]
    ranking = rank(blended, n, history=batch.history if exclude_seen else None,
                   overwrite=True)
    padded = ranking.padded_items
    listed = padded >= 0
    scores = np.where(listed, ranking.padded_scores - shift[:, None], 0.0).astype(np.float32)
    if not explain:
        return Ranking(padded, scores, ranking.lengths)
    return Ranking(padded, scores, ranking.lengths,
                   contributions_at(sources, parts, padded))


def contributions_at(sources: Mapping[str, Scores],
                     parts: Mapping[str, tuple[np.ndarray, np.ndarray]],
                     picks: np.ndarray) -> dict[str, np.ndarray]:
    """Each algorithm's weighted z-score (scores * scale - shift) at B x K picks (-1
    padded: 0 there), computed at the picks alone."""
    listed = picks >= 0
    at_items = np.maximum(picks, 0)
    out = {}
    for name, (scale, shift) in parts.items():
        at = values_at(sources[name], at_items) * scale[:, None] - shift[:, None]
        out[name] = np.where(listed, at, 0.0).astype(np.float32)
    return out


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
    as_is = (np.ones(items.size), np.zeros(items.size))  # sources are weighted z-scores already
    return Ranking(ranking.padded_items, ranking.padded_scores, ranking.lengths,
                   contributions_at(sources, dict.fromkeys(sources, as_is),
                                    ranking.padded_items))
