"""Clean and weigh stages on Spark, shoppers group by group.

Every rule of the clean stage looks at one row or at one shopper's rows (duplicates are
a shopper's, robots are shoppers, consent is a shopper's), and every matrix the weigh
stage builds is a sum over shoppers. So the events are grouped by a hash of the shopper
and each group goes through the local engine's own `clean` and `build_training_data`
on an executor: both engines drop the same rows for the same reasons and build the
same matrices (tests/test_spark_engine.py holds them equal). The driver merges the
groups' reports and stacks the groups' rows of each matrix.

One difference, documented: an `event_id` repeated by two different shoppers is two
events here (a client's retry carries its shopper's id)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pandas as pd
import scipy.sparse as sp

from recsvc.core.algorithms import TrainingData
from recsvc.core.algorithms.base import RECENT
from recsvc.core.model import lookup
from recsvc.core.policy.events import EventWeights, net_purchases
from training.clean import SOURCE, CleanData, check_invalid_shares, clean, event_weights
from training.config import CleaningConfig
from training.signals import build_training_data
from training.spark.read import ROW

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

BUCKET = "_bucket"
REPORT = "_report"
CLEAN_SCHEMA = ("user_id string, item_id string, event_type string, timestamp long, "
                f"value double, weight double, {ROW} long, {BUCKET} int, {REPORT} string")
# What a group's weigh step gives back: one row per stored entry of one matrix.
CONFIDENCE, BOUGHT, NEGATIVE, SEARCH_ONLY, RECENT_ITEM, LAST_SEEN = range(6)
PART_SCHEMA = "kind int, row long, col long, value double"
EVENT_SCHEMA = f"u int, i int, w double, t long, bought int, {ROW} long"


@dataclass
class Cleaned:
    """The kept events in Spark (cached), and what the driver holds of them."""

    events: DataFrame
    data: CleanData  # the tables, the opted-out, the report; `events` is empty
    event_users: np.ndarray  # distinct shoppers and items the kept events name
    event_items: np.ndarray
    reference_time: int
    rows: int


def buckets_of(frame: DataFrame, buckets: int) -> DataFrame:
    from pyspark.sql import functions as F

    return frame.withColumn(BUCKET, F.pmod(F.hash("user_id"), F.lit(buckets)).cast("int"))


def clean_events(raw: DataFrame, sources: list[str], items: pd.DataFrame | None,
                 users: pd.DataFrame | None, opted_out: np.ndarray, events: EventWeights,
                 cleaning: CleaningConfig, buckets: int, forgotten: np.ndarray | None,
                 shown_id: Any = str) -> Cleaned:
    """The clean stage over every group of shoppers; stops like the local one when a
    file's invalid rows pass the threshold (counted over all groups)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    now = time.time()
    catalog = items[["item_id"]] if items is not None else None
    gone = None if forgotten is None else np.sort(np.asarray(forgotten, dtype=str))
    context = raw.sparkSession.sparkContext
    shared = context.broadcast((catalog, opted_out, gone))

    def one_group(frame: pd.DataFrame) -> pd.DataFrame:
        catalog, refused, gone = shared.value
        frame = frame.sort_values(ROW, kind="stable").reset_index(drop=True)
        mask = None if gone is None else (lambda ids: np.isin(ids, gone))
        data = clean(frame.drop(columns=[ROW, BUCKET]), catalog, None, events, cleaning,
                     sources, now, forgotten=mask, shown_id=shown_id, opted_out=refused,
                     check_shares=False)
        report = dict(data.report, rows_read_by_file=np.bincount(
            frame[SOURCE].to_numpy(np.int64), minlength=len(sources)).tolist())
        kept = data.events  # and the report in one more row, with no event in it
        return pd.DataFrame({
            "user_id": _text(kept["user_id"].astype(str)),
            "item_id": _text(kept["item_id"].astype(str)),
            "event_type": _text(kept["event_type"].astype(str)),
            "timestamp": _number(kept["timestamp"], np.int64),
            "value": _number(kept["value"], np.float64),
            "weight": _number(kept["weight"], np.float64),
            ROW: _number(frame[ROW].to_numpy(np.int64)[data.kept], np.int64),
            BUCKET: _number(frame[BUCKET].to_numpy(np.int32)[data.kept], np.int32),
            REPORT: _text([None] * len(kept), orjson.dumps(report).decode()),
        })

    grouped = buckets_of(raw, buckets).groupBy(BUCKET).applyInPandas(one_group, CLEAN_SCHEMA)
    grouped = grouped.persist(StorageLevel.MEMORY_AND_DISK)
    reports = [orjson.loads(r[0]) for r in
               grouped.where(F.col(REPORT).isNotNull()).select(REPORT).collect()]
    kept = grouped.where(F.col(REPORT).isNull()).drop(REPORT)
    report = merge_reports(reports, sources)
    check_invalid_shares(dict(zip(sources, report.pop("rows_read_by_file"), strict=True)),
                         report["rows_dropped_by_file"], cleaning)
    facts = kept.agg(F.max("timestamp").alias("t"), F.count(F.lit(1)).alias("n")).first()
    event_users = np.asarray([r[0] for r in kept.select("user_id").distinct().collect()],
                             dtype=str)
    event_items = np.asarray([r[0] for r in kept.select("item_id").distinct().collect()],
                             dtype=str)
    report["items_with_events"] = int(event_items.size)
    report["catalog_items"] = int(len(items)) if items is not None else None
    report["consent_withdrawn_users"] = int(len(opted_out))
    data = CleanData(events=pd.DataFrame(), items=items, users=users, opted_out=opted_out,
                     report=report)
    return Cleaned(kept, data, event_users, event_items, int(facts["t"] or 0),
                   int(facts["n"]))


