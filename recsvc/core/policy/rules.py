"""Business rules and A/B variants, from one TOML file (`RECSVC_RULES_FILE`).

```toml
[[boost]]                    # add `amount` to the blended score (z-score units)
category = "Home > Kitchen"  # or tag = "sale", or item = "sku-1"
amount = 1.0
[[bury]]                     # the same, subtracted
tag = "clearance"
amount = 2.0
[pin]
items = ["sku-9"]            # first in every list they are allowed in, in this order
[exclude]
items = ["sku-3"]            # never recommended
categories = ["Adult"]
tags = ["hidden"]
[diversity]
max_per_category = 3         # at most K items of one category per list
[new_arrivals]               # items created within RECSVC_NEW_ARRIVAL_DAYS
boost = 0.5                  # added to their score, falling to 0 as they age
explore = 0.05               # share of lists whose last place shows the best new arrival

[variants.control]           # A/B strategies; users are assigned by a stable hash
share = 50
[variants.popular_heavy]
share = 50
weights = { popularity = 2.0 }   # blend weights over the trained ones
```

A category rule matches the category and everything under it (`Home` matches
`Home > Kitchen`). Rules are resolved against a model's catalog once per model and
again whenever the file changes (`docs/rules.md`).

Two kinds of rule, by where they act:
- ranking rules (boosts, burials, a variant's weights and `exclude_seen`) shape which
  candidates a list holds: a cached list carries the tag of those it was made under
  (`Variant.tag`), and one made under others is made again;
- read-time rules (pins, exclusions, the category cap) act on every list as it is read
  (`policy.filters`), cached lists included, so they take effect on the next request."""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from recsvc.core.errors import InputError, first_problem
from recsvc.core.model import RecommenderModel


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Target(_Strict):
    category: str | None = None
    tag: str | None = None
    item: str | None = None
    amount: float = Field(1.0, gt=0)

    @model_validator(mode="after")
    def _one_target(self) -> Target:
        given = [x for x in (self.category, self.tag, self.item) if x is not None]
        if len(given) != 1:
            raise ValueError("a boost or bury names exactly one of category, tag or item")
        return self


class Pin(_Strict):
    items: list[str] = Field(default_factory=list)


class Exclude(_Strict):
    items: list[str] = Field(default_factory=list)
    categories: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)


class Diversity(_Strict):
    max_per_category: int | None = Field(None, ge=1)


class NewArrivals(_Strict):
    boost: float = Field(0.5, ge=0, description="z-score units, falling to 0 with age")
    explore: float = Field(0.05, ge=0, le=1, description="share of lists exploring")


class VariantSpec(_Strict):
    share: float = Field(gt=0)
    weights: dict[str, float] = Field(default_factory=dict)
    exclude_seen: bool | None = None


class RulesFile(_Strict):
    boost: list[Target] = Field(default_factory=list)
    bury: list[Target] = Field(default_factory=list)
    pin: Pin = Field(default_factory=Pin)
    exclude: Exclude = Field(default_factory=Exclude)
    diversity: Diversity = Field(default_factory=Diversity)
    new_arrivals: NewArrivals = Field(default_factory=NewArrivals)
    variants: dict[str, VariantSpec] = Field(default_factory=dict)


def load_rules(path: Path | None) -> RulesFile:
    if path is None:
        return RulesFile()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"rules file {path}: not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"rules file {path}: unreadable ({exc})") from None
    return parse_rules(text, f"rules file {path}")


