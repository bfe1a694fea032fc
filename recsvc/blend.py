"""Mixing the scores of several algorithms into one ranking.

Each source's scores are standardized per user (zero mean, unit variance over the
catalog) so that weights compare like with like, whatever each algorithm's scale."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def standardization(scores: np.ndarray, weight: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Per-row (scale, shift) with weight * z-score = scores * scale - shift; a row with
    no spread (no signal for that user) gets scale 0 and shift 0. Two passes over the
    scores (sum, sum of squares), accumulated in float64."""
    n = scores.shape[1]
    if n == 0:
        zeros = np.zeros(scores.shape[0], dtype=np.float64)
        return zeros, zeros
    mean = scores.sum(axis=1, dtype=np.float64) / n
    squares = np.einsum("ij,ij->i", scores, scores, dtype=np.float64) / n
    std = np.sqrt(np.maximum(squares - mean * mean, 0.0))
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
    parts: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> np.ndarray:
    """Weighted sum of standardized sources. Sources with weight 0 are skipped.
    `standardized=True` says the sources already went through `standardize` (the tuner
    does that once and then tries many weights). Otherwise each source is scaled in
    place of a standardized copy: one pass to add it, and one shift at the end. `parts`,
    when given, receives each source's (scale, shift), for explaining picks."""
    total: np.ndarray | None = None
    shift: np.ndarray | None = None
    for name, weight in weights.items():
        if weight == 0 or name not in sources:
            continue
        scores = np.asarray(sources[name], dtype=np.float32)
        if standardized:
            scale, part_shift = np.full(scores.shape[0], weight), None
        else:
            scale, part_shift = standardization(scores, weight)
            if parts is not None:
                parts[name] = (scale, part_shift)
        part = scores * scale[:, None].astype(np.float32)
        if total is None:
            total = part
        else:
            total += part
        if part_shift is not None:
            shift = part_shift if shift is None else shift + part_shift
    if total is None:
        if not sources:
            raise ValueError("nothing to blend: no algorithm has a weight")
        return np.zeros_like(next(iter(sources.values())), dtype=np.float32)
    if shift is not None:
        total -= shift[:, None].astype(np.float32)
    return total