def _text(values: Any, last: str | None = None) -> pd.Series:
    """Text with one more value; an object column, as PySpark's Arrow conversion does
    not take pandas 3's Arrow-backed strings."""
    return pd.Series([*np.asarray(values, dtype=object).tolist(), last], dtype=object)


def _number(values: Any, dtype: Any) -> np.ndarray:
    """Numbers with one more (zero)."""
    return np.append(np.asarray(values, dtype=dtype), np.zeros(1, dtype))


def merge_reports(parts: list[dict[str, Any]], sources: list[str]) -> dict[str, Any]:
    """One data-quality report from the groups' (counts add up; shoppers are in one
    group each, so do the shoppers counted)."""
    out: dict[str, Any] = {"rows_read": 0, "unknown_event_types": {}, "bots": {},
                           "bot_users": 0, "rows_kept": 0, "rows_dropped": {},
                           "rows_dropped_by_file": {}, "event_counts": {}, "users": 0,
                           "rows_read_by_file": [0] * len(sources)}
    ranges = []
    for part in parts:
        for key in ("rows_read", "bot_users", "rows_kept", "users"):
            out[key] += part[key]
        for key in ("unknown_event_types", "rows_dropped", "event_counts"):
            _add(out[key], part[key])
        for name, counts in part["rows_dropped_by_file"].items():
            _add(out["rows_dropped_by_file"].setdefault(name, {}), counts)
        out["rows_read_by_file"] = [a + b for a, b in zip(out["rows_read_by_file"],
                                                          part["rows_read_by_file"],
                                                          strict=True)]
        for rule, found in part["bots"].items():
            into = out["bots"].setdefault(rule, {"users": 0, "events": 0, "examples": []})
            into["users"] += found["users"]
            into["events"] += found["events"]
            into["examples"] = sorted(into["examples"] + found["examples"])[:20]
        if "time_range" in part:
            ranges.append(part["time_range"])
    out["event_counts"] = dict(sorted(out["event_counts"].items(), key=lambda kv: -kv[1]))
    if ranges:
        out["time_range"] = [min(r[0] for r in ranges), max(r[1] for r in ranges)]
    return out


def _add(into: dict[str, int], counts: dict[str, int]) -> None:
    for key, value in counts.items():
        into[key] = into.get(key, 0) + value


