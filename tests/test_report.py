"""What recommendations earned, from the logs: attribution by id and by window, KPIs with
known answers, and a simulated A/B test read as a statistician would."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from recsvc.analytics.abtest import ALPHA, holm
from recsvc.analytics.attribution import attribute, events_from, explode
from recsvc.analytics.kpis import Lifecycle, ReportSettings, build

T0 = 1_764_547_200.0  # 2025-12-01 00:00 UTC
DAY = 86_400.0


def shown(rid: str, ts: float, user: str | None, items: list[str], variant: str = "default",
          surface: str = "recommend") -> dict:
    return {"recommendation_id": rid, "ts": ts, "user_id": user, "variant": variant,
            "model_version": "v1", "surface": surface, "items": items}


def event(user: str, item: str, kind: str, ts: float, rid: str | None = None,
          price: float | None = None, value: float | None = None) -> dict:
    out = {"user_id": user, "item_id": item, "event_type": kind, "timestamp": ts}
    if rid:
        out["recommendation_id"] = rid
    if price is not None:
        out["price"] = price
    if value is not None:
        out["value"] = value
    return out


def test_events_are_attributed_by_id_then_by_window() -> None:
    lists = explode([shown("r1", T0, "u1", ["a", "b"]), shown("r2", T0 + 50, "u1", ["b"]),
                     shown("r3", T0, "u2", ["a"])])
    events = events_from([
        event("u1", "b", "click", T0 + 10, rid="r1"),  # by id: r1's b, not r2's
        event("u1", "b", "purchase", T0 + 60),  # by window: the last showing, r2
        event("u2", "a", "purchase", T0 + 3 * 3600),  # outside a 1-hour window
        event("u2", "a", "click", T0 + 100, rid="r9"),  # an unknown id: falls back, r3
        event("u3", "a", "click", T0 + 5),  # never shown to u3
        event("u1", "a", "click", T0 - 10, rid="r1"),  # before the list was shown
    ])
    rows = attribute(lists, events, window_s=3600)
    rid = [lists.rid[r] if r >= 0 else None for r in rows.tolist()]
    assert rid == ["r1", "r2", None, "r3", None, None]
    assert lists.position[rows[0]] == 2


def test_kpis_have_known_answers() -> None:
    impressions = [
        shown("r1", T0 + 100, "u1", ["a", "b"], surface="home"),
        shown("r2", T0 + 200, "u2", ["c"], surface="home"),
        shown("r3", T0 + 300, "u3", ["a"], surface="cart"),
        shown("r4", T0 + 400, None, ["d"], surface="cart"),
        shown("old", T0 - 100, "u1", ["a"]),  # before the period: not counted
    ]
    events = [
        event("u1", "x", "view", T0 - 40 * DAY),  # u1 has been around: active
        event("u1", "x", "view", T0 - 10 * DAY),
        event("u2", "x", "view", T0 - 60 * DAY),  # u2: dormant
        event("u1", "a", "click", T0 + 110, rid="r1"),
        event("u1", "a", "add_to_cart", T0 + 120, rid="r1"),
        event("u1", "a", "purchase", T0 + 130, price=10.0, value=2),  # by window: r1
        event("u1", "z", "purchase", T0 + 130, price=5.0),  # the same order, not shown
        event("u2", "c", "click", T0 + 210, rid="r2"),
        event("u3", "q", "purchase", T0 + 900, price=40.0),  # an order of nothing shown
        event("u3", "q", "purchase", T0 + 2 * DAY, price=20.0),  # u3's second order
    ]
    settings = ReportSettings(start=T0, end=T0 + 7 * DAY, window_hours=1.0, catalog_size=10,
                              lifecycle=Lifecycle(new_days=30, active_days=30,
                                                  dormant_days=90))
    report = build(impressions, events, settings)
    overall = report["overall"]
    assert overall["impressions"] == 4 and overall["shoppers"] == 3
    assert overall["ctr"] == 0.5 and overall["add_to_cart_rate"] == 0.25
    assert overall["conversion"] == 0.25
    assert overall["attributed_revenue"] == 20.0  # 2 x 10
    assert overall["revenue"] == 85.0 and overall["revenue_share"] == round(20 / 85, 4)
    assert overall["orders"] == 3
    assert overall["aov_with_recommended"] == 25.0  # u1's order: 20 + 5
    assert overall["aov_without_recommended"] == 30.0  # u3's 40 and 20
    assert overall["repeat_purchase_rate"] == 0.5  # u3 ordered twice, u1 once
    assert overall["coverage"] == 0.4  # a, b, c, d of 10
    assert report["by_surface"]["home"]["ctr"] == 1.0
    assert report["by_surface"]["cart"]["ctr"] == 0.0
    assert set(report["by_lifecycle"]) == {"active", "dormant", "new", "anonymous"}
    assert report["by_lifecycle"]["active"]["conversion"] == 1.0  # u1
    day_one = [d for d in report["daily"] if d["day"] == "2025-12-01"][0]
    assert day_one["impressions"] == 4 and day_one["ctr"] == 0.5
    low, high = day_one["ctr_band"]
    assert low < 0.5 < high


def simulate(shoppers: int, conversion: dict[str, float], seed: int,
             shares: dict[str, float] | None = None) -> tuple[list[dict], list[dict]]:
    """One list a shopper; a third click; those who click buy with the variant's rate."""
    rng = np.random.default_rng(seed)
    names = sorted(conversion)
    weights = np.array([(shares or {}).get(v, 1.0) for v in names])
    impressions, events = [], []
    for u in range(shoppers):
        variant = names[rng.choice(len(names), p=weights / weights.sum())]
        rid, user, ts = f"r{u}", f"u{u}", T0 + rng.uniform(0, 6 * DAY)
        impressions.append(shown(rid, ts, user, ["a", "b", "c"], variant=variant))
        if rng.random() < 1 / 3:
            events.append(event(user, "b", "click", ts + 30, rid=rid))
            if rng.random() < conversion[variant]:
                events.append(event(user, "b", "purchase", ts + 90, rid=rid,
                                    price=float(rng.lognormal(3, 0.5))))
    return impressions, events