def parse_rules(text: str, source: str = "rules") -> RulesFile:
    """Rules from TOML text; InputError naming `source` and the first problem."""
    try:
        return RulesFile.model_validate(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{source}: unreadable ({exc})") from None
    except ValidationError as exc:
        raise InputError(f"{source}: {first_problem(exc)}") from None


def category_mask(model: RecommenderModel, category: str) -> np.ndarray:
    """Items in `category` or below it (case-insensitive)."""
    wanted = category.strip().lower()
    names = np.char.lower(np.asarray(model.category_names, dtype=str))
    matching = np.flatnonzero((names == wanted) | np.char.startswith(names, wanted + " > "))
    return np.isin(model.item_category, matching)


def tag_mask(model: RecommenderModel, tag: str) -> np.ndarray:
    names = np.asarray(model.tag_names, dtype=str)
    hits = np.flatnonzero(names == tag.strip().lower())
    if hits.size == 0 or model.item_tags.shape[0] != model.n_items:
        return np.zeros(model.n_items, dtype=bool)
    return np.asarray(model.item_tags[:, hits].sum(axis=1)).ravel() > 0


@dataclass(frozen=True)
class Variant:
    name: str
    weights: dict[str, float] | None  # None: the model's own
    exclude_seen: bool | None = None
    tag: int = 0  # of the ranking rules its lists are made under (`ranking_tag`)


def ranking_tag(rules: RulesFile, variant: VariantSpec | None,
                catalog: tuple[str, ...] = ()) -> int:
    """32 bits naming what shapes a list's candidates: boosts, burials, the new-arrival
    boost, the variant's weights and `exclude_seen`, and the items added to the
    catalog since training (`catalog`). Equal rules give equal tags in every process."""
    parts = [[t.model_dump() for t in rules.boost], [t.model_dump() for t in rules.bury],
             rules.new_arrivals.boost, list(catalog),
             None if variant is None else [sorted(variant.weights.items()),
                                           variant.exclude_seen]]
    digest = hashlib.blake2b(repr(parts).encode("utf-8"), digest_size=4).digest()
    return int.from_bytes(digest, "little")


@dataclass
class ResolvedRules:
    """Rules against one model's item numbers: what scoring and listing need."""

    bias: np.ndarray | None  # per item, added to blended scores
    allowed: np.ndarray  # False for excluded items
    pins: np.ndarray  # item numbers, in order
    max_per_category: int | None
    variants: list[tuple[float, Variant]] = field(default_factory=list)  # cumulative share
    default: Variant | None = None  # without variants: the model's own weights
    new_arrival_boost: float = 0.0  # `[new_arrivals]`
    explore: float = 0.0

    @property
    def variant_names(self) -> list[str]:
        return [v.name for _, v in self.variants] or [DEFAULT_VARIANT.name]

    def variant_for(self, user_id: str) -> Variant:
        """A stable assignment: the same user always lands in the same variant."""
        if not self.variants:
            return self.default or DEFAULT_VARIANT
        digest = hashlib.blake2b(user_id.encode("utf-8"), digest_size=8).digest()
        point = int.from_bytes(digest, "big") / 2**64 * self.variants[-1][0]
        for upper, variant in self.variants:
            if point < upper:
                return variant
        return self.variants[-1][1]


DEFAULT_VARIANT = Variant("default", None, None, ranking_tag(RulesFile(), None))


def _target_mask(model: RecommenderModel, target: Target) -> np.ndarray:
    if target.category is not None:
        return category_mask(model, target.category)
    if target.tag is not None:
        return tag_mask(model, target.tag)
    return np.isin(np.arange(model.n_items), model.item_index([target.item]))


def resolve(rules: RulesFile, model: RecommenderModel) -> ResolvedRules:
    n = model.n_items
    bias = np.zeros(n, dtype=np.float32)
    for target in rules.boost:
        bias[_target_mask(model, target)] += target.amount
    for target in rules.bury:
        bias[_target_mask(model, target)] -= target.amount
    allowed = np.ones(n, dtype=bool)
    excluded = model.item_index(rules.exclude.items)
    allowed[excluded[excluded >= 0]] = False
    for category in rules.exclude.categories:
        allowed &= ~category_mask(model, category)
    for tag in rules.exclude.tags:
        allowed &= ~tag_mask(model, tag)
    pins = model.item_index(rules.pin.items)
    unknown = [(name, k) for name, spec in rules.variants.items()
               for k in spec.weights if k not in model.components]
    if unknown:
        raise InputError(f"rules: variant {unknown[0][0]} weighs {unknown[0][1]!r}, an "
                         f"algorithm the model does not have "
                         f"({', '.join(sorted(model.components))} exist)")
    variants, total = [], 0.0
    catalog = tuple(model.added_ids)
    for name, spec in sorted(rules.variants.items()):
        total += spec.share
        weights = {**model.weights, **spec.weights} if spec.weights else None
        variants.append((total, Variant(name, weights, spec.exclude_seen,
                                        ranking_tag(rules, spec, catalog))))
    return ResolvedRules(
        bias=bias if bias.any() else None,
        allowed=allowed,
        pins=pins[pins >= 0],
        max_per_category=rules.diversity.max_per_category,
        variants=variants,
        default=Variant(DEFAULT_VARIANT.name, None, None, ranking_tag(rules, None, catalog)),
        new_arrival_boost=rules.new_arrivals.boost,
        explore=rules.new_arrivals.explore,
    )
