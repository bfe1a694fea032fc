"""Mixing the scores of several algorithms into one ranking.

Each source's scores are standardized per user (zero mean, unit variance over the
catalog) so that weights compare like with like, whatever each algorithm's scale."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def standardize(scores: np.ndarray) -> np.ndarray:
    """Row-wise z-scores; a row with no spread (no signal for that user) becomes zeros."""
    scores = np.asarray(scores, dtype=np.float32)
    mean = scores.mean(axis=1, keepdims=True)
    std = scores.std(axis=1, keepdims=True)
    out = scores - mean
    np.divide(out, std, out=out, where=std > 1e-12)
    out[np.broadcast_to(std <= 1e-12, out.shape)] = 0.0
    return out


def blend(
    sources: Mapping[str, np.ndarray], weights: Mapping[str, float], standardized: bool = False
) -> np.ndarray:
    """Weighted sum of standardized sources. Sources with weight 0 are skipped.
    `standardized=True` says the sources already went through `standardize` (the tuner
    does that once and then tries many weights)."""
    total: np.ndarray | None = None
    for name, weight in weights.items():
        if weight == 0 or name not in sources:
            continue
        part = sources[name] * np.float32(weight) if standardized else standardize(sources[name])
        if not standardized:
            part *= np.float32(weight)
        if total is None:
            total = part
        else:
            total += part
    if total is None:
        if not sources:
            raise ValueError("nothing to blend: no algorithm has a weight")
        return np.zeros_like(next(iter(sources.values())), dtype=np.float32)
    return total
