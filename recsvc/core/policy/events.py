"""What an event is worth, and whether it is acceptable at all: the one definition the
trainer uses on its logs and the service on fresh events, saved with every model
(`Manifest.events`), so a fresh event counts exactly as it will in the next training,
and an event the API would refuse is dropped by the trainer for the same reason.

weight = weights[type], except: a rating weighs `weights["rating"] * (value -
rating_neutral)` (no value: neutral, weight 0); with `quantity_scaling = "log"`, a
purchase or refund of `value` >= 1 units weighs `1 + ln(value)` times its weight; a
search's match weighs `value` (how well the item matched the query, 0..1) times its
weight. A refund is negative: it cancels the purchase it refunds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from recsvc.core.clock import SECONDS_PER_DAY

DEFAULT_WEIGHTS = {"view": 1.0, "click": 2.0, "add_to_cart": 4.0, "purchase": 10.0,
                   "rating": 2.0, "review": 3.0, "refund": -10.0, "search": 0.5,
                   "not_interested": -2.0, "dislike": -4.0}
DEFAULT_ALIASES = {"cart": "add_to_cart", "addtocart": "add_to_cart",
                   "add-to-cart": "add_to_cart", "transaction": "purchase", "order": "purchase",
                   "buy": "purchase", "return": "refund", "cancellation": "refund",
                   "not-interested": "not_interested", "notinterested": "not_interested",
                   "hide": "not_interested", "thumbs_down": "dislike", "query": "search"}
# Negative feedback: besides its (negative) weight, the shopper said no to the item.
# It is hidden from them, and its close neighbours and category lowered
# (`policy.feedback`), by this strength; until they engage with it again.
NEGATIVE = {"not_interested": 1.0, "dislike": 1.5}
SEARCH = "search"  # names a query, not an item: matched to items by the content model
SEARCH_MATCHES = 5  # items a search's query feeds, the best first
PURCHASE, REFUND = "purchase", "refund"
QUANTITY_TYPES = (PURCHASE, REFUND)
RATING = "rating"
# Epoch numbers below this are seconds (until the year 5138); from it up to
# EPOCH_MS_END, milliseconds (JavaScript's Date.now()); above, neither: refused.
EPOCH_MS_START = 1e11
EPOCH_MS_END = 1e14


@dataclass(frozen=True)
class Refusal:
    """Why an event is refused: `reason` as the trainer's report counts rows, `field` as
    the API names it, `message` for people (formatted with the checks' settings)."""

    reason: str
    field: str
    message: str


OK = 0
REFUSALS = {
    1: Refusal("bad_timestamps", "timestamp",
               "not an ISO-8601 date, epoch seconds or epoch milliseconds"),
    2: Refusal("timestamps_in_future", "timestamp",
               "more than {max_future_s:g} s ahead of the clock"),
    3: Refusal("timestamps_before_retention", "timestamp",
               "older than the retention of {retention_days:g} days"),
    4: Refusal("values_not_finite", "value", "not a finite number"),
    5: Refusal("ratings_without_value", "value", "a rating needs a value"),
    6: Refusal("ratings_out_of_scale", "value",
               "outside the rating scale {rating_min:g}..{rating_max:g}"),
    7: Refusal("quantities_out_of_range", "value",
               "a quantity must be from 0 to {max_quantity:g}"),
}
BAD_TIMESTAMP, FUTURE, TOO_OLD, NOT_FINITE, NO_RATING, RATING_SCALE, QUANTITY = range(1, 8)


def epoch_seconds(numbers: np.ndarray) -> np.ndarray:
    """Epoch numbers as seconds: seconds as they are, milliseconds divided (by the
    EPOCH_MS_* rule), NaN for what is neither (negative, too large, not finite)."""
    numbers = np.asarray(numbers, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        ms = (numbers >= EPOCH_MS_START) & (numbers < EPOCH_MS_END)
        ok = np.isfinite(numbers) & (numbers >= 0) & (numbers < EPOCH_MS_END)
    return np.where(ok, np.where(ms, numbers / 1000.0, numbers), np.nan)


class EventChecks(BaseModel):
    """What makes an event acceptable (the `[events.checks]` section): the API answers
    422 to an event that fails, naming the field; the trainer drops the row and counts
    it by reason and file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_future_s: float = Field(600.0, ge=0, description="how far ahead of the clock")
    retention_days: float | None = Field(None, gt=0, description="older: refused; unset: any")
    rating_min: float = 0.0
    rating_max: float = 5.0
    max_quantity: float = Field(1_000_000.0, gt=0, description="purchases and refunds")

    @model_validator(mode="after")
    def _scale(self) -> EventChecks:
        if not self.rating_min < self.rating_max:
            raise ValueError("rating_min must be below rating_max")
        return self

    def check(self, codes: np.ndarray, names: list[str], seconds: np.ndarray,
              values: np.ndarray, given: np.ndarray, now: float) -> np.ndarray:
        """A refusal code per event (OK = 0): its canonical type as a code into `names`,
        `seconds` epoch seconds (NaN: unreadable), `values` with `given` saying which
        events carry one."""
        codes = np.asarray(codes, dtype=np.int64)
        seconds = np.asarray(seconds, dtype=np.float64)
        values = np.asarray(values, dtype=np.float64)
        given = np.asarray(given, dtype=bool)
        code = np.zeros(seconds.size, dtype=np.int8)

        def refuse(mask: np.ndarray, why: int) -> None:
            code[(code == OK) & mask] = why

        with np.errstate(invalid="ignore"):
            refuse(~np.isfinite(seconds), BAD_TIMESTAMP)
            refuse(seconds > now + self.max_future_s, FUTURE)
            if self.retention_days is not None:
                refuse(seconds < now - self.retention_days * SECONDS_PER_DAY, TOO_OLD)
            refuse(given & ~np.isfinite(values), NOT_FINITE)
            rating = np.array([n == RATING for n in names] + [False])[codes]
            refuse(rating & ~given, NO_RATING)
            refuse(rating & given & ((values < self.rating_min) | (values > self.rating_max)),
                   RATING_SCALE)
            counted = np.array([n in QUANTITY_TYPES for n in names] + [False])[codes] & given
            refuse(counted & ((values < 0) | (values > self.max_quantity)), QUANTITY)
        return code

    def describe(self, code: int) -> Refusal:
        """The refusal with its message filled in."""
        refusal = REFUSALS[code]
        return Refusal(refusal.reason, refusal.field,
                       refusal.message.format(**self.model_dump()))


def net_purchases(types: np.ndarray) -> np.ndarray:
    """+1 for a purchase, -1 for a refund, 0 for anything else: summed per shopper and
    item, above 0 means they bought it (and kept it)."""
    types = np.asarray(types)
    return (types == PURCHASE).astype(np.int32) - (types == REFUND).astype(np.int32)


class EventWeights(BaseModel):
    """Weight of one event of each type (the trainer's `[events]` section), and what
    makes an event acceptable (`checks`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weights: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    aliases: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_ALIASES))
    rating_neutral: float = 2.5
    quantity_scaling: Literal["log", "none"] = "log"
    checks: EventChecks = Field(default_factory=EventChecks)

    def canonical(self, event_type: str) -> str | None:
        """The event's canonical name (aliases resolved), or None for an unknown type."""
        name = event_type.strip().lower().replace(" ", "_")
        name = self.aliases.get(name, name)
        return name if name in self.weights else None

    def weigh(self, codes: np.ndarray, names: list[str], values: np.ndarray) -> np.ndarray:
        """Weights of events (before time decay), their canonical types given as codes
        into `names` (as a log's categorical column holds them: a few names, millions of
        rows); NaN in `values` means no value."""
        codes = np.asarray(codes, dtype=np.int64)
        values = np.asarray(values, dtype=np.float64)
        table = np.array([self.weights.get(n, np.nan) for n in names] + [np.nan])
        base = table[np.where(codes >= 0, codes, len(names))]
        kind = np.array([n == "rating" for n in names] + [False])[codes]
        rating = np.flatnonzero(kind)
        value = values[rating]
        base[rating] *= np.where(np.isfinite(value), value, self.rating_neutral) \
            - self.rating_neutral
        search = np.flatnonzero(np.array([n == SEARCH for n in names] + [False])[codes])
        share = values[search]
        base[search] *= np.where(np.isfinite(share), np.clip(share, 0.0, 1.0), 1.0)
        if self.quantity_scaling == "log":
            counted = np.array([n in QUANTITY_TYPES for n in names] + [False])[codes]
            counted &= np.isfinite(values) & (values >= 1)
            base[counted] *= 1.0 + np.log(values[counted])
        return base
