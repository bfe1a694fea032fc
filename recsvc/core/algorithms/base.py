"""The contract every algorithm follows (after implicit's `RecommenderBase`).

One algorithm is one class in one module, and everything the rest of the project needs
to know about it is declared there:

- `name` — its key in blend weights, in the manifest and in the trainer's config
  (`[model.<name>]`);
- `Params` — its settings, with defaults and bounds (a pydantic model);
- `usable(params, data)` — whether it can be fitted on this data, and why not;
- `fit` (trainer only: it may import training libraries inside), `score` /
  `score_compact` (its scores in one of the `forms`), `score_at` (at a few items, where
  the compact form is dense) and `best_items` (its candidates, without scoring every
  item), `similar`, `save` / `load`;
- how its part of a pick is explained: `reason`, and for item-to-item algorithms the
  `relation` they show ("bought together", "similar to") with `relation_priority`
  (which relation names the anchor item when several algorithms have one) and
  `item_relation()` (how strongly one item speaks for another);
- what it learns from: `learns_from_events` (the events themselves, or only the
  per-pair matrices the model keeps);
- its role in blends: `start_weight` (the untuned blend), `cold_start_weight` (a shopper
  with no past), `similar_weight` (related items);
- its tuning: `follows_weighting` (refitted for each event weighting the tuner tries),
  `draw(rng)` (random search) or `walk` (a positive parameter searched by steps of 4x
  and 2x, judged by the algorithm alone; `prepare` / `fit_prepared` share the work
  that does not depend on it).

Scoring runs in the service too, so it uses numpy/scipy only.
"""

from __future__ import annotations

import copy
import functools
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self

import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, ValidationError

from recsvc.core.algorithms.forms import Form, Scores
from recsvc.core.errors import first_problem

if TYPE_CHECKING:
    import pandas as pd

    from recsvc.core.artifacts import StoredVersion

RECENT = 5  # a shopper's last items a batch carries (newest first), for sequence models


class ArraySink(Protocol):
    def save_array(self, name: str, array: np.ndarray) -> None: ...

    def save_csr(self, name: str, matrix: sp.spmatrix) -> None: ...


@dataclass
class TrainingData:
    """Everything a model may learn from, indexed by dense user and item numbers."""

    user_items: sp.csr_matrix  # users x items, decayed confidence (>= 0)
    event_users: np.ndarray  # one entry per kept event
    event_items: np.ndarray
    event_weights: np.ndarray  # event weight before time decay
    event_times: np.ndarray  # epoch seconds
    reference_time: int  # the end of the training period
    items: pd.DataFrame | None = None  # catalog rows aligned with item numbers
    user_attributes: dict[str, tuple[np.ndarray, list[str]]] = field(default_factory=dict)
    # users x items, > 0 where the shopper bought the item (and did not refund it): what
    # a reason may call "bought"; the confidences mix every kind of event. The values
    # are purchase occasions: each day the item was bought counts once, decayed by age.
    user_purchases: sp.csr_matrix | None = None
    user_negatives: sp.csr_matrix | None = None  # standing "no"s (`policy.feedback`)
    user_search_only: sp.csr_matrix | None = None  # pairs only a search's match touched
    # users x RECENT: each shopper's last distinct items, newest first, -1 padded.
    user_recent: np.ndarray | None = None
    # Per event: +1 a purchase, -1 a refund, 0 anything else (None: not known).
    event_bought: np.ndarray | None = None
    # Each shopper's last event time, where the events are not all here (Spark engine).
    user_last_seen: np.ndarray | None = None

    @property
    def n_users(self) -> int:
        return int(self.user_items.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.user_items.shape[1])

    def batch(self, users: np.ndarray) -> UserBatch:
        """These users (numbers >= 0) to score from everything kept about them."""
        return UserBatch(
            users=users,
            history=self.user_items[users],
            attributes={n: codes[users] for n, (codes, _) in self.user_attributes.items()},
            recent=None if self.user_recent is None else self.user_recent[users],
            bought=(None if self.user_purchases is None
                    else sp.csr_matrix(self.user_purchases[users], dtype=np.float32)),
        )


@dataclass(frozen=True)
class ShopFacts:
    """What the trainer measured about the shop before fitting anything."""

    repeat_buying: bool  # do shoppers buy the same items again (>= 10% of purchases)?


@dataclass
class UserBatch:
    """Users to score. `users[j] >= 0` names a trained user whose stored state may be used;
    -1 means score from `history` alone (an anonymous session, or a user with new events)."""

    users: np.ndarray
    history: sp.csr_matrix  # len(users) x items confidence, as in TrainingData.user_items
    attributes: dict[str, np.ndarray] = field(default_factory=dict)  # attribute -> codes, -1
    recent: np.ndarray | None = None  # len(users) x RECENT last items, newest first, -1
    # len(users) x items purchase occasions (TrainingData.user_purchases); None: unknown.
    bought: sp.csr_matrix | None = None

    def __len__(self) -> int:
        return len(self.users)


