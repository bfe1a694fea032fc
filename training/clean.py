"""Clean stage: turn raw tables into trusted events, and say what was dropped and why.

The data-quality report is printed by the trainer and saved in the model's manifest."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from recsvc.core.errors import InputError
from recsvc.core.policy.events import REFUSALS, TOO_OLD, EventWeights, epoch_seconds
from recsvc.core.policy.privacy import parse_purposes
from training.config import CleaningConfig
from training.robots import BOT_EXAMPLES, robots

FALSE_WORDS = {"false", "f", "no", "n", "0", "off", "withdrawn", "denied"}


@dataclass
class CleanData:
    """Events with canonical types and epoch-second times, plus the catalog and users."""

    events: pd.DataFrame  # user_id, item_id, event_type, timestamp, value, weight
    items: pd.DataFrame | None
    users: pd.DataFrame | None
    opted_out: np.ndarray  # ids of users who refused consent
    report: dict[str, Any] = field(default_factory=dict)
    kept: np.ndarray | None = None  # positions of the kept rows in the input table


def parse_timestamps(values: pd.Series) -> pd.Series:
    """Epoch seconds (float64, whole seconds) from ISO-8601 strings, datetimes, epoch
    seconds or epoch milliseconds (`recsvc.core.policy.events.epoch_seconds`); NaN when
    a value is none of these."""
    if pd.api.types.is_datetime64_any_dtype(values):
        if values.dt.tz is None:
            values = values.dt.tz_localize("UTC")
        seconds = values.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[s]")
        return pd.Series(seconds.astype(np.int64), index=values.index,
                         dtype=np.float64).mask(values.isna())
    if pd.api.types.is_numeric_dtype(values):
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
        return pd.Series(np.round(epoch_seconds(numbers)), index=values.index)
    text = values.astype("string").str.strip()
    numeric = text.str.fullmatch(r"[+-]?\d+(\.\d+)?", na=False)
    out = pd.Series(np.nan, index=values.index, dtype=np.float64)
    if numeric.any():
        numbers = pd.to_numeric(text[numeric], errors="coerce").to_numpy(dtype=np.float64)
        out[numeric] = np.round(epoch_seconds(numbers))
    rest = ~numeric & text.notna()
    if rest.any():
        parsed = pd.to_datetime(text[rest], format="ISO8601", utc=True, errors="coerce")
        out[rest] = _to_epoch(parsed).astype("Float64").to_numpy(dtype=np.float64,
                                                                 na_value=np.nan)
    return out


def _to_epoch(parsed: pd.Series) -> pd.Series:
    seconds = (parsed - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    return seconds.astype("Int64")


def parse_flag(values: pd.Series) -> np.ndarray:
    """True unless the value says no (consent, in_stock): only an explicit 'no' counts."""
    if pd.api.types.is_bool_dtype(values):
        return values.fillna(True).to_numpy(dtype=bool)
    text = values.astype("string").str.strip().str.lower()
    return ~text.isin(FALSE_WORDS).fillna(False).to_numpy(dtype=bool)


def personalization_consent(values: pd.Series) -> np.ndarray:
    """Whether each user consents to personalization: the `consent` value is yes/no for
    every purpose, or the purposes consented to ("personalization;email"; "email" alone
    means no personalization). Only an explicit no counts as refusal; a word that is
    neither (`granted`) counts as consent, as it did before purposes."""
    if pd.api.types.is_bool_dtype(values):
        return values.fillna(True).to_numpy(dtype=bool)
    text = values.astype("string").str.strip().str.lower()
    verdict: dict[str, bool] = {}
    for value in text.dropna().unique().tolist():
        if value in FALSE_WORDS:
            verdict[value] = False
            continue
        try:
            purposes = parse_purposes(value)
        except ValueError:
            purposes = None
        verdict[value] = purposes is None or purposes["personalization"]
    return text.map(verdict).fillna(True).to_numpy(dtype=bool)


def canonical_events(values: pd.Series, config: EventWeights) -> pd.Series:
    """Each distinct event name's canonical form (`EventWeights.canonical`); unknown
    names keep their tidied spelling (the report counts them), missing ones stay <NA>."""
    text = values.astype("string").str.strip().str.lower().str.replace(" ", "_")
    return text.map(lambda name: name if pd.isna(name) else config.canonical(name) or name)


def has_quantities(events: pd.DataFrame) -> bool:
    """Do purchases or refunds record quantities other than 1?"""
    counted = events["event_type"].isin(["purchase", "refund"]).to_numpy()
    value = np.asarray(events["value"], dtype=np.float64)[counted]
    return bool(np.any(np.isfinite(value) & (value > 1)))


def event_weights(events: pd.DataFrame, config: EventWeights) -> np.ndarray:
    """Base weight of each event (before time decay), by the service's own definition
    (`EventWeights`), reading the categorical event column by its codes."""
    types = events["event_type"]
    if not isinstance(types.dtype, pd.CategoricalDtype):
        types = types.astype("category")
    return config.weigh(types.cat.codes.to_numpy(),
                              [str(c) for c in types.cat.categories],
                              np.asarray(events["value"], dtype=np.float64))


def _codes(values: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Integer codes (-1 for missing) and the distinct values: every later test works on
    integers, which keeps cleaning fast on millions of rows."""
    if isinstance(values.dtype, pd.CategoricalDtype):  # as the readers give ids: no work
        return values.cat.codes.to_numpy(dtype=np.int64), values.cat.categories
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return codes.astype(np.int64), pd.Index(np.asarray(uniques, dtype=object))


