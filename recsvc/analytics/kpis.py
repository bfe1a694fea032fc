"""What recommendations earned over a period, from the impression and events logs: per
variant, surface, segment and lifecycle stage, the KPIs a shop reads (click-through,
add-to-cart, conversion, attributed revenue and its share, average order value with and
without recommended items, repeat purchases, catalog coverage), daily series with
confidence bands, and the A/B comparison of variants (`analytics.abtest`)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from recsvc.analytics.abtest import (
    bootstrap_means,
    holm,
    sample_ratio,
    two_proportions,
    verdict,
)
from recsvc.analytics.attribution import (
    CARTS,
    CLICKS,
    PURCHASES,
    Events,
    Impressions,
    attribute,
    events_from,
    explode,
)

DAY = 86_400.0


@dataclass(frozen=True)
class Lifecycle:
    """A shopper's stage when the period starts, by recency and frequency of their
    events before it: new (first seen within `new_days`, or during the period), active
    (at least `active_min_events` events within `active_days`), dormant (an event within
    `dormant_days`), churned (older)."""

    new_days: float = 30.0
    active_days: float = 30.0
    dormant_days: float = 90.0
    active_min_events: int = 1

    def stage(self, first: float | None, last: float | None, start: float,
              recent_events: int | None = None) -> str:
        """`recent_events`: how many in the `active_days` before `start` (None: as
        many as it takes, for a shopper known only by when they were last seen)."""
        if first is None or start - first < self.new_days * DAY:
            return "new"
        assert last is not None
        idle = (start - last) / DAY
        frequent = recent_events is None or recent_events >= self.active_min_events
        if idle <= self.active_days and frequent:
            return "active"
        return "dormant" if idle <= self.dormant_days else "churned"


@dataclass(frozen=True)
class ReportSettings:
    start: float
    end: float
    window_hours: float = 24.0  # attribution without a recommendation id
    shares: dict[str, float] = field(default_factory=dict)  # configured variant shares
    lifecycle: Lifecycle = field(default_factory=Lifecycle)
    catalog_size: int = 0


def wilson(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """A 95% interval for a rate that stays inside [0, 1] on small samples."""
    if trials == 0:
        return 0.0, 0.0
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (
        1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


def build(impressions: list[dict], events: list[dict], settings: ReportSettings,
          segment_of: Callable[[str], str] = lambda user: "all",
          subject: Callable[[str], str] = str,
          seen_before: Callable[[str], float | None] = lambda user: None) -> dict[str, Any]:
    """The report, as JSON-ready data. `events` may reach before the period (for the
    lifecycle stages); `subject` maps an events-log user id to the impression log's;
    `seen_before` is when a shopper was last seen in data older than the events log (the
    model's training data), None if never."""
    start, end = settings.start, settings.end
    shown_records = [r for r in impressions if start <= r["ts"] < end]
    shown = explode(shown_records)
    history = events_from(events)
    history = dataclasses.replace(history, user=np.array(
        [subject(u) for u in history.user.tolist()], dtype=str))
    shown_users = {r.get("user_id") for r in shown_records if r.get("user_id")}
    lifecycle = _stages(history.user, history.ts, start, settings.lifecycle, seen_before,
                        shown_users)
    in_period = (history.ts >= start) & (history.ts < end)
    period = Events(**{k: v[in_period] for k, v in vars(history).items()})
    rows = attribute(shown, period, settings.window_hours * 3600.0)

    imp = len(shown_records)
    imp_variant = np.array([r["variant"] for r in shown_records], dtype=str)
    imp_surface = np.array([r["surface"] for r in shown_records], dtype=str)
    imp_user = np.array([r.get("user_id") or "" for r in shown_records], dtype=str)
    groups = {
        "variant": imp_variant,
        "surface": imp_surface,
        "segment": np.array([segment_of(u) if u else "anonymous" for u in imp_user.tolist()],
                            dtype=str),
        "lifecycle": np.array([lifecycle.get(u, "new") if u else "anonymous"
                               for u in imp_user.tolist()], dtype=str),
    }
    attributed = rows >= 0
    which = np.where(attributed, shown.impression[np.maximum(rows, 0)], -1)
    kind = period.kind
    is_click = np.isin(kind, CLICKS) & attributed
    is_cart = np.isin(kind, CARTS) & attributed
    is_buy = np.isin(kind, PURCHASES) & attributed
    clicked = _flags(which[is_click], imp)
    carted = _flags(which[is_cart], imp)
    bought = _flags(which[is_buy], imp)
    revenue = np.bincount(which[is_buy], weights=period.revenue[is_buy], minlength=imp)
    total_revenue = float(period.revenue.sum())
    orders = _orders(period, rows)

    def kpis(mask: np.ndarray) -> dict[str, Any]:
        n = int(mask.sum())
        items = {it for i in np.flatnonzero(mask).tolist() for it in shown_records[i]["items"]}
        attributed_revenue = float(revenue[mask].sum())
        return {
            "impressions": n,
            "shoppers": int(np.unique(imp_user[mask & (imp_user != "")]).size),
            "ctr": _rate(clicked[mask]), "add_to_cart_rate": _rate(carted[mask]),
            "conversion": _rate(bought[mask]),
            "attributed_revenue": round(attributed_revenue, 2),
            "revenue_share": round(attributed_revenue / total_revenue, 4)
            if total_revenue else None,
            "coverage": round(len(items) / settings.catalog_size, 4)
            if settings.catalog_size else None,
        }

    report: dict[str, Any] = {
        "period": {"start": _iso(start), "end": _iso(end)},
        "attribution_window_hours": settings.window_hours,
        "overall": {**kpis(np.ones(imp, dtype=bool)), **orders,
                    "revenue": round(total_revenue, 2),
                    "events": int(in_period.sum()),
                    "attributed_events": int(attributed.sum())},
    }
    for name, labels in groups.items():
        report[f"by_{name}"] = {str(v): kpis(labels == v) for v in sorted(set(labels.tolist()))}
    report["exploration"] = _exploration(shown_records, shown, rows, is_click)
    report["daily"] = _daily(shown_records, clicked, bought, start, end)
    report["ab"] = _ab(imp_variant, imp_user, clicked, bought, revenue, settings.shares)
    return report


def _exploration(records: list[dict], shown: Impressions, rows: np.ndarray,
                 is_click: np.ndarray) -> dict[str, Any]:
    """What exploring new arrivals earned: the lists that gave their last place to one,
    the clicks on it, against the clicks on the last place of the other lists."""
    explored = np.array([r.get("explored") or "" for r in records], dtype=str)
    exploring = explored != ""
    lengths = np.array([len(r["items"]) for r in records], dtype=np.int64)
    hit = rows[is_click]
    impression = shown.impression[hit]
    last = shown.position[hit] == lengths[impression]
    on_explored = last & exploring[impression] & (shown.item[hit] == explored[impression])
    on_last = last & ~exploring[impression]
    n_exploring = int(exploring.sum())
    n_other = int((~exploring & (lengths > 0)).sum())
    return {
        "lists": n_exploring,
        "clicks": int(np.unique(impression[on_explored]).size),
        "ctr": round(np.unique(impression[on_explored]).size / n_exploring, 4)
        if n_exploring else None,
        "last_place_ctr_otherwise": round(np.unique(impression[on_last]).size / n_other, 4)
        if n_other else None,
        "items": int(np.unique(explored[exploring]).size),
    }


def _flags(indices: np.ndarray, size: int) -> np.ndarray:
    out = np.zeros(size, dtype=bool)
    out[indices] = True
    return out


def _rate(flags: np.ndarray) -> float | None:
    return round(float(flags.mean()), 5) if flags.size else None


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def _stages(users: np.ndarray, ts: np.ndarray, start: float, rules: Lifecycle,
            seen_before: Callable[[str], float | None], shown: set[str]) -> dict[str, str]:
    """Each shopper's lifecycle stage at `start`, from their events before it and when
    older data last saw them (a shopper the model knows is not new)."""
    before = ts < start
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    recent: dict[str, int] = {}
    window = start - rules.active_days * DAY
    for u, t in zip(users[before].tolist(), ts[before].tolist(), strict=True):
        first[u] = min(first.get(u, t), t)
        last[u] = max(last.get(u, t), t)
        recent[u] = recent.get(u, 0) + (t >= window)
    out = {}
    for u in set(users.tolist()) | shown:
        older = seen_before(u)
        if older is not None and older < start:
            first[u] = min(first.get(u, older), start - (rules.new_days + 1) * DAY)
            last[u] = max(last.get(u, older), older)
        out[u] = rules.stage(first.get(u), last.get(u), start,
                             recent.get(u, 0) if u in recent else None)
    return out


def _orders(period: Any, rows: np.ndarray) -> dict[str, Any]:
    """Orders are a shopper's purchases at one moment (the second): their value with
    and without a recommended item, and the share of buyers who ordered twice or more."""
    buy = np.isin(period.kind, PURCHASES)
    if not buy.any():
        return {"orders": 0, "aov_with_recommended": None, "aov_without_recommended": None,
                "repeat_purchase_rate": None}
    keys = np.char.add(np.char.add(period.user[buy], "\x1f"),
                       np.floor(period.ts[buy]).astype(np.int64).astype(str))
    order_ids, order_of = np.unique(keys, return_inverse=True)
    value = np.bincount(order_of, weights=period.revenue[buy], minlength=order_ids.size)
    with_rec = np.bincount(order_of, weights=(rows[buy] >= 0).astype(float),
                           minlength=order_ids.size) > 0
    buyers, per_buyer = np.unique(np.array([k.split("\x1f")[0] for k in order_ids.tolist()]),
                                  return_counts=True)
    return {
        "orders": int(order_ids.size),
        "aov_with_recommended": round(float(value[with_rec].mean()), 2) if with_rec.any()
        else None,
        "aov_without_recommended": round(float(value[~with_rec].mean()), 2)
        if (~with_rec).any() else None,
        "repeat_purchase_rate": round(float((per_buyer >= 2).mean()), 4) if buyers.size
        else None,
    }


def _daily(records: list[dict], clicked: np.ndarray, bought: np.ndarray, start: float,
           end: float) -> list[dict[str, Any]]:
    """Per day and variant: impressions, click-through and conversion with 95% bands."""
    out = []
    day = np.floor((np.array([r["ts"] for r in records]) - start) / DAY).astype(np.int64) \
        if records else np.zeros(0, dtype=np.int64)
    variants = np.array([r["variant"] for r in records], dtype=str)
    for d in range(int(math.ceil((end - start) / DAY))):
        for v in sorted(set(variants.tolist())):
            mask = (day == d) & (variants == v)
            n = int(mask.sum())
            c, b = int(clicked[mask].sum()), int(bought[mask].sum())
            out.append({"day": _iso(start + d * DAY)[:10], "variant": v, "impressions": n,
                        "ctr": c / n if n else None, "ctr_band": wilson(c, n),
                        "conversion": b / n if n else None, "conversion_band": wilson(b, n)})
    return out


def _ab(variant: np.ndarray, user: np.ndarray, clicked: np.ndarray, bought: np.ndarray,
        revenue: np.ndarray, shares: dict[str, float]) -> dict[str, Any]:
    """Each variant against the control (`control`, else the first by name), per
    shopper exposed: clicked at least once, bought at least once, attributed revenue."""
    known = user != ""
    names = sorted(set(variant[known].tolist()))
    if len(names) < 2:
        return {"variants": names, "comparisons": [],
                "note": "fewer than two variants with identified shoppers"}
    control = "control" if "control" in names else names[0]
    per: dict[str, dict[str, np.ndarray]] = {}
    for v in names:
        mask = known & (variant == v)
        shoppers, inverse = np.unique(user[mask], return_inverse=True)
        per[v] = {
            "clicked": np.bincount(inverse, weights=clicked[mask], minlength=shoppers.size) > 0,
            "bought": np.bincount(inverse, weights=bought[mask], minlength=shoppers.size) > 0,
            "revenue": np.bincount(inverse, weights=revenue[mask], minlength=shoppers.size),
        }
    observed = {v: int(per[v]["clicked"].size) for v in names}
    srm = sample_ratio(observed, {v: shares.get(v, 1.0) for v in names})
    comparisons = []
    for v in names:
        if v == control:
            continue
        a, b = per[control], per[v]
        results = [two_proportions(name, int(a[m].sum()), a[m].size, int(b[m].sum()),
                                   b[m].size)
                   for name, m in (("shopper_ctr", "clicked"),
                                   ("shopper_conversion", "bought"))]
        results.append(bootstrap_means("revenue_per_shopper", a["revenue"], b["revenue"]))
        # Three metrics read from one test: Holm keeps the chance of any false winner
        # at ALPHA.
        for result, p in zip(results, holm([r.p_value for r in results]), strict=True):
            comparisons.append({"control": control, "variant": v, **result.as_dict(),
                                "p_adjusted": p, "verdict": verdict(result, srm, p)})
    return {"variants": names, "control": control, "shoppers": observed,
            "sample_ratio": srm.as_dict(), "comparisons": comparisons}