def weigh(cleaned: Cleaned, user_ids: np.ndarray, item_ids: np.ndarray,
          half_life_days: float, weights: EventWeights, reweigh: bool
          ) -> tuple[TrainingData, DataFrame]:
    """The weigh stage: the per-pair matrices the model keeps (on the driver, in
    `TrainingData` without events), and the entries of the confidence matrix as a Spark
    DataFrame (for ALS)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    reference = cleaned.reference_time
    context = cleaned.events.sparkSession.sparkContext
    shared = context.broadcast((user_ids, item_ids))

    def one_group(frame: pd.DataFrame) -> pd.DataFrame:
        every_user, every_item = shared.value
        frame = frame.sort_values(ROW, kind="stable").reset_index(drop=True)
        if reweigh:
            frame["weight"] = event_weights(frame, weights)
        own = np.unique(frame["user_id"].to_numpy(str))
        data = build_training_data(frame, own, every_item, half_life_days,
                                   reference_time=reference)
        rows = lookup(every_user, own)  # the group's shoppers' numbers in the model
        parts = [_entries(CONFIDENCE, data.user_items, rows),
                 _entries(BOUGHT, data.user_purchases, rows),
                 _entries(NEGATIVE, data.user_negatives, rows),
                 _entries(SEARCH_ONLY, data.user_search_only, rows)]
        recent = data.user_recent
        r, c = np.nonzero(recent >= 0)
        parts.append((RECENT_ITEM, rows[r], c, recent[r, c]))
        seen = np.zeros(len(own), dtype=np.int64)
        np.maximum.at(seen, data.event_users, data.event_times)
        parts.append((LAST_SEEN, rows, np.zeros(len(own)), seen))
        return pd.DataFrame({
            "kind": np.concatenate([np.full(len(p[1]), p[0], np.int32) for p in parts]),
            "row": np.concatenate([np.asarray(p[1], np.int64) for p in parts]),
            "col": np.concatenate([np.asarray(p[2], np.int64) for p in parts]),
            "value": np.concatenate([np.asarray(p[3], np.float64) for p in parts]),
        })

    entries = (cleaned.events.groupBy(BUCKET).applyInPandas(one_group, PART_SCHEMA)
               .persist(StorageLevel.MEMORY_AND_DISK))
    table = entries.where(F.col("kind") != CONFIDENCE).toPandas()
    confidences = entries.where(F.col("kind") == CONFIDENCE).drop("kind")
    pairs = confidences.toPandas()
    shape = (len(user_ids), len(item_ids))
    kind = table["kind"].to_numpy()

    def matrix(frame: pd.DataFrame, dtype: Any) -> sp.csr_matrix:
        out = sp.csr_matrix((frame["value"].to_numpy(), (frame["row"].to_numpy(),
                                                         frame["col"].to_numpy())),
                            shape=shape, dtype=dtype)
        out.sort_indices()
        return out

    recent = np.full((shape[0], RECENT), -1, dtype=np.int32)
    at = table[kind == RECENT_ITEM]
    recent[at["row"].to_numpy(), at["col"].to_numpy()] = at["value"].to_numpy(np.int32)
    last_seen = np.zeros(shape[0], dtype=np.int64)
    at = table[kind == LAST_SEEN]
    last_seen[at["row"].to_numpy()] = at["value"].to_numpy(np.int64)
    search_only = table[kind == SEARCH_ONLY]
    data = TrainingData(
        user_items=matrix(pairs, np.float32),
        event_users=np.zeros(0, np.int32), event_items=np.zeros(0, np.int32),
        event_weights=np.zeros(0, np.float32), event_times=np.zeros(0, np.int64),
        reference_time=reference,
        user_purchases=matrix(table[kind == BOUGHT], np.float32),
        user_negatives=matrix(table[kind == NEGATIVE], np.float32),
        user_search_only=matrix(search_only, bool) if len(search_only) else None,
        user_recent=recent,
        user_last_seen=last_seen,
    )
    return data, confidences


def _entries(kind: int, matrix: sp.csr_matrix | None, rows: np.ndarray
             ) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    if matrix is None:
        return kind, np.zeros(0), np.zeros(0), np.zeros(0)
    coo = matrix.tocoo()
    return kind, rows[coo.row], coo.col, coo.data.astype(np.float64)


def indexed_events(cleaned: Cleaned, user_ids: np.ndarray, item_ids: np.ndarray,
                   weights: EventWeights) -> DataFrame:
    """Every kept event by model numbers (u, i), with its weight under the settled event
    weights, time, and +1/-1/0 for purchase/refund/other: what `fits` learn from."""
    from pyspark import StorageLevel

    context = cleaned.events.sparkSession.sparkContext
    shared = context.broadcast((user_ids, item_ids))

    def per_batch(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        every_user, every_item = shared.value
        for frame in batches:
            types = frame["event_type"].astype("category")
            per_type = np.append(net_purchases(np.asarray(types.cat.categories, object)), 0)
            yield pd.DataFrame({
                "u": lookup(every_user, frame["user_id"].to_numpy(str)).astype(np.int32),
                "i": lookup(every_item, frame["item_id"].to_numpy(str)).astype(np.int32),
                "w": event_weights(frame.assign(event_type=types), weights),
                "t": frame["timestamp"].to_numpy(np.int64),
                "bought": per_type[types.cat.codes.to_numpy()].astype(np.int32),
                ROW: frame[ROW].to_numpy(np.int64),
            })

    return (cleaned.events.mapInPandas(per_batch, EVENT_SCHEMA)
            .persist(StorageLevel.MEMORY_AND_DISK))