def exact_duplicates(columns: dict[str, np.ndarray]) -> np.ndarray:
    """Rows equal in every column to an earlier row. A 64-bit hash of each row finds the
    candidates fast; an exact comparison among the candidates alone decides."""
    n = len(next(iter(columns.values())))
    digest = np.zeros(n, dtype=np.uint64)
    for i, values in enumerate(columns.values()):
        bits = np.ascontiguousarray(values, dtype=np.float64 if values.dtype.kind == "f"
                                    else np.int64).view(np.uint64)
        digest = (digest ^ bits) * np.uint64(0x9E3779B97F4A7C15 + 2 * i)
    maybe = np.flatnonzero(pd.Series(digest).duplicated(keep=False).to_numpy())
    out = np.zeros(n, dtype=bool)
    if maybe.size:
        exact = pd.DataFrame({k: v[maybe] for k, v in columns.items()})
        out[maybe] = exact.duplicated(keep="first").to_numpy()
    return out


def member(names: pd.Index, allowed: Any) -> np.ndarray:
    """names.isin(allowed), by binary search over sorted strings (fast for many names)."""
    pool = np.sort(np.asarray(list(allowed), dtype=str))
    if pool.size == 0:
        return np.zeros(len(names), dtype=bool)
    query = np.asarray(names, dtype=str)
    pos = np.minimum(np.searchsorted(pool, query), pool.size - 1)
    return pool[pos] == query


def _distinct(values: np.ndarray) -> np.ndarray:
    """Sorted distinct integers (a sort beats hashing at this size)."""
    ordered = np.sort(values)
    return ordered[np.r_[True, ordered[1:] != ordered[:-1]]] if ordered.size else ordered


# Rows dropped for these reasons are bad data (rather than data deliberately left
# out: unknown event types, duplicates, withdrawn consent, bots, retention): past
# `cleaning.max_invalid_share` of a file, the run stops rather than train on the rest.
INVALID = ("missing_ids", *(r.reason for code, r in REFUSALS.items() if code != TOO_OLD))
SOURCE = "_source"  # optional column: which input file each row came from


