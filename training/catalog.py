"""Align the optional item catalog and user table with the model's id arrays."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsvc.core.algorithms.content import TAG_SEPARATORS
from recsvc.core.model import as_str_array, lookup
from training.clean import CleanData, parse_flag, parse_timestamps


def id_universe(clean: CleanData) -> tuple[np.ndarray, np.ndarray]:
    """Sorted user and item ids. Items: the catalog when given (so items without events
    can still be recommended by content), else the items seen in events. Users: those with
    events, plus consenting users of the user table (cold users with known attributes)."""
    return universe(_observed(clean.events["user_id"]), _observed(clean.events["item_id"]),
                    clean.users, clean.items)


def universe(event_users: np.ndarray, event_items: np.ndarray, users: pd.DataFrame | None,
             items: pd.DataFrame | None) -> tuple[np.ndarray, np.ndarray]:
    """`id_universe` from the distinct ids the events name and the two tables."""
    every_user = [event_users]
    if users is not None:
        every_user.append(users["user_id"].to_numpy(dtype=str))
    known = items["item_id"].to_numpy(dtype=str) if items is not None else event_items
    return _sorted_unique(np.concatenate(every_user)), _sorted_unique(as_str_array(known))


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """np.unique for strings, but hashing first: sorting only the distinct values is
    several times faster on a million ids."""
    distinct = pd.unique(pd.Series(values, dtype=object))
    return np.sort(as_str_array(distinct)) if len(distinct) else as_str_array([])


def _observed(values: pd.Series) -> np.ndarray:
    """Distinct values that occur (a Categorical may carry unused categories)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return np.asarray(uniques, dtype=str)


def aligned_items(clean: CleanData, item_ids: np.ndarray) -> pd.DataFrame:
    """Catalog rows in item-number order (empty rows for items not in the catalog)."""
    if clean.items is None:
        return pd.DataFrame({"item_id": item_ids})
    catalog = clean.items.reset_index(drop=True)
    position = lookup(item_ids, catalog["item_id"].to_numpy(dtype=str))
    rows = np.full(len(item_ids), -1, dtype=np.int64)
    rows[position[position >= 0]] = np.flatnonzero(position >= 0)
    if (rows >= 0).all():  # the usual case: every model item is a catalog row
        aligned = catalog.take(rows).reset_index(drop=True)
    else:
        aligned = catalog.reindex(rows).reset_index(drop=True)  # -1: an empty row
    aligned["item_id"] = item_ids
    return aligned


def item_metadata(items: pd.DataFrame) -> dict[str, np.ndarray]:
    """Arrays the service filters and explains with: category, price, stock, arrival."""
    n = len(items)
    if "category" in items.columns:
        codes, names = pd.factorize(items["category"].astype("string").str.strip(), sort=True)
        category, category_names = codes.astype(np.int32), as_str_array(names)
    else:
        category, category_names = np.full(n, -1, np.int32), as_str_array([])
    price = (pd.to_numeric(items["price"], errors="coerce").to_numpy(dtype=np.float32)
             if "price" in items.columns else np.full(n, np.nan, np.float32))
    in_stock = (parse_flag(items["in_stock"]) if "in_stock" in items.columns
                else np.ones(n, dtype=bool))
    created = (parse_timestamps(items["created_at"]).fillna(0).to_numpy().astype(np.int64)
               if "created_at" in items.columns else np.zeros(n, np.int64))
    tags, tag_names = item_tags(items)
    return {
        "item_tags": tags,
        "tag_names": tag_names,
        "item_category": category,
        "category_names": category_names,
        "item_price": price,
        "item_in_stock": in_stock,
        "item_created_at": created,
    }


def item_tags(items: pd.DataFrame) -> tuple[sp.csr_matrix, np.ndarray]:
    """Items x tags indicator (tags lower-cased, split on , ; |), for the service's
    rules ("boost tag sale")."""
    n = len(items)
    if "tags" not in items.columns:
        return sp.csr_matrix((n, 0), dtype=np.int8), as_str_array([])
    text = items["tags"].astype("string").fillna("").str.lower()
    exploded = text.str.split(TAG_SEPARATORS, regex=True).explode().str.strip()
    exploded = exploded[exploded.notna() & (exploded != "")]
    codes, names = pd.factorize(exploded, sort=True)
    rows = exploded.index.to_numpy()
    matrix = sp.csr_matrix((np.ones(codes.size, dtype=np.int8), (rows, codes)),
                           shape=(n, len(names)))
    matrix.sum_duplicates()
    matrix.data[:] = 1
    return matrix, as_str_array(names)


def user_attributes(
    clean: CleanData, user_ids: np.ndarray, names: list[str]
) -> dict[str, tuple[np.ndarray, list[str]]]:
    """For each attribute column present: a code per user (-1 unknown) and the values."""
    if clean.users is None:
        return {}
    table = clean.users
    position = lookup(user_ids, table["user_id"].to_numpy(dtype=str))
    known = position >= 0
    out: dict[str, tuple[np.ndarray, list[str]]] = {}
    for name in names:
        if name not in table.columns:
            continue
        raw_codes, raw_values = pd.factorize(table[name], use_na_sentinel=True)
        # Tidy the few distinct values, not the many rows.
        tidy = pd.Series(np.asarray(raw_values, dtype=object), dtype="string").str.strip()
        value_codes, uniques = pd.factorize(tidy.mask(tidy == ""), sort=True)
        codes = np.where(raw_codes >= 0, value_codes[np.maximum(raw_codes, 0)], -1)
        per_user = np.full(len(user_ids), -1, dtype=np.int32)
        per_user[position[known]] = codes[known]
        out[name] = (per_user, [str(v) for v in uniques])
    return out
