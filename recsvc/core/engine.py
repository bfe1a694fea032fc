"""A loaded model with what serving needs beside it: rules resolved against its catalog,
the event weighting it was trained with, the list renderer, and helpers to build a
shopper's history.

An Engine is immutable once built; a new model means a new Engine, swapped in whole, so
a request that started on one model finishes on it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from recsvc.core.model import RecommenderModel, load_model
from recsvc.core.policy.events import EventWeights
from recsvc.core.policy.rules import ResolvedRules, RulesFile, resolve
from recsvc.core.ranking.packed import ListRenderer
from recsvc.core.ranking.warmup import warm_up


@dataclass
class Engine:
    model: RecommenderModel
    rules: ResolvedRules
    events: EventWeights
    attribute_values: dict[str, dict[str, int]] = field(default_factory=dict)
    renderer: ListRenderer = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Built here, not by the first shopper after each model load (~0.3 s at 100,000
        # items).
        self.renderer = ListRenderer(self.model)

    @property
    def version(self) -> str:
        return self.model.version

    @property
    def reference_time(self) -> int:
        return self.model.reference_time

    @classmethod
    def build(cls, model: RecommenderModel, rules: RulesFile) -> Engine:
        if model.card is None:
            raise ValueError("a model without its card cannot be served")
        return cls(
            model=model,
            rules=resolve(rules, model),
            events=model.card.events,
            attribute_values={name: {str(v).lower(): i for i, v in enumerate(values)}
                              for name, (_, values) in model.user_attributes.items()},
        )

    def attribute_codes(self, user: int, given: dict[str, str]) -> dict[str, np.ndarray]:
        """The model's attribute codes for one shopper: stored for a known user, else
        from the request (`segment=...`), -1 when unknown."""
        out = {}
        for name, (codes, _) in self.model.user_attributes.items():
            code = int(codes[user]) if user >= 0 else -1
            value = given.get(name)
            if code < 0 and value:
                code = self.attribute_values[name].get(value.strip().lower(), -1)
            out[name] = np.array([code], dtype=np.int32)
        return out

    def history_row(self, user: int, extra: list[tuple[int, float]]) -> sp.csr_matrix:
        """The stored confidences of a known user plus fresh (item, weight) pairs, clipped
        at zero as in training (a refund cancels its purchase)."""
        n = self.model.n_items
        row = (self.model.user_items[user] if user >= 0
               else sp.csr_matrix((1, n), dtype=np.float32))
        if not extra:
            return sp.csr_matrix(row, dtype=np.float32)
        items = np.array([i for i, _ in extra], dtype=np.int64)
        weights = np.array([w for _, w in extra], dtype=np.float32)
        fresh = sp.csr_matrix((weights, (np.zeros(items.size, dtype=np.int64), items)),
                              shape=(1, n))
        total = sp.csr_matrix(row + fresh, dtype=np.float32)
        total.data = np.maximum(total.data, 0.0)
        total.eliminate_zeros()
        return total


def load_engine(model_root: Path, version: str | None, rules: RulesFile) -> Engine:
    """Load a version (default: current) for serving: the engine, with the compiled
    kernels and the look-up tables its explanations need ready before the first list."""
    engine = Engine.build(load_model(model_root, version), rules)
    warm_up(engine.model)
    return engine