def _values(raw: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Numbers (float64) and which rows gave one; a value given that is not a number
    (`abc`) is +inf, which the checks refuse as not finite."""
    value = np.array(pd.to_numeric(raw, errors="coerce"), dtype=np.float64)
    if pd.api.types.is_numeric_dtype(raw):
        return value, raw.notna().to_numpy()
    text = raw.astype("string").str.strip()
    given = (text.notna() & (text != "") & (text.str.lower() != "nan")).to_numpy(
        dtype=bool, na_value=False)
    value[given & np.isnan(value)] = np.inf
    return value, given


def clean(
    interactions: pd.DataFrame,
    items: pd.DataFrame | None,
    users: pd.DataFrame | None,
    events_config: EventWeights,
    cleaning: CleaningConfig,
    sources: list[str] | None = None,
    now: float | None = None,
    forgotten: Callable[[np.ndarray], np.ndarray] | None = None,
    shown_id: Callable[[str], str] = str,
    opted_out: np.ndarray | None = None,
    check_shares: bool = True,
) -> CleanData:
    """Keep or drop every row for a named reason, counted per reason and per input file
    (`sources`: the files the `_source` column numbers; default one, "interactions").
    Events are checked as the API checks them (`EventWeights.checks`) against `now`
    (default: the clock). A file with more than `cleaning.max_invalid_share` bad rows
    stops the run with an InputError naming it. `forgotten` marks, for an array of
    user ids, the shoppers who asked to be forgotten: their rows and their line in the
    users table are dropped first of all. `shown_id` is how the report names a user
    (their keyed hash when `RECSVC_ID_HASH_KEY` is set).

    A caller that cleans a share of the shoppers at a time (the Spark engine) passes the
    users table's verdict (`consenting_users`) as `opted_out` with no users table, and
    checks the files' shares over all the shares (`check_invalid_shares`)."""
    now = time.time() if now is None else now
    report: dict[str, Any] = {"rows_read": int(len(interactions))}
    dropped: dict[str, int] = {}
    alive = np.ones(len(interactions), dtype=bool)
    sources = sources or ["interactions"]
    source = (interactions[SOURCE].to_numpy(dtype=np.int64) if SOURCE in interactions
              else np.zeros(len(interactions), dtype=np.int64))
    by_file: dict[str, dict[str, int]] = {name: {} for name in sources}

    def drop(mask: np.ndarray, reason: str) -> None:
        """Drop rows for `reason`; a row counts only for the first reason that drops it."""
        newly = np.asarray(mask, dtype=bool) & alive
        count = int(newly.sum())
        if count:
            dropped[reason] = count
            alive[newly] = False
            for at, n in enumerate(np.bincount(source[newly], minlength=len(sources))):
                if n:
                    by_file[sources[at]][reason] = int(n)

    df = interactions
    user, user_names = _codes(df["user_id"])
    item, item_names = _codes(df["item_id"])
    drop((user < 0) | (item < 0), "missing_ids")
    if forgotten is not None:
        gone = forgotten(np.asarray(user_names, dtype=str))
        drop((user >= 0) & gone[np.maximum(user, 0)], "forgotten_users")
        if users is not None:
            users = users.loc[~forgotten(users["user_id"].astype(str).to_numpy())]

    raw_event, raw_names = _codes(df["event_type"])
    canonical = canonical_events(pd.Series(raw_names, dtype=object), events_config)
    canon_code, canon_names = pd.factorize(canonical, use_na_sentinel=True)
    event = np.where(raw_event >= 0, canon_code[np.maximum(raw_event, 0)], -1)
    name_known = pd.Index(canon_names).isin(list(events_config.weights))
    known = (event >= 0) & name_known[np.maximum(event, 0)]
    unknown = ~known & alive
    names = np.where(event[unknown] >= 0,
                     np.asarray(canon_names, dtype=object)[np.maximum(event[unknown], 0)],
                     "<empty>")
    report["unknown_event_types"] = {
        str(k): int(v) for k, v in pd.Series(names, dtype=object).value_counts().items()
    }
    drop(~known, "unknown_event_types")
    event_type = pd.Categorical.from_codes(np.where(known, event, -1),
                                           categories=pd.Index(canon_names, dtype=object))

    seconds = parse_timestamps(df["timestamp"]).to_numpy(dtype=np.float64)
    if "value" in df.columns:
        value, given = _values(df["value"])
    else:
        value, given = np.full(len(df), np.nan), np.zeros(len(df), dtype=bool)
    refusal = events_config.checks.check(np.asarray(event_type.codes),
                                         [str(c) for c in event_type.categories],
                                         seconds, value, given, now)
    for code, why in REFUSALS.items():
        drop(refusal == code, why.reason)
    ts = np.nan_to_num(seconds, nan=0.0).astype(np.int64)
    value[~given] = np.nan

    if opted_out is None:
        users, opted_out = consenting_users(users)
    if len(opted_out):
        refused = member(user_names, opted_out)
        drop((user >= 0) & refused[np.maximum(user, 0)], "consent_withdrawn")

    # One integer for (user, item, event) makes the duplicate search three columns wide.
    n_events = max(len(event_type.categories), 1) + 1
    packed = (user * len(item_names) + item) * n_events + (np.asarray(event_type.codes) + 1)
    key = {"who_what": packed, "ts": ts, "value": np.nan_to_num(value, nan=-1.0)}
    if "channel" in df.columns:
        key["channel"] = _codes(df["channel"])[0]
    rows = np.flatnonzero(alive)
    duplicate = np.zeros(len(df), dtype=bool)
    duplicate[rows] = exact_duplicates({k: v[rows] for k, v in key.items()})
    drop(duplicate, "exact_duplicates")
    if "event_id" in df.columns:  # a client's retry recorded twice (without the cache)
        ids = _codes(df["event_id"])[0]
        again = np.zeros(len(df), dtype=bool)
        rows = np.flatnonzero(alive & (ids >= 0))
        again[rows] = pd.Series(ids[rows]).duplicated().to_numpy()
        drop(again, "duplicate_event_ids")

    if items is not None:
        items = items.dropna(subset=["item_id"]).drop_duplicates("item_id", keep="last")
        in_catalog = member(item_names, items["item_id"])
        drop((item >= 0) & ~in_catalog[np.maximum(item, 0)], "items_missing_from_catalog")

    browsing = np.isin(np.asarray(event_type.codes),
                       [i for i, c in enumerate(event_type.categories)
                        if c in cleaning.browse_events])
    rules = robots(user, ts, alive & browsing, len(user_names), cleaning)
    report["bots"] = {rule: {"users": int(flagged.sum()),
                             "events": int((alive & (user >= 0)
                                            & flagged[np.maximum(user, 0)]).sum()),
                             "examples": [shown_id(str(user_names[u])) for u in
                                          np.flatnonzero(flagged)[:BOT_EXAMPLES]]}
                      for rule, flagged in rules.items() if flagged.any()}
    bot = (np.logical_or.reduce(list(rules.values())) if rules
           else np.zeros(len(user_names), bool))
    report["bot_users"] = int(bot.sum())
    drop((user >= 0) & bot[np.maximum(user, 0)], "bot_like_users")

    rows = np.flatnonzero(alive)
    events = pd.DataFrame({
        "user_id": pd.Categorical.from_codes(user[rows], categories=user_names),
        "item_id": pd.Categorical.from_codes(item[rows], categories=item_names),
        "event_type": event_type[rows],
        "timestamp": ts[rows],
        "value": value[rows],
    })
    events["event_type"] = events["event_type"].cat.remove_unused_categories()
    events["weight"] = event_weights(events, events_config)
    report["rows_kept"] = int(len(events))
    report["rows_dropped"] = dropped
    read = np.bincount(source, minlength=len(sources))
    report["rows_dropped_by_file"] = {name: counts for name, counts in by_file.items()
                                      if counts}
    if check_shares:
        check_invalid_shares(dict(zip(sources, read.tolist(), strict=True)), by_file,
                             cleaning)
    report["event_counts"] = {
        str(k): int(v) for k, v in events["event_type"].value_counts().items() if v
    }
    report["users"] = int(np.count_nonzero(np.bincount(user[rows])))
    report["items_with_events"] = int(np.count_nonzero(np.bincount(item[rows])))
    report["catalog_items"] = int(len(items)) if items is not None else None
    report["consent_withdrawn_users"] = int(len(opted_out))
    if len(events):
        report["time_range"] = [
            pd.Timestamp(int(ts[rows].min()), unit="s", tz="UTC").isoformat(),
            pd.Timestamp(int(ts[rows].max()), unit="s", tz="UTC").isoformat(),
        ]
    return CleanData(events=events, items=items, users=users, opted_out=opted_out,
                     report=report, kept=rows)


def consenting_users(users: pd.DataFrame | None) -> tuple[pd.DataFrame | None, np.ndarray]:
    """The users table without duplicates and without those who refused
    personalization, and the sorted ids of those who refused."""
    opted_out = np.zeros(0, dtype=str)
    if users is None:
        return None, opted_out
    users = users.dropna(subset=["user_id"]).drop_duplicates("user_id", keep="last")
    if "consent" in users.columns:
        consent = personalization_consent(users["consent"])
        opted_out = np.sort(users.loc[~consent, "user_id"].to_numpy(dtype=str))
        users = users.loc[consent]
    return users, opted_out


def check_invalid_shares(read: dict[str, int], dropped: dict[str, dict[str, int]],
                         cleaning: CleaningConfig) -> None:
    """Stop the run (InputError naming the file) when a file's invalid rows exceed
    `cleaning.max_invalid_share` of the rows read from it."""
    for name, rows in read.items():
        invalid = {k: v for k, v in dropped.get(name, {}).items() if k in INVALID}
        if rows and sum(invalid.values()) > cleaning.max_invalid_share * rows:
            worst = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in
                              sorted(invalid.items(), key=lambda kv: -kv[1]))
            raise InputError(
                f"interactions file {name}: {sum(invalid.values()):,} of its {rows:,} "
                f"rows are invalid ({worst}), more than cleaning.max_invalid_share "
                f"{cleaning.max_invalid_share:.0%}; fix the file or raise the share")


