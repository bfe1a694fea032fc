"""The filter stage: what one request may show, applied when a list is read.

A ranked list (fresh or from the cache) is cut to the request's n items here and only
here, so everything that may change between two requests — stock and delistings, the
rules' exclusions, the request's own filters (category, price range, excluded items),
the per-category cap, the pins — holds on cached lists too, and a rule changed a moment
ago acts on the next request. A new read-time rule is one more step in `FilterStage`."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from recsvc.core.model import RecommenderModel
from recsvc.core.policy.rules import ResolvedRules, category_mask
from recsvc.core.ranking.packed import PackedList, with_pins


class QueryError(ValueError):
    """A query for what the catalog does not hold (an unknown category): a 404 naming
    it, and the query parameter `field`."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class ItemFilters:
    """A request's own filters over the catalog."""

    category: str | None = None
    exclude: tuple[str, ...] = ()
    min_price: float | None = None
    max_price: float | None = None

    def __bool__(self) -> bool:
        return bool(self.category or self.exclude or self.min_price is not None
                    or self.max_price is not None)


def query_mask(model: RecommenderModel, price: np.ndarray,
               filters: ItemFilters) -> np.ndarray | None:
    """The request's own filters over the catalog, or None without any."""
    mask = None
    if filters.category:
        mask = category_mask(model, filters.category)
        if not mask.any():
            raise QueryError(f"unknown category {filters.category!r}", "category")
    if filters.min_price is not None or filters.max_price is not None:
        price = price.astype(np.float64)  # a bound like 1e308 must not overflow float32
        with np.errstate(invalid="ignore"):
            in_range = np.ones(price.size, dtype=bool)
            if filters.min_price is not None:
                in_range &= price >= filters.min_price
            if filters.max_price is not None:
                in_range &= price <= filters.max_price
        mask = in_range if mask is None else mask & in_range
    if filters.exclude:
        excluded = model.item_index(list(filters.exclude))
        keep = np.ones(model.n_items, dtype=bool)
        keep[excluded[excluded >= 0]] = False
        mask = keep if mask is None else mask & keep
    return mask


@dataclass(frozen=True)
class FilterStage:
    """What one request may list: `allowed` per item (live catalog, rules, the
    request's filters), the rules' `pins` first, and at most `max_per_category` items
    of one category while others are left to fill the list."""

    allowed: np.ndarray
    item_category: np.ndarray
    max_per_category: int | None = None
    pins: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    # What a list may be ranked from and cached with: the request's own filters only,
    # not stock nor the rules' exclusions, so that an item back in stock or an
    # exclusion lifted shows on cached lists too (None: `allowed`).
    rankable: np.ndarray | None = None

    @property
    def shown_pins(self) -> np.ndarray:
        """The rules' pins this request may show, in order."""
        return self.pins[self.allowed[self.pins]] if self.pins.size else self.pins

    def show(self, packed: PackedList, n: int, skip: int = 0
             ) -> tuple[PackedList, list[int]]:
        """The list as this request shows it (pinned items first) and the positions in
        it of the n items to show after the first `skip` (earlier pages)."""
        pins = self.shown_pins
        if pins.size:
            packed = with_pins(packed, pins)
        return packed, self.select(packed.items, n + skip, fixed=int(pins.size))[skip:]

    def explore(self, packed: PackedList, positions: list[int], candidates: np.ndarray
                ) -> tuple[list[int], int]:
        """`positions` with the last place given to the best-ranked of `candidates` (per
        item: new arrivals) that the list holds but does not show, if any; and the
        position given (-1: none). One place at most: exploring stays bounded."""
        if not positions:
            return positions, -1
        shown = set(positions)
        items = packed.items
        ok = (items >= 0) & (items < candidates.size)
        ok[ok] = candidates[items[ok]] & self.allowed[items[ok]]
        if any(ok[j] for j in positions):
            return positions, -1  # one is shown already
        for j in np.flatnonzero(ok).tolist():
            if j not in shown:
                return [*positions[:-1], j], j
        return positions, -1

    def without(self, items: np.ndarray) -> FilterStage:
        """This stage with `items` (item numbers) hidden as well: a shopper's capped
        items, what earlier pages showed."""
        items = items[items >= 0]
        if items.size == 0:
            return self
        allowed = self.allowed.copy()
        allowed[items] = False
        return FilterStage(allowed, self.item_category, self.max_per_category, self.pins,
                           self.rankable)

    def select(self, items: np.ndarray, n: int, fixed: int = 0) -> list[int]:
        """Positions in a ranked list of `items` of the first n it may show; the first
        `fixed` (pins) are always shown, and count towards the category cap."""
        allowed = self.allowed
        try:
            positions = np.flatnonzero(allowed[items])
        except IndexError:  # written for another catalog: keep only what indexes this one
            ok = (items >= 0) & (items < allowed.size)
            ok[ok] = allowed[items[ok]]
            positions = np.flatnonzero(ok)
        cap = self.max_per_category
        if cap is None:
            return positions[:n].tolist()
        # Each item's rank among the listed items of its category (a stable sort by
        # category): it may show while that rank is below the cap (pins always).
        categories = self.item_category[items[positions]]
        order = np.argsort(categories, kind="stable")
        grouped = categories[order]
        index = np.arange(order.size)
        first = np.zeros(order.size, dtype=np.int64)  # where each one's group starts
        first[1:] = np.where(grouped[1:] != grouped[:-1], index[1:], 0)
        rank = np.empty(order.size, dtype=np.int64)
        rank[order] = index - np.maximum.accumulate(first)
        ok = (rank < cap) | (categories < 0)
        ok[:fixed] = True
        out = positions[ok][:n]
        if out.size == n:
            return out.tolist()
        # Too few categories for the cap (a one-category request, a small catalog):
        # n items still, the best of those held back, in rank order.
        return np.sort(np.concatenate([out, positions[~ok][:n - out.size]])).tolist()


def filter_stage(model: RecommenderModel, rules: ResolvedRules, live: np.ndarray,
                 price: np.ndarray, filters: ItemFilters = ItemFilters()) -> FilterStage:
    """The stage for one request: the live catalog (in stock, not delisted), minus the
    rules' exclusions, within the request's own filters."""
    mask = query_mask(model, price, filters) if filters else None
    if mask is None:  # the usual request: no array made for it
        return FilterStage(live & rules.allowed, model.item_category,
                           rules.max_per_category, rules.pins, _everything(model.n_items))
    return FilterStage(live & mask & rules.allowed, model.item_category,
                       rules.max_per_category, rules.pins, mask)


@functools.lru_cache(maxsize=4)
def _everything(n: int) -> np.ndarray:
    out = np.ones(n, dtype=bool)
    out.flags.writeable = False
    return out
