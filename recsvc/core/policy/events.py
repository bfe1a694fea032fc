"""How much one event says about a shopper's taste: the one definition the trainer uses
on its logs and the service on fresh events, saved with every model (`Manifest.events`),
so a fresh event counts exactly as it will in the next training.

weight = weights[type], except: a rating weighs `weights["rating"] * (value -
rating_neutral)` (no value: neutral, weight 0); with `quantity_scaling = "log"`, a
purchase or refund of `value` >= 1 units weighs `1 + ln(value)` times its weight. A
refund is negative: it cancels the purchase it refunds."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

DEFAULT_WEIGHTS = {"view": 1.0, "click": 2.0, "add_to_cart": 4.0, "purchase": 10.0,
                   "rating": 2.0, "review": 3.0, "refund": -10.0}
DEFAULT_ALIASES = {"cart": "add_to_cart", "addtocart": "add_to_cart",
                   "add-to-cart": "add_to_cart", "transaction": "purchase", "order": "purchase",
                   "buy": "purchase", "return": "refund", "cancellation": "refund"}
QUANTITY_TYPES = ("purchase", "refund")


class EventWeights(BaseModel):
    """Weight of one event of each type (the trainer's `[events]` section)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weights: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    aliases: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_ALIASES))
    rating_neutral: float = 2.5
    quantity_scaling: Literal["log", "none"] = "log"

    def canonical(self, event_type: str) -> str | None:
        """The event's canonical name (aliases resolved), or None for an unknown type."""
        name = event_type.strip().lower().replace(" ", "_")
        name = self.aliases.get(name, name)
        return name if name in self.weights else None

    def weight(self, event_type: str, value: float | None) -> float:
        """One canonical event's weight (before time decay)."""
        return float(self.weigh(np.array([event_type]), np.array(
            [np.nan if value is None else value], dtype=np.float64))[0])

    def weigh(self, event_types: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Weights of many canonical events at once; NaN in `values` means no value."""
        names, codes = np.unique(np.asarray(event_types, dtype=str), return_inverse=True)
        return self.weigh_coded(codes.reshape(-1), names.tolist(), values)

    def weigh_coded(self, codes: np.ndarray, names: list[str], values: np.ndarray
                    ) -> np.ndarray:
        """The same, for event types given as codes into `names` (as a log's categorical
        column holds them: a few names, millions of rows)."""
        codes = np.asarray(codes, dtype=np.int64)
        values = np.asarray(values, dtype=np.float64)
        table = np.array([self.weights.get(n, np.nan) for n in names] + [np.nan])
        base = table[np.where(codes >= 0, codes, len(names))]
        kind = np.array([n == "rating" for n in names] + [False])[codes]
        rating = np.flatnonzero(kind)
        value = values[rating]
        base[rating] *= np.where(np.isfinite(value), value, self.rating_neutral) \
            - self.rating_neutral
        if self.quantity_scaling == "log":
            counted = np.array([n in QUANTITY_TYPES for n in names] + [False])[codes]
            counted &= np.isfinite(values) & (values >= 1)
            base[counted] *= 1.0 + np.log(values[counted])
        return base
