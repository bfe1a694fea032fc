"""Mixing the scores of several algorithms into one ranking.

Each source's scores are standardized per user (zero mean, unit variance over the
catalog) so that weights compare like with like, whatever each algorithm's scale.

Sources come in the compact forms `Recommender.score_compact` gives: a dense users x
items array, `SharedRows` (popularity: a handful of rows shared by many shoppers,
standardized once per row) or a sparse matrix (the shopper's own history: zero almost
everywhere, so its statistics and its part of the sum come from its stored entries).
Blending is a few passes over the catalog per dense source and one per shared source,
which is what bounds how fast `warm-cache` and a cache miss can go."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import scipy.sparse as sp

from recsvc.models.base import Scores, SharedRows

# Below this many stored entries per catalog cell, a sparse source is added entry by
# entry; above it, through scipy's sparse + dense (one copy, then an accumulating pass).
_SPARSE_ADD_DENSITY = 1 / 16


def moments(scores: Scores) -> tuple[np.ndarray, np.ndarray]:
    """Per-row mean and mean of squares over the catalog, float64."""
    if isinstance(scores, SharedRows):
        mean, square = moments(scores.rows)
        return mean[scores.which], square[scores.which]
    if sp.issparse(scores):
        csr = sp.csr_matrix(scores)
        n = csr.shape[1]
        data = csr.data.astype(np.float64)
        starts = csr.indptr[:-1]
        nonempty = np.diff(csr.indptr) > 0
        total = np.zeros(csr.shape[0])
        total_sq = np.zeros(csr.shape[0])
        if data.size:
            total[nonempty] = np.add.reduceat(data, starts[nonempty])
            total_sq[nonempty] = np.add.reduceat(data * data, starts[nonempty])
        return total / max(n, 1), total_sq / max(n, 1)
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


def standardization(scores: Scores, weight: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
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


def add_scaled(total: np.ndarray | None, scores: Scores, scale: np.ndarray,
               scratch: np.ndarray | None = None) -> np.ndarray:
    """total + scores * scale (per row), in place where it can be; a new array when
    `total` is None. `scratch`, an array shaped like `total`, saves allocating one."""
    scale32 = scale.astype(np.float32)
    if isinstance(scores, SharedRows):
        row_scale = np.zeros(scores.rows.shape[0], dtype=np.float32)
        row_scale[scores.which] = scale32  # one scale per shared row: same moments
        table = np.asarray(scores.rows, dtype=np.float32) * row_scale[:, None]
        if total is not None and table.shape[0] == 1:  # one row for all: a broadcast add
            total += table
            return total
        part = table[scores.which]
        if total is None:
            return part
        total += part
        return total
    if sp.issparse(scores):
        csr = sp.csr_matrix(scores, dtype=np.float32)
        csr.sum_duplicates()  # canonical (the flat add below needs unique entries) first
        counts = np.diff(csr.indptr)
        values = csr.data * np.repeat(scale32, counts)
        if total is None:
            return sp.csr_matrix((values, csr.indices, csr.indptr), shape=csr.shape).toarray()
        if csr.nnz < _SPARSE_ADD_DENSITY * total.size and total.flags.c_contiguous:
            flat = np.repeat(np.arange(csr.shape[0], dtype=np.int64) * csr.shape[1], counts)
            total.reshape(-1)[flat + csr.indices] += values
            return total
        return np.asarray(sp.csr_array((values, csr.indices, csr.indptr), shape=csr.shape)
                          + total)
    scores = np.asarray(scores, dtype=np.float32)
    if total is None:
        return scores * scale32[:, None]
    part = np.multiply(scores, scale32[:, None], out=scratch)
    total += part
    return total


def values_at(scores: Scores, picks: np.ndarray) -> np.ndarray:
    """The raw scores at B x K item numbers (each >= 0), as float32."""
    rows = np.arange(picks.shape[0])[:, None]
    if isinstance(scores, SharedRows):
        return np.asarray(scores.rows, dtype=np.float32)[scores.which[:, None], picks]
    if sp.issparse(scores):
        csr = sp.csr_matrix(scores, dtype=np.float32)
        csr.sum_duplicates()  # canonical: sorted indices, so keys below are sorted
        n = csr.shape[1]
        keys = np.repeat(np.arange(csr.shape[0], dtype=np.int64) * n,
                         np.diff(csr.indptr)) + csr.indices
        query = (rows * n + picks).ravel()
        if keys.size == 0:
            return np.zeros(picks.shape, dtype=np.float32)
        pos = np.minimum(np.searchsorted(keys, query), keys.size - 1)
        return np.where(keys[pos] == query, csr.data[pos], 0.0).astype(
            np.float32).reshape(picks.shape)
    scores = np.asarray(scores, dtype=np.float32)
    if scores.flags.c_contiguous:  # a flat gather: a third of take_along_axis's time
        return np.take(scores.reshape(-1), rows * scores.shape[1] + picks)
    return np.take_along_axis(scores, picks, axis=1)


def accumulate(
    sources: Mapping[str, Scores],
    weights: Mapping[str, float],
    parts: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The blend before its per-row shift: (sum of scores * scale, total shift), so that
    blend = first - second[:, None]. A per-row constant changes no ranking, so callers
    that only rank may skip that pass. `parts` receives each source's (scale, shift)."""
    total: np.ndarray | None = None
    shift: np.ndarray | None = None
    scratch: np.ndarray | None = None
    # Dense sources first: the first of them becomes the total without a copy.
    order = sorted((name for name, w in weights.items() if w != 0 and name in sources),
                   key=lambda name: not isinstance(sources[name], np.ndarray))
    for name in order:
        scores = sources[name]
        scale, part_shift = standardization(scores, weights[name])
        if parts is not None:
            parts[name] = (scale, part_shift)
        if scratch is None and total is not None and isinstance(scores, np.ndarray):
            scratch = np.empty_like(total)
        total = add_scaled(total, scores, scale, scratch)
        shift = part_shift if shift is None else shift + part_shift
    if total is None or shift is None:
        if not sources:
            raise ValueError("nothing to blend: no algorithm has a weight")
        rows, n = next(iter(sources.values())).shape
        return np.zeros((rows, n), dtype=np.float32), np.zeros(rows)
    return total, shift


def blend(
    sources: Mapping[str, Scores],
    weights: Mapping[str, float],
    standardized: bool = False,
    parts: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> np.ndarray:
    """Weighted sum of standardized sources. Sources with weight 0 are skipped.
    `standardized=True` says the sources are dense and already went through
    `standardize` (the tuner does that once and then tries many weights). `parts`, when
    given, receives each source's (scale, shift), for explaining picks."""
    if standardized:
        total: np.ndarray | None = None
        for name, weight in weights.items():
            if weight == 0 or name not in sources:
                continue
            part = np.asarray(sources[name], dtype=np.float32) * np.float32(weight)
            total = part if total is None else np.add(total, part, out=total)
        if total is None:
            if not sources:
                raise ValueError("nothing to blend: no algorithm has a weight")
            return np.zeros(next(iter(sources.values())).shape, dtype=np.float32)
        return total
    total, shift = accumulate(sources, weights, parts)
    total -= shift[:, None].astype(np.float32)
    return total