def format_report(report: dict[str, Any]) -> str:
    """The data-quality report as a few human lines."""
    lines = [f"rows read {report['rows_read']:,}, kept {report['rows_kept']:,}"]
    for reason, count in sorted(report["rows_dropped"].items(), key=lambda kv: -kv[1]):
        lines.append(f"  dropped {count:,}: {reason.replace('_', ' ')}")
    if report.get("unknown_event_types"):
        names = ", ".join(f"{k} ({v:,})" for k, v in report["unknown_event_types"].items())
        lines.append(f"  unknown event types ignored: {names}")
    for rule, found in report.get("bots", {}).items():
        lines.append(f"  robots by rule {rule}: {found['users']:,} users, {found['events']:,} "
                     f"events (e.g. {', '.join(found['examples'][:3])})")
    counts = ", ".join(f"{k} {v:,}" for k, v in report["event_counts"].items())
    lines.append(f"events kept: {counts}")
    lines.append(f"users {report['users']:,}, items with events {report['items_with_events']:,}"
                 + (f", catalog items {report['catalog_items']:,}"
                    if report.get("catalog_items") is not None else ""))
    if report.get("time_range"):
        lines.append(f"time range {report['time_range'][0]} .. {report['time_range'][1]}")
    return "\n".join(lines)