class Reason(StrEnum):
    """What a pick an algorithm carried is shown as (`recsvc.core.ranking.explain`)."""

    OWN_PAST = "own_past"  # bought_before: the shopper's own history
    ANCHORED = "anchored"  # because_you_bought X / similar_to X: an item of the shopper's
    SEQUENCE = "sequence"  # next_after X: what often came next after a recent item
    POPULAR = "popular"  # popular_in <category>
    TRENDING = "trending"
    NONE = "none"


class Relation(StrEnum):
    """How an item-to-item algorithm relates two items, as related items show it."""

    BOUGHT_TOGETHER = "bought_together"
    SIMILAR_TO = "similar_to"


@dataclass(frozen=True)
class ItemRelation:
    """How strongly an anchor item speaks for a pick, in one of three forms: a dense
    items x items matrix (`dense[anchor, pick]`), sorted `anchor * n_items + pick` keys
    with their values (a sparse relation), or item vectors whose dot product it is."""

    dense: np.ndarray | None = None
    keys: np.ndarray | None = None
    values: np.ndarray | None = None
    vectors: sp.csr_matrix | None = None

    @classmethod
    def sparse(cls, matrix: sp.spmatrix) -> ItemRelation:
        """The sparse form of an items x items matrix: a batch of look-ups is then one
        searchsorted over its sorted keys."""
        m = sp.csr_matrix(matrix)
        m.sort_indices()
        rows = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))
        return cls(keys=rows * m.shape[1] + m.indices, values=m.data)


class AlgorithmParams(BaseModel):
    """Base of every algorithm's `Params`: unknown settings are refused by name."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def expect_shape(name: str, array: np.ndarray | sp.spmatrix, shape: tuple[int, ...]) -> None:
    if tuple(array.shape) != tuple(shape):
        raise ValueError(f"{name}: shape {tuple(array.shape)}, expected {tuple(shape)}")


def expect_finite(name: str, array: np.ndarray) -> None:
    values = np.asarray(array)
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        raise ValueError(f"{name}: {int((~np.isfinite(values)).sum()):,} values are not "
                         "finite")


def expect_csr(name: str, matrix: sp.spmatrix, shape: tuple[int, int]) -> None:
    """A CSR matrix of this shape whose structure is sound and values finite."""
    expect_shape(name, matrix, shape)
    m = sp.csr_matrix(matrix)
    indptr = np.asarray(m.indptr)
    if (indptr.size != shape[0] + 1 or indptr[0] != 0 or indptr[-1] != m.indices.size
            or (np.diff(indptr) < 0).any()):
        raise ValueError(f"{name}: its row pointers are inconsistent")
    if m.indices.size and (m.indices.min() < 0 or m.indices.max() >= shape[1]):
        raise ValueError(f"{name}: column index out of range 0..{shape[1] - 1}")
    expect_finite(name, m.data)


def padded(array: Any, count: int, axes: tuple[int, ...] = (0,)) -> Any:  # noqa: ANN401
    """`array` (dense or sparse) with `count` zero rows (axis 0) and/or columns (axis 1)
    appended: what an algorithm knows of items nobody has touched yet."""
    if sp.issparse(array):
        shape = list(array.shape)
        for axis in axes:
            shape[axis] += count
        out = sp.csr_matrix(array)
        return sp.csr_matrix((out.data, out.indices, np.concatenate(
            [out.indptr, np.full(shape[0] - out.shape[0], out.indptr[-1])])), shape=shape)
    widths = [(0, count if axis in axes else 0) for axis in range(np.ndim(array))]
    return np.pad(np.asarray(array), widths)


def confidence(user_items: sp.csr_matrix) -> sp.csr_matrix:
    """Compress raw confidences so that a wholesaler's 500 units do not drown all else."""
    out = sp.csr_matrix(user_items, dtype=np.float32, copy=True)
    np.log1p(out.data, out=out.data)
    return out


def logged(owner: object, name: str) -> np.ndarray:
    """log1p of the array `owner.<name>`, float32, computed once per array (not per
    request: at 100,000 items that is a millisecond each time)."""
    source = getattr(owner, name)
    cached = owner.__dict__.get(f"_log_{name}")
    if cached is None or cached[0] is not source:
        cached = (source, np.log1p(np.asarray(source)).astype(np.float32))
        owner.__dict__[f"_log_{name}"] = cached
    return cached[1]


