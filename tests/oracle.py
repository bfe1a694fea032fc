"""The test oracle of the scoring path: blending and ranking written plainly in numpy,
which the compiled kernel (`recsvc.core.ranking.kernel`, the only production path) is
held to by the tests.

Each source's scores are standardized per user (zero mean, unit variance over the
catalog) so that weights compare like with like, whatever each algorithm's scale."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import scipy.sparse as sp

from recsvc.core.ranking.scoring import Ranking
from recsvc.core.ranking.topn import top_n


def moments(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row mean and mean of squares over the catalog, float64."""
    scores = np.asarray(scores, dtype=np.float32)
    n = max(scores.shape[1], 1)
    # float32 passes (pairwise sums; SIMD dot products) at twice the speed of float64.
    mean = scores.sum(axis=1, dtype=np.float32).astype(np.float64) / n
    square = np.einsum("ij,ij->i", scores, scores).astype(np.float64) / n
    # Where the variance is tiny beside the mean, float32 rounding could be most of it:
    # those rows again in float64.
    doubtful = np.flatnonzero(square - mean * mean <= 1e-3 * mean * mean)
    if doubtful.size:
        exact = scores[doubtful].astype(np.float64)
        mean[doubtful] = exact.mean(axis=1)
        square[doubtful] = mean[doubtful] ** 2 + exact.var(axis=1)
    return mean, square


def standardization(scores: np.ndarray, weight: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Per-row (scale, shift) with weight * z-score = scores * scale - shift; a row with
    no spread (no signal for that user) gets scale 0 and shift 0."""
    if scores.shape[1] == 0:
        zeros = np.zeros(scores.shape[0], dtype=np.float64)
        return zeros, zeros
    mean, square = moments(scores)
    std = np.sqrt(np.maximum(square - mean * mean, 0.0))
    flat = std <= 1e-12 * np.maximum(1.0, np.abs(mean))
    scale = np.where(flat, 0.0, weight / np.where(flat, 1.0, std))
    return scale, scale * mean


def standardize(scores: np.ndarray) -> np.ndarray:
    """Row-wise z-scores; a row with no spread (no signal for that user) becomes zeros."""
    scores = np.asarray(scores, dtype=np.float32)
    scale, shift = standardization(scores)
    return (scores * scale[:, None].astype(np.float32)
            - shift[:, None].astype(np.float32)).astype(np.float32)


def blend(
    sources: Mapping[str, np.ndarray],
    weights: Mapping[str, float],
    standardized: bool = False,
) -> np.ndarray:
    """Weighted sum of standardized sources. Sources with weight 0 are skipped.
    `standardized=True` says the sources already went through `standardize` (the tuner
    does that once and then tries many weights)."""
    total: np.ndarray | None = None
    for name, weight in weights.items():
        if weight == 0 or name not in sources:
            continue
        z = sources[name] if standardized else standardize(sources[name])
        part = np.asarray(z, dtype=np.float32) * np.float32(weight)
        total = part if total is None else np.add(total, part, out=total)
    if total is None:
        if not sources:
            raise ValueError("nothing to blend: no algorithm has a weight")
        return np.zeros(next(iter(sources.values())).shape, dtype=np.float32)
    return total


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


def capped_positions(allowed: np.ndarray, category: np.ndarray, items: np.ndarray, n: int,
                     cap: int, fixed: int = 0) -> list[int]:
    """The category cap as a merchandiser states it, one item at a time: an item shows
    unless `cap` of its category already do (the first `fixed` always show); if fewer
    than n show, the best of those held back fill the list."""
    out, over, counts = [], [], {}
    for j, item in enumerate(items.tolist()):
        if not allowed[item]:
            continue
        c = int(category[item])
        if c >= 0 and counts.get(c, 0) >= cap and j >= fixed:
            over.append(j)
            continue
        if c >= 0:
            counts[c] = counts.get(c, 0) + 1
        out.append(j)
        if len(out) == n:
            return out
    return sorted(out + over[:n - len(out)])
