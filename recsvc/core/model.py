"""A trained model in memory: id maps, item metadata, user histories and the fitted
algorithms, with their blend weights, and its card (how it was made). Saved and loaded
through `recsvc.core.artifacts`."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from recsvc.core.algorithms import Recommender, UserBatch, algorithm
from recsvc.core.algorithms.base import RECENT, ArraySink, expect_csr, expect_shape
from recsvc.core.artifacts import StoredVersion, open_version
from recsvc.core.errors import ModelError
from recsvc.core.manifest import AlgorithmEntry, Blend, Counts, Layout, Manifest, ModelCard
from recsvc.core.policy.privacy import IdHasher


def as_str_array(values: Any) -> np.ndarray:
    """Fixed-width unicode: saved without pickle and memory-mappable."""
    array = np.asarray(list(values), dtype=str)
    return array if array.size else np.zeros(0, dtype="<U1")


def lookup(sorted_ids: np.ndarray, ids: Any) -> np.ndarray:
    """Positions of `ids` in the sorted id array; -1 where absent."""
    query = np.asarray(ids, dtype=str).reshape(-1)
    if sorted_ids.size == 0 or query.size == 0:
        return np.full(query.shape, -1, dtype=np.int64)
    pos = np.searchsorted(sorted_ids, query)
    pos = np.minimum(pos, sorted_ids.size - 1)
    return np.where(sorted_ids[pos] == query, pos, -1).astype(np.int64)


@dataclass
class RecommenderModel:
    user_ids: np.ndarray  # sorted, so that lookups are a binary search
    item_ids: np.ndarray  # sorted
    user_items: sp.csr_matrix  # confidence, users x items
    components: dict[str, Recommender]
    weights: dict[str, float]
    exclude_seen: bool
    item_category: np.ndarray  # codes into category_names, -1 unknown
    category_names: np.ndarray
    item_price: np.ndarray  # NaN unknown
    item_in_stock: np.ndarray  # bool
    item_created_at: np.ndarray  # epoch seconds, 0 unknown
    item_tags: sp.csr_matrix = field(
        default_factory=lambda: sp.csr_matrix((0, 0), dtype=np.int8))  # items x tags
    tag_names: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype="<U1"))
    user_attributes: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    user_last_seen: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # epoch s
    # Shoppers who refused personalization: their keyed hashes under `opted_out_salt`
    # (a random key per model), so a model file names nobody; clear ids when no salt
    # (models written before, and hand-built ones).
    opted_out: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype="<U1"))
    opted_out_salt: bytes | None = None
    # users x items, > 0 where the shopper bought the item (and kept it): their purchase
    # occasions, each day they bought it counted once and decayed with age (True alone in
    # models written before occasions were kept; None before purchases were kept: then
    # nothing is claimed as bought).
    user_purchases: sp.csr_matrix | None = None
    # users x items, the strength of a shopper's standing "not interested" or dislike
    # (`policy.feedback`; None in models written before they were kept).
    user_negatives: sp.csr_matrix | None = None
    # users x items, True where the shopper's only events on the item were searches that
    # matched it: it shapes their scores, but no reason may name it (None: no searches).
    user_search_only: sp.csr_matrix | None = None
    # users x RECENT: each user's last distinct items, newest first, -1 padded (None in
    # models written before they were kept).
    user_recent: np.ndarray | None = None
    # Items created after training (`added_items`) follow the trained ones in `item_ids`;
    # the trained ids (sorted) are the first `trained_items` (None: all of them).
    trained_items: int | None = None
    card: ModelCard | None = None  # how it was made; None only for hand-built models
    manifest: Manifest | None = None  # once written (or when loaded)

    @property
    def n_users(self) -> int:
        return int(self.user_ids.size)

    @property
    def n_items(self) -> int:
        return int(self.item_ids.size)

    @property
    def version(self) -> str:
        return self.manifest.version if self.manifest is not None else "unsaved"

    @property
    def reference_time(self) -> int:
        """The end of its training data (epoch seconds)."""
        return self.card.training.reference_time if self.card is not None else 0

    def user_index(self, ids: Any) -> np.ndarray:
        return lookup(self.user_ids, ids)

    def item_index(self, ids: Any) -> np.ndarray:
        if self.trained_items is None:
            return lookup(self.item_ids, ids)
        query = np.asarray(ids, dtype=str).reshape(-1)
        found = lookup(self.item_ids[:self.trained_items], query)
        added = self._added_index
        for j in np.flatnonzero(found < 0).tolist():
            found[j] = added.get(str(query[j]), -1)
        return found

    @functools.cached_property
    def _added_index(self) -> dict[str, int]:
        start = self.trained_items or self.n_items
        return {str(i): start + j for j, i in enumerate(self.item_ids[start:].tolist())}

    @property
    def added_ids(self) -> list[str]:
        """Items created after training (`added_items.with_items`), in the order they
        were added."""
        return [] if self.trained_items is None else list(self._added_index)

    def is_opted_out(self, user_id: str) -> bool:
        """Asked on every request: a set lookup of one keyed hash (~2 µs)."""
        if self.opted_out.size == 0:
            return False
        members, hasher = self._opted_out_lookup
        return (hasher.digest(user_id) if hasher else user_id) in members

    @functools.cached_property
    def _opted_out_lookup(self) -> tuple[frozenset[str], IdHasher | None]:
        salt = self.opted_out_salt
        return frozenset(self.opted_out.tolist()), IdHasher(salt) if salt else None

    def opted_out_mask(self, user_ids: Any) -> np.ndarray:
        """For each id, whether that shopper refused personalization."""
        if self.opted_out.size == 0:
            return np.zeros(len(user_ids), dtype=bool)
        if self.opted_out_salt is not None:
            user_ids = IdHasher(self.opted_out_salt).digests(user_ids)
        return lookup(self.opted_out, user_ids) >= 0

    def bought_rows(self, users: np.ndarray) -> sp.csr_matrix:
        """What each of `users` bought (-1: nobody, nothing), rows of `user_purchases`."""
        if self.user_purchases is None:
            return sp.csr_matrix((np.size(users), self.n_items), dtype=bool)
        return sp.csr_matrix(self._purchase_rows(users), dtype=bool)

    def occasion_rows(self, users: np.ndarray) -> sp.csr_matrix | None:
        """Each of `users`' purchase occasions per item (-1: nobody, nothing), rows of
        `user_purchases`; None where the model keeps no occasions."""
        if self.user_purchases is None or self.user_purchases.dtype == bool:
            return None
        return self._purchase_rows(users)

    def _purchase_rows(self, users: np.ndarray) -> sp.csr_matrix:
        assert self.user_purchases is not None
        users = np.asarray(users, dtype=np.int64)
        if users.size == 1 and users[0] >= 0:  # a request's shopper: no fancy indexing
            m = self.user_purchases
            start, end = m.indptr[users[0]], m.indptr[users[0] + 1]
            return sp.csr_matrix((m.data[start:end].astype(np.float32), m.indices[start:end],
                                  np.array([0, end - start])), shape=(1, m.shape[1]))
        rows = sp.csr_matrix(self.user_purchases[np.maximum(users, 0)], dtype=np.float32)
        if (users < 0).any():
            rows = sp.csr_matrix(sp.diags((users >= 0).astype(np.float32), format="csr")
                                 @ rows, dtype=np.float32)
            rows.eliminate_zeros()
        return rows

    def search_only(self, user: int) -> list[int]:
        """Items only searched for by this shopper (model number; -1: none)."""
        if user < 0 or self.user_search_only is None:
            return []
        return self.user_search_only[user].indices.tolist()

    def anchorable_rows(self, users: np.ndarray) -> sp.csr_matrix:
        """The users' stored histories without the items they only searched for: what
        a reason may name."""
        history = self.user_items[np.asarray(users, dtype=np.int64)]
        if self.user_search_only is None:
            return history
        searched = self.user_search_only[np.asarray(users, dtype=np.int64)]
        out = sp.csr_matrix(history - history.multiply(searched), dtype=np.float32)
        out.eliminate_zeros()
        return out

    def batch(self, users: np.ndarray) -> UserBatch:
        """A batch of trained users, scored from their stored histories and vectors."""
        users = np.asarray(users, dtype=np.int64)
        return UserBatch(
            users=users,
            history=self.user_items[users],
            attributes={name: codes[users] for name, (codes, _) in self.user_attributes.items()},
            recent=self.recent_rows(users),
            bought=self.occasion_rows(users),
        )

    def recent_rows(self, users: np.ndarray) -> np.ndarray:
        """users x RECENT: their last items, newest first (-1: none, or an unknown user)."""
        users = np.asarray(users, dtype=np.int64)
        if self.user_recent is None:
            return np.full((users.size, RECENT), -1, dtype=np.int32)
        return np.where((users >= 0)[:, None], self.user_recent[np.maximum(users, 0)], -1)

    # -- consistency ---------------------------------------------------------------------

    def check(self) -> None:
        """Raise ValueError naming the first array that cannot serve: id maps not sorted
        and unique, an array whose length is not the catalog's or the users', a code or
        index out of range, a value that is not finite, a blend weight for no algorithm.
        Checked before a version is written and when it loads, so that no request ever
        meets it."""
        users, items = self.n_users, self.n_items
        for name, ids in (("user_ids", self.user_ids), ("item_ids", self.item_ids),
                          ("opted_out", self.opted_out)):
            if ids.size > 1 and not (ids[1:] > ids[:-1]).all():
                raise ValueError(f"{name}: not sorted and unique")
        if self.manifest is not None:
            counts = self.manifest.counts
            if (counts.users, counts.items) != (users, items):
                raise ValueError(f"user_ids / item_ids: {users:,} users and {items:,} items, "
                                 f"the manifest counts {counts.users:,} and {counts.items:,}")
        expect_csr("user_items", self.user_items, (users, items))
        if self.user_items.nnz and self.user_items.data.min() < 0:
            raise ValueError("user_items: negative confidences")
        for name, array in (("item_category", self.item_category),
                            ("item_price", self.item_price),
                            ("item_in_stock", self.item_in_stock),
                            ("item_created_at", self.item_created_at)):
            expect_shape(name, array, (items,))
        _codes_in("item_category", self.item_category, self.category_names.size)
        if np.isinf(np.asarray(self.item_price, dtype=np.float64)).any():
            raise ValueError("item_price: infinite prices (unknown ones are NaN)")
        if self.item_tags.shape != (0, 0):
            expect_csr("item_tags", self.item_tags, (items, self.tag_names.size))
        if self.user_last_seen.size:
            expect_shape("user_last_seen", self.user_last_seen, (users,))
        if self.user_purchases is not None:
            expect_csr("user_purchases", self.user_purchases, (users, items))
        if self.user_negatives is not None:
            expect_csr("user_negatives", self.user_negatives, (users, items))
        if self.user_search_only is not None:
            expect_csr("user_search_only", self.user_search_only, (users, items))
        if self.user_recent is not None:
            expect_shape("user_recent", self.user_recent, (users, RECENT))
            _codes_in("user_recent", self.user_recent, items)
        for name, (codes, values) in self.user_attributes.items():
            expect_shape(f"user_attr.{name}.codes", codes, (users,))
            _codes_in(f"user_attr.{name}.codes", codes, len(values))
        for name, weight in self.weights.items():
            if name not in self.components:
                raise ValueError(f"blend.weights: {name} is not one of the model's "
                                 f"algorithms ({', '.join(self.components)})")
            if not np.isfinite(weight):
                raise ValueError(f"blend.weights: {name} is not finite")
        for component in self.components.values():
            component.check(users, items)

    # -- persistence -------------------------------------------------------------------

    def save(self, out: ArraySink) -> Layout:
        """Write every array; return the manifest entries that describe them."""
        out.save_array("user_ids", self.user_ids)
        out.save_array("item_ids", self.item_ids)
        out.save_csr("user_items", self.user_items)
        out.save_array("item_category", self.item_category)
        out.save_array("category_names", self.category_names)
        out.save_array("item_price", self.item_price)
        out.save_array("item_in_stock", self.item_in_stock)
        out.save_array("item_created_at", self.item_created_at)
        if self.opted_out_salt is None:
            out.save_array("opted_out", self.opted_out)
        else:
            out.save_array("opted_out_hashed", self.opted_out)
            out.save_array("opted_out_salt", np.frombuffer(self.opted_out_salt, np.uint8))
        out.save_csr("item_tags", self.item_tags)
        out.save_array("user_last_seen", self.user_last_seen)
        out.save_array("tag_names", self.tag_names)
        if self.user_purchases is not None:
            out.save_csr("user_purchases", self.user_purchases)
        if self.user_negatives is not None:
            out.save_csr("user_negatives", self.user_negatives)
        if self.user_search_only is not None:
            out.save_csr("user_search_only", self.user_search_only)
        if self.user_recent is not None:
            out.save_array("user_recent", self.user_recent)
        for name, (codes, values) in self.user_attributes.items():
            out.save_array(f"user_attr.{name}.codes", codes)
            out.save_array(f"user_attr.{name}.values", values)
        for name, component in self.components.items():
            component.save(out, f"model.{name}")
        return Layout(
            counts=Counts(users=self.n_users, items=self.n_items,
                          interactions=int(self.user_items.nnz)),
            algorithms={name: AlgorithmEntry(params=component.params.model_dump())
                        for name, component in self.components.items()},
            blend=Blend(weights=self.weights, exclude_seen=self.exclude_seen),
            user_attributes=sorted(self.user_attributes),
        )

    @staticmethod
    def _optional(stored: StoredVersion) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if stored.has_array("tag_names"):  # absent in models written before they were kept
            out["item_tags"] = stored.csr("item_tags")
            out["tag_names"] = stored.array("tag_names")
        if stored.has_array("user_last_seen"):
            out["user_last_seen"] = stored.array("user_last_seen")
        if stored.has_array("user_purchases.data"):
            out["user_purchases"] = stored.csr("user_purchases")
        if stored.has_array("user_negatives.data"):
            out["user_negatives"] = stored.csr("user_negatives")
        if stored.has_array("user_search_only.data"):
            out["user_search_only"] = stored.csr("user_search_only")
        if stored.has_array("user_recent"):
            out["user_recent"] = stored.array("user_recent")
        if stored.has_array("opted_out_salt"):
            out["opted_out"] = stored.array("opted_out_hashed")
            out["opted_out_salt"] = stored.array("opted_out_salt").tobytes()
        else:  # written before opt-outs were hashed
            out["opted_out"] = stored.array("opted_out")
        return out

    @classmethod
    def from_stored(cls, stored: StoredVersion) -> RecommenderModel:
        m = stored.manifest
        components: dict[str, Recommender] = {}
        for name, entry in m.algorithms.items():
            try:
                kind = algorithm(name)
                kind.parse_params(entry.params, f"algorithms.{name}.params")
                components[name] = kind.load(stored, f"model.{name}", entry.params)
            except ValueError as exc:
                raise ModelError(f"model {stored.version}: {exc}") from None
        attributes = {
            name: (stored.array(f"user_attr.{name}.codes"),
                   stored.array(f"user_attr.{name}.values"))
            for name in m.user_attributes
        }
        return cls(
            user_ids=stored.array("user_ids"),
            item_ids=stored.array("item_ids"),
            user_items=stored.csr("user_items"),
            components=components,
            weights=dict(m.blend.weights),
            exclude_seen=m.blend.exclude_seen,
            item_category=stored.array("item_category"),
            category_names=stored.array("category_names"),
            item_price=stored.array("item_price"),
            item_in_stock=stored.array("item_in_stock"),
            item_created_at=stored.array("item_created_at"),
            user_attributes=attributes,
            **cls._optional(stored),
            card=m,
            manifest=m,
        )


def _codes_in(name: str, codes: np.ndarray, count: int) -> None:
    """Codes into a table of `count` values, -1 meaning none."""
    if codes.size and (codes.min() < -1 or codes.max() >= count):
        raise ValueError(f"{name}: codes out of range -1..{count - 1}")


def load_model(
    model_root: str | Path, version: str | None = None, verify: bool = True
) -> RecommenderModel:
    """Load `version` (default: current) after checking its schema and checksums, then
    that its arrays are consistent (`RecommenderModel.check`)."""
    stored = open_version(model_root, version, verify=verify)
    model = RecommenderModel.from_stored(stored)
    try:
        model.check()
    except ValueError as exc:
        raise ModelError(f"model {stored.version}: inconsistent: {exc}") from None
    return model


__all__ = ["RecommenderModel", "as_str_array", "load_model", "lookup"]