class Recommender(ABC):
    """One algorithm. Scores are per item; higher is better. Scales differ between
    algorithms: blending standardizes them before mixing."""

    name: ClassVar[str]
    Params: ClassVar[type[AlgorithmParams]]
    form: ClassVar[Form] = Form.DENSE  # what `score_compact` gives
    reason: ClassVar[Reason] = Reason.NONE
    relation: ClassVar[Relation | None] = None
    relation_priority: ClassVar[int] = 99  # lower: its relation names anchors first
    start_weight: ClassVar[float] = 0.0
    cold_start_weight: ClassVar[float] = 0.0
    similar_weight: ClassVar[float] = 0.0
    follows_weighting: ClassVar[bool] = True
    walk: ClassVar[str | None] = None
    # Whether `fit` reads the events themselves (`TrainingData.event_*`) rather than the
    # per-pair matrices alone: an engine that keeps events distributed (Spark) fits such
    # an algorithm by its own code for it (`training.spark.fits`) or leaves it out.
    learns_from_events: ClassVar[bool] = False

    def __init__(self, **params: Any) -> None:
        self.params = self.Params(**params)

    @classmethod
    def parse_params(cls, params: dict[str, Any], where: str) -> AlgorithmParams:
        """Validated settings; a bad one raises ValueError naming `where.<field>`."""
        try:
            return cls.Params.model_validate(params)
        except ValidationError as exc:
            raise ValueError(f"{where}.{first_problem(exc)}") from None

    @classmethod
    def usable(cls, params: AlgorithmParams, data: TrainingData) -> str | None:
        """Why it cannot be fitted on `data` (it is then left out), or None."""
        return None

    @classmethod
    def starting_weight(cls, facts: ShopFacts) -> float:
        """Its weight in the untuned blend, given what is known of the shop."""
        return cls.start_weight

    @classmethod
    def draw(cls, rng: np.random.Generator, params: AlgorithmParams) -> dict[str, Any] | None:
        """Settings drawn at random for a tuning trial, over `params` (None: it has
        nothing to draw; an algorithm that draws overrides this)."""
        return None

    @classmethod
    def draws(cls) -> bool:
        """Does it draw settings for tuning trials (does it override `draw`)?"""
        return getattr(cls.draw, "__func__", None) is not getattr(Recommender.draw, "__func__",
                                                                  None)

    def user_attributes(self) -> list[str]:
        """User attribute columns it learns from (loaded from the users table)."""
        return []

    @abstractmethod
    def fit(self, data: TrainingData) -> Self: ...

    def prepare(self, data: TrainingData) -> Any:
        """What `fit` computes from the data alone, whatever the walked setting: the
        tuner's walk prepares once and fits each candidate with `fit_prepared`."""
        return data

    def fit_prepared(self, prepared: Any) -> Self:
        return self.fit(prepared)

    @abstractmethod
    def score(self, batch: UserBatch) -> np.ndarray:
        """Dense float32 scores, len(batch) x n_items."""

    def score_compact(self, batch: UserBatch) -> Scores:
        """The same scores as `score`, in the most compact form the algorithm has them
        (`forms.Scores`), so that blending passes over the whole catalog only where it
        must."""
        return self.score(batch)

    def score_at(self, batch: UserBatch, items: np.ndarray) -> np.ndarray | None:
        """Dense scores at `items` (sorted item numbers) alone, len(batch) x len(items),
        for an algorithm whose compact scores are dense over the whole catalog: a
        million-item catalog's candidate path (`ranking.candidates`) scores only its
        candidates. None: the compact scores are cheap (shared, sparse or few rows)."""
        return None

    def best_items(self, batch: UserBatch, k: int) -> np.ndarray | None:
        """Item numbers among this algorithm's k best for the batch's shoppers, found
        without scoring the catalog: its candidates on a million-item catalog's path.
        None: it has no such shortcut (its compact scores give them)."""
        return None

    def similar(self, items: np.ndarray) -> np.ndarray | None:
        """Dense float32 item-to-item scores, len(items) x n_items; None if the algorithm
        has no notion of item similarity."""
        return None

    def item_relation(self) -> ItemRelation | None:
        """How strongly one item speaks for another, for naming anchors (relational
        algorithms only). Built once per loaded model."""
        return None

    def _copy(self) -> Self:
        """A shallow copy without its cached properties (derived from arrays that
        `add_items` replaces; other caches are each algorithm's to drop)."""
        out = copy.copy(self)
        for name in [k for k in out.__dict__
                     if isinstance(getattr(type(out), k, None), functools.cached_property)]:
            del out.__dict__[name]
        return out

    @abstractmethod
    def add_items(self, rows: list[dict[str, Any]]) -> Self:
        """A copy that also knows `len(rows)` items appended to the catalog after the
        trained ones (numbered from the model's n_items on): items created since the
        training (`PUT /items/{id}`), described by their catalog rows, that nobody has
        touched yet. One that learns from interactions scores them as any item without
        events; one that reads attributes places them by their rows. Leaves `self` as it
        is (it may be serving)."""

    @abstractmethod
    def save(self, out: ArraySink, prefix: str) -> None: ...

    def check(self, n_users: int, n_items: int) -> None:
        """Raise ValueError naming the array (`<name>.<array>`) if what it holds cannot
        serve a model of this size: a shape that disagrees, an index out of range, a
        value that is not finite. Called before a version is written and when it loads."""
        return None

    @classmethod
    def load(cls, stored: StoredVersion, prefix: str, params: dict[str, Any]) -> Self:
        """The fitted algorithm from a stored version (its arrays under `prefix`)."""
        model = cls(**params)
        model.restore(stored, prefix)
        return model

    @abstractmethod
    def restore(self, stored: StoredVersion, prefix: str) -> None:
        """Read back what `save` wrote."""
