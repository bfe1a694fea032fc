"""Clean stage: turn raw tables into trusted events, and say what was dropped and why.

The data-quality report is printed by the trainer and saved in the model's manifest."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from training.config import CleaningConfig, EventConfig

FALSE_WORDS = {"false", "f", "no", "n", "0", "off", "withdrawn", "denied"}
SECONDS_PER_DAY = 86_400


@dataclass
class CleanData:
    """Events with canonical types and epoch-second times, plus the catalog and users."""

    events: pd.DataFrame  # user_id, item_id, event_type, timestamp, value, weight
    items: pd.DataFrame | None
    users: pd.DataFrame | None
    opted_out: np.ndarray  # ids of users who refused consent
    report: dict[str, Any] = field(default_factory=dict)


def parse_timestamps(values: pd.Series) -> pd.Series:
    """Epoch seconds (int64) from ISO-8601 strings, datetimes or epoch seconds; <NA> when
    a value is none of these."""
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = pd.to_datetime(values, utc=True)
        return _to_epoch(parsed)
    if pd.api.types.is_numeric_dtype(values):
        return pd.to_numeric(values, errors="coerce").round().astype("Int64")
    text = values.astype("string").str.strip()
    numeric = text.str.fullmatch(r"[+-]?\d+(\.\d+)?", na=False)
    out = pd.Series(pd.NA, index=values.index, dtype="Int64")
    if numeric.any():
        out[numeric] = pd.to_numeric(text[numeric], errors="coerce").round().astype("Int64")
    rest = ~numeric & text.notna()
    if rest.any():
        parsed = pd.to_datetime(text[rest], format="ISO8601", utc=True, errors="coerce")
        out[rest] = _to_epoch(parsed)
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


def canonical_events(values: pd.Series, config: EventConfig) -> pd.Series:
    text = values.astype("string").str.strip().str.lower().str.replace(" ", "_")
    return text.replace(config.aliases)


def event_weights(events: pd.DataFrame, config: EventConfig) -> np.ndarray:
    """Base weight of each event (before time decay)."""
    base = np.array(events["event_type"].map(config.weights), dtype=np.float64)
    value = np.array(events["value"], dtype=np.float64)
    rating = (events["event_type"] == "rating").to_numpy()
    base[rating] = base[rating] * (value[rating] - config.rating_neutral)
    if config.quantity_scaling == "log":
        quantity = np.array(events["event_type"].isin(["purchase", "refund"]), dtype=bool)
        quantity &= np.isfinite(value) & (value >= 1)
        base[quantity] *= 1.0 + np.log(value[quantity])
    return base


def clean(
    interactions: pd.DataFrame,
    items: pd.DataFrame | None,
    users: pd.DataFrame | None,
    events_config: EventConfig,
    cleaning: CleaningConfig,
) -> CleanData:
    report: dict[str, Any] = {"rows_read": int(len(interactions))}
    dropped: dict[str, int] = {}

    def drop(mask: np.ndarray | pd.Series, reason: str) -> None:
        nonlocal df
        mask = np.asarray(mask, dtype=bool)
        count = int(mask.sum())
        if count:
            dropped[reason] = dropped.get(reason, 0) + count
            df = df.loc[~mask]

    df = interactions
    drop(df["user_id"].isna().to_numpy() | df["item_id"].isna().to_numpy(), "missing_ids")

    df = df.assign(event_type=canonical_events(df["event_type"], events_config))
    known = df["event_type"].isin(list(events_config.weights)).to_numpy()
    unknown_names = df.loc[~known, "event_type"].fillna("<empty>").value_counts()
    report["unknown_event_types"] = {str(k): int(v) for k, v in unknown_names.items()}
    drop(~known, "unknown_event_types")

    df = df.assign(timestamp=parse_timestamps(df["timestamp"]))
    drop(df["timestamp"].isna().to_numpy(), "bad_timestamps")

    if "value" in df.columns:
        df = df.assign(value=pd.to_numeric(df["value"], errors="coerce").astype(float))
    else:
        df = df.assign(value=np.nan)
    drop((df["event_type"] == "rating").to_numpy() & ~np.isfinite(df["value"].to_numpy()),
         "ratings_without_value")

    opted_out = np.zeros(0, dtype=str)
    if users is not None:
        users = users.dropna(subset=["user_id"]).drop_duplicates("user_id", keep="last")
        if "consent" in users.columns:
            consent = parse_flag(users["consent"])
            opted_out = np.sort(users.loc[~consent, "user_id"].to_numpy(dtype=str))
            users = users.loc[consent]
        drop(df["user_id"].isin(opted_out).to_numpy(), "consent_withdrawn")

    subset = [c for c in ("user_id", "item_id", "event_type", "timestamp", "value", "channel")
              if c in df.columns]
    drop(df.duplicated(subset=subset, keep="first").to_numpy(), "exact_duplicates")

    if items is not None:
        items = items.dropna(subset=["item_id"]).drop_duplicates("item_id", keep="last")
        drop(~df["item_id"].isin(items["item_id"]).to_numpy(), "items_missing_from_catalog")

    day = df["timestamp"].to_numpy(dtype=np.int64) // SECONDS_PER_DAY
    per_user = pd.DataFrame({"user_id": df["user_id"].to_numpy(), "day": day})
    counts = per_user.groupby("user_id", sort=False).agg(
        events=("day", "size"), days=("day", "nunique")
    )
    bots = counts.index[(counts["events"] / counts["days"]) > cleaning.max_events_per_day]
    report["bot_users"] = int(len(bots))
    drop(df["user_id"].isin(bots).to_numpy(), "bot_like_users")

    df = df.reset_index(drop=True)
    df = df.assign(weight=event_weights(df, events_config))
    report["rows_kept"] = int(len(df))
    report["rows_dropped"] = dropped
    report["event_counts"] = {str(k): int(v) for k, v in df["event_type"].value_counts().items()}
    report["users"] = int(df["user_id"].nunique())
    report["items_with_events"] = int(df["item_id"].nunique())
    report["catalog_items"] = int(len(items)) if items is not None else None
    report["consent_withdrawn_users"] = int(len(opted_out))
    if len(df):
        ts = df["timestamp"].to_numpy(dtype=np.int64)
        report["time_range"] = [
            pd.Timestamp(int(ts.min()), unit="s", tz="UTC").isoformat(),
            pd.Timestamp(int(ts.max()), unit="s", tz="UTC").isoformat(),
        ]
    columns = ["user_id", "item_id", "event_type", "timestamp", "value", "weight"]
    events = df[columns].astype({"timestamp": np.int64})
    return CleanData(events=events, items=items, users=users, opted_out=opted_out, report=report)


def format_report(report: dict[str, Any]) -> str:
    """The data-quality report as a few human lines."""
    lines = [f"rows read {report['rows_read']:,}, kept {report['rows_kept']:,}"]
    for reason, count in sorted(report["rows_dropped"].items(), key=lambda kv: -kv[1]):
        lines.append(f"  dropped {count:,}: {reason.replace('_', ' ')}")
    if report.get("unknown_event_types"):
        names = ", ".join(f"{k} ({v:,})" for k, v in report["unknown_event_types"].items())
        lines.append(f"  unknown event types ignored: {names}")
    counts = ", ".join(f"{k} {v:,}" for k, v in report["event_counts"].items())
    lines.append(f"events kept: {counts}")
    lines.append(f"users {report['users']:,}, items with events {report['items_with_events']:,}"
                 + (f", catalog items {report['catalog_items']:,}"
                    if report.get("catalog_items") is not None else ""))
    if report.get("time_range"):
        lines.append(f"time range {report['time_range'][0]} .. {report['time_range'][1]}")
    return "\n".join(lines)