def comparison(report: dict, metric: str) -> dict:
    (found,) = [c for c in report["ab"]["comparisons"] if c["metric"] == metric]
    return found


def test_a_variant_that_truly_converts_better_is_declared_the_winner() -> None:
    impressions, events = simulate(60_000, {"control": 0.10, "better": 0.12}, seed=1)
    settings = ReportSettings(start=T0, end=T0 + 7 * DAY,
                              shares={"control": 0.5, "better": 0.5})
    report = build(impressions, events, settings)
    result = comparison(report, "shopper_conversion")
    assert result["variant"] == "better" and result["verdict"] == "B wins"
    truth = (0.12 - 0.10) / 3
    assert result["ci_low"] < truth < result["ci_high"]
    assert not report["ab"]["sample_ratio"]["mismatch"]
    assert comparison(report, "shopper_ctr")["verdict"] == "no difference yet"


def test_a_a_tests_find_no_winner_at_the_stated_error_rate() -> None:
    """Three metrics a test, Holm-adjusted: any false winner in at most ALPHA of A/A
    tests (the count over 60 runs is at most Binomial(60, 0.05))."""
    runs, false = 60, 0
    for seed in range(runs):
        impressions, events = simulate(2_000, {"control": 0.1, "same": 0.1}, seed=100 + seed)
        report = build(impressions, events, ReportSettings(
            start=T0, end=T0 + 7 * DAY, shares={"control": 0.5, "same": 0.5}))
        false += any(c["verdict"] != "no difference yet" for c in report["ab"]["comparisons"])
    assert false <= stats.binom.ppf(0.999, runs, ALPHA)


def test_a_skewed_split_stops_the_test() -> None:
    # Configured 50/50, served 60/40: nothing else can be trusted.
    impressions, events = simulate(20_000, {"control": 0.1, "same": 0.1}, seed=3,
                                   shares={"control": 0.6, "same": 0.4})
    report = build(impressions, events, ReportSettings(
        start=T0, end=T0 + 7 * DAY, shares={"control": 0.5, "same": 0.5}))
    assert report["ab"]["sample_ratio"]["mismatch"]
    assert {c["verdict"] for c in report["ab"]["comparisons"]} == {
        "stop: sample ratio mismatch"}


@pytest.mark.parametrize("window_hours, attributed", [(1.0, 0), (48.0, 1)])
def test_the_attribution_window_is_configurable(window_hours: float, attributed: int) -> None:
    report = build([shown("r1", T0, "u1", ["a"])],
                   [event("u1", "a", "purchase", T0 + 5 * 3600, price=3.0)],
                   ReportSettings(start=T0, end=T0 + DAY, window_hours=window_hours))
    assert report["overall"]["attributed_events"] == attributed


