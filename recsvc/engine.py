"""A loaded model with what serving needs beside it: rules resolved against its catalog,
the event weighting it was trained with, and helpers to build a shopper's history.

An Engine is immutable once built; a new model means a new Engine, swapped in whole, so
a request that started on one model finishes on it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from recsvc.lists import ListRenderer
from recsvc.model import RecommenderModel, load_model
from recsvc.rules import ResolvedRules, RulesFile, resolve

# Used when the model's manifest predates the event weights being saved.
DEFAULT_EVENT_WEIGHTS = {"view": 1.0, "click": 2.0, "add_to_cart": 4.0, "purchase": 10.0,
                         "rating": 2.0, "review": 3.0, "refund": -10.0}
DEFAULT_ALIASES = {"cart": "add_to_cart", "addtocart": "add_to_cart",
                   "add-to-cart": "add_to_cart", "transaction": "purchase", "order": "purchase",
                   "buy": "purchase", "return": "refund", "cancellation": "refund"}


@dataclass(frozen=True)
class EventWeights:
    """The trainer's weighting of one event, so a fresh event counts as it will in the
    next training."""

    weights: dict[str, float]
    aliases: dict[str, str]
    rating_neutral: float = 2.5
    quantity_scaling: str = "log"

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> EventWeights:
        training = manifest.get("training", {})
        events = training.get("config", {}).get("events", {})
        return cls(
            weights=dict(events.get("weights", DEFAULT_EVENT_WEIGHTS)),
            aliases=dict(events.get("aliases", DEFAULT_ALIASES)),
            rating_neutral=float(events.get("rating_neutral", 2.5)),
            quantity_scaling=str(training.get("quantity_scaling",
                                              events.get("quantity_scaling", "log"))),
        )

    def canonical(self, event_type: str) -> str | None:
        name = event_type.strip().lower().replace(" ", "_")
        name = self.aliases.get(name, name)
        return name if name in self.weights else None

    def weight(self, event_type: str, value: float | None) -> float:
        base = self.weights[event_type]
        if event_type == "rating":
            return base * ((value if value is not None else self.rating_neutral)
                           - self.rating_neutral)
        if (event_type in ("purchase", "refund") and self.quantity_scaling == "log"
                and value is not None and value >= 1):
            return base * (1.0 + math.log(value))
        return base


@dataclass
class Engine:
    model: RecommenderModel
    rules: ResolvedRules
    events: EventWeights
    reference_time: int
    attribute_values: dict[str, dict[str, int]] = field(default_factory=dict)
    _similarity: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    _renderer: ListRenderer | None = field(default=None, repr=False)

    @property
    def version(self) -> str:
        return self.model.version

    @classmethod
    def build(cls, model: RecommenderModel, rules: RulesFile) -> Engine:
        return cls(
            model=model,
            rules=resolve(rules, model),
            events=EventWeights.from_manifest(model.manifest),
            reference_time=int(model.manifest.get("training", {}).get("reference_time", 0)),
            attribute_values={name: {str(v).lower(): i for i, v in enumerate(values)}
                              for name, (_, values) in model.user_attributes.items()},
        )

    def attribute_codes(self, user: int, given: dict[str, str | None]) -> dict[str, np.ndarray]:
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

    def similarity_lookup(self) -> tuple[np.ndarray, np.ndarray]:
        """Item-kNN similarities as sorted (anchor x n_items + pick) keys and values:
        a batch of lookups is one searchsorted. Built on first use."""
        if self._similarity is None:
            sim = sp.csr_matrix(self.model.components["item_knn"].similarity)  # type: ignore[attr-defined]
            sim.sort_indices()
            rows = np.repeat(np.arange(sim.shape[0], dtype=np.int64), np.diff(sim.indptr))
            self._similarity = (rows * self.model.n_items + sim.indices, sim.data)
        return self._similarity

    @property
    def renderer(self) -> ListRenderer:
        if self._renderer is None:
            self._renderer = ListRenderer(self.model)
        return self._renderer


def load_engine(model_root: Path, version: str | None, rules: RulesFile) -> Engine:
    from recsvc.jit import warm_up  # its kernels import this module

    engine = Engine.build(load_model(model_root, version), rules)
    # Built here, off the request path: the compiled kernels and their look-up tables,
    # and the renderer's per-item strings (~0.3 s at 100,000 items), which the first
    # shopper after each model load used to wait for.
    warm_up(engine)
    _ = engine.renderer
    return engine