def test_holm_adjusts_as_the_textbook_does() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5]) == [0.5]


def send_traffic(svc) -> list[str]:  # noqa: ANN001
    """Every planted shopper (but bu1, who refused consent) asks for a list and clicks its
    first item; every other one buys two of it at 10.00. Returns the shoppers, once every
    list is in the impression log."""
    import time

    users = [f"{g}u{u}" for g in "ab" for u in range(30) if f"{g}u{u}" != "bu1"]
    for i, user in enumerate(users):
        body = svc.get("/recommend", user_id=user, n=4).json()
        first = body["items"][0]["item_id"]
        events = [{"user_id": user, "item_id": first, "event_type": "click",
                   "recommendation_id": body["recommendation_id"]}]
        if i % 2 == 0:
            events.append({"user_id": user, "item_id": first, "event_type": "purchase",
                           "value": 2, "price": 10.0,
                           "recommendation_id": body["recommendation_id"]})
        assert svc.http.post("/events", json=events).json()["accepted"] == len(events)
    deadline = time.monotonic() + 30  # the impression writer flushes 4 times a second
    while sum(len(f.read_text().splitlines())
              for f in (svc.state_dir / "impressions").glob("*.jsonl")) < len(users):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return users


def test_recsvc_report_reads_what_the_service_logged(tmp_path, capsys) -> None:  # noqa: ANN001
    import json

    from recsvc.cli import main
    from tests.test_service import start_service, train_planted

    store, _ = train_planted(tmp_path)
    rules = tmp_path / "rules.toml"
    rules.write_text("[variants.control]\nshare = 0.5\n[variants.better]\nshare = 0.5\n")
    svc = start_service(tmp_path, store, rules_file=rules)
    try:
        users = send_traffic(svc)
    finally:
        svc.http.close()
        svc.server.stop()
    out = tmp_path / "report"
    assert main(["report", "--model-root", str(svc.root), "--state-dir", str(svc.state_dir),
                 "--rules-file", str(rules), "--days", "1", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    overall = report["overall"]
    buyers = len(range(0, len(users), 2))
    assert overall["impressions"] == len(users) and overall["shoppers"] == len(users)
    assert overall["ctr"] == 1.0
    assert overall["conversion"] == round(buyers / len(users), 5)
    assert overall["attributed_revenue"] == 20.0 * buyers == overall["revenue"]
    assert overall["revenue_share"] == 1.0
    assert set(report["by_variant"]) == {"control", "better"}
    assert sum(report["ab"]["shoppers"].values()) == len(users)
    assert "## A/B" in (out / "report.md").read_text()
    assert (out / "daily_ctr.png").stat().st_size > 1000


def test_a_shopper_the_model_knows_is_not_new() -> None:
    seen = {"old": T0 - 10 * DAY, "gone": T0 - 200 * DAY}
    report = build([shown("r1", T0 + 1, "old", ["a"]), shown("r2", T0 + 2, "gone", ["a"]),
                    shown("r3", T0 + 3, "fresh", ["a"])], [],
                   ReportSettings(start=T0, end=T0 + DAY), seen_before=seen.get)
    assert {k: v["impressions"] for k, v in report["by_lifecycle"].items()} == {
        "active": 1, "churned": 1, "new": 1}


def test_lifecycle_stages_follow_recency_and_frequency() -> None:
    rules = Lifecycle(new_days=30, active_days=30, dormant_days=90, active_min_events=3)
    events = [event("loyal", "x", "view", T0 - d * DAY) for d in (40, 5, 4, 3)]
    events += [event("rare", "x", "view", T0 - d * DAY) for d in (60, 2)]  # once lately
    events += [event("lapsed", "x", "view", T0 - d * DAY) for d in (200, 150)]
    impressions = [shown(f"r{u}", T0 + 1, u, ["a"]) for u in ("loyal", "rare", "lapsed")]
    report = build(impressions, events, ReportSettings(start=T0, end=T0 + DAY,
                                                       lifecycle=rules))
    assert {k: v["impressions"] for k, v in report["by_lifecycle"].items()} == {
        "active": 1, "dormant": 1, "churned": 1}
