"""Cleaning: every row is kept or dropped for a named reason, and the sums add up."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsvc.core.policy.events import EventWeights
from tests.conftest import DAY, T0
from training.clean import clean, parse_timestamps
from training.config import CleaningConfig


def test_report_counts_every_reason() -> None:
    rows = [
        {"user_id": "u1", "item_id": "i1", "event_type": "purchase", "timestamp": str(T0),
         "value": "2"},
        {"user_id": "u1", "item_id": "i1", "event_type": "purchase", "timestamp": str(T0),
         "value": "2"},  # exact duplicate
        {"user_id": None, "item_id": "i1", "event_type": "view", "timestamp": str(T0)},
        {"user_id": "u2", "item_id": None, "event_type": "view", "timestamp": str(T0)},
        {"user_id": "u2", "item_id": "i1", "event_type": "wishlist", "timestamp": str(T0)},
        {"user_id": "u2", "item_id": "i1", "event_type": "wishlist", "timestamp": str(T0 + 1)},
        {"user_id": "u2", "item_id": "i1", "event_type": "hover", "timestamp": str(T0)},
        {"user_id": "u2", "item_id": "i1", "event_type": "view", "timestamp": "yesterday"},
        {"user_id": "u2", "item_id": "i1", "event_type": "rating", "timestamp": str(T0)},
        {"user_id": "u2", "item_id": "ghost", "event_type": "view", "timestamp": str(T0)},
        {"user_id": "u3", "item_id": "i1", "event_type": "Add To Cart",
         "timestamp": "2026-01-02T10:00:00+02:00"},
        {"user_id": "u4", "item_id": "i1", "event_type": "cart", "timestamp": str(T0)},
        {"user_id": "gone", "item_id": "i1", "event_type": "view", "timestamp": str(T0)},
    ]
    rows += [{"user_id": "bot", "item_id": "i1", "event_type": "view",
              "timestamp": str(T0 + s)} for s in range(20)]
    # The API's checks (EventWeights.checks), here against a clock at T0 + 30 days:
    rows += [
        {"user_id": "u5", "item_id": "i1", "event_type": "view", "timestamp": "2030-01-01"},
        {"user_id": "u5", "item_id": "i1", "event_type": "view",
         "timestamp": str((T0 + 5) * 1000)},  # epoch milliseconds: kept, as T0 + 5
        {"user_id": "u5", "item_id": "i1", "event_type": "view", "timestamp": "1e20"},
        {"user_id": "u5", "item_id": "i1", "event_type": "rating", "timestamp": str(T0),
         "value": "1e308"},
        {"user_id": "u5", "item_id": "i1", "event_type": "purchase", "timestamp": str(T0),
         "value": "-3"},
        {"user_id": "u5", "item_id": "i1", "event_type": "view", "timestamp": str(T0),
         "value": "abc"},
        {"user_id": "u5", "item_id": "i1", "event_type": "view", "timestamp": str(T0 - 400 * DAY)},
    ]
    items = pd.DataFrame({"item_id": ["i1", "i2"]})
    users = pd.DataFrame({"user_id": ["gone", "u1"], "consent": ["no", "yes"]})
    events = EventWeights.model_validate({"checks": {"retention_days": 365}})
    data = clean(pd.DataFrame(rows), items, users, events,
                 CleaningConfig(max_views_per_minute=10, max_invalid_share=0.5), now=T0 + 30 * DAY)
    r = data.report
    assert r["rows_read"] == 40
    assert r["rows_dropped"] == {
        "missing_ids": 2, "unknown_event_types": 3, "bad_timestamps": 2,
        "timestamps_in_future": 1, "timestamps_before_retention": 1, "values_not_finite": 1,
        "ratings_out_of_scale": 1, "quantities_out_of_range": 1,
        "ratings_without_value": 1, "consent_withdrawn": 1, "exact_duplicates": 1,
        "items_missing_from_catalog": 1, "bot_like_users": 20,
    }
    assert r["rows_dropped_by_file"] == {"interactions": r["rows_dropped"]}
    assert r["unknown_event_types"] == {"wishlist": 2, "hover": 1}
    assert r["rows_kept"] == 4 == r["rows_read"] - sum(r["rows_dropped"].values())
    assert data.events.loc[data.events.user_id == "u5", "timestamp"].tolist() == [T0 + 5]
    assert r["bot_users"] == 1
    events = data.events.set_index("user_id")
    assert events.loc["u3", "event_type"] == "add_to_cart"  # aliases and case folded
    assert events.loc["u4", "event_type"] == "add_to_cart"
    assert events.loc["u3", "timestamp"] == T0 + DAY + 8 * 3600  # converted to UTC
    # Purchase of 2 units weighs 10 * (1 + ln 2).
    assert np.isclose(events.loc["u1", "weight"], 10 * (1 + np.log(2)))
    assert list(data.opted_out) == ["gone"]


def test_timestamps_in_every_form() -> None:
    values = pd.Series(["2026-01-01T00:00:00Z", "1767225600", "2026-01-01 00:00:00",
                        "2026-01-01", "1767225600.4", "1767225600000", "not a time", None,
                        "1767225600000000", "-5"])
    parsed = parse_timestamps(values)
    assert list(parsed[:6]) == [T0] * 6  # epoch milliseconds are recognised
    assert parsed[6:].isna().all()  # microseconds and negative numbers are not
    assert list(parse_timestamps(pd.Series([T0, T0 + 1]))) == [T0, T0 + 1]
    assert list(parse_timestamps(pd.Series([T0 * 1000.0]))) == [T0]
    datetimes = pd.Series(pd.to_datetime(["2026-01-01T00:00:00Z"], utc=True))
    assert list(parse_timestamps(datetimes)) == [T0]


def test_rating_weight_follows_the_stars() -> None:
    rows = [{"user_id": "u", "item_id": f"i{s}", "event_type": "rating", "timestamp": T0,
             "value": s} for s in (1, 3, 5)]
    data = clean(pd.DataFrame(rows), None, None, EventWeights(), CleaningConfig())
    weights = dict(zip(data.events["item_id"], data.events["weight"], strict=True))
    assert weights == {"i1": 2.0 * (1 - 2.5), "i3": 2.0 * 0.5, "i5": 2.0 * 2.5}


def test_a_file_with_too_many_bad_rows_stops_the_run_naming_it(tmp_path) -> None:
    """Past `cleaning.max_invalid_share` of a file's rows, the trainer refuses to train
    on the rest; the report still counts each file's drops."""
    import pytest

    from recsvc.core.errors import InputError
    from training.clean import SOURCE

    good = [{"user_id": f"u{i}", "item_id": "i1", "event_type": "view", "timestamp": T0,
             SOURCE: 0} for i in range(40)]
    bad = [{"user_id": "u1", "item_id": "i1", "event_type": "view", "timestamp": T0,
            SOURCE: 1}] * 18 + [{"user_id": "u1", "item_id": "i1", "event_type": "view",
                                 "timestamp": "2030-01-01T00:00:00Z", SOURCE: 1}] * 2
    frame = pd.DataFrame(good + bad)
    with pytest.raises(InputError, match=r"interactions file b\.csv: 2 of its 20 rows are "
                                         r"invalid \(timestamps in future 2\)"):
        clean(frame, None, None, EventWeights(), CleaningConfig(), ["a.csv", "b.csv"],
              now=T0)
    data = clean(frame, None, None, EventWeights(), CleaningConfig(max_invalid_share=0.1),
                 ["a.csv", "b.csv"], now=T0)
    assert data.report["rows_dropped_by_file"] == {
        "b.csv": {"timestamps_in_future": 2, "exact_duplicates": 18}}  # a.csv has u1 too


def test_an_event_recorded_twice_under_one_id_counts_once() -> None:
    rows = [{"user_id": "u", "item_id": "i1", "event_type": "view", "timestamp": T0 + s,
             "event_id": eid} for s, eid in ((0, "a"), (5, "a"), (6, "b"), (7, None),
                                             (8, None))]
    data = clean(pd.DataFrame(rows), None, None, EventWeights(), CleaningConfig(), now=T0)
    assert data.report["rows_dropped"] == {"duplicate_event_ids": 1}
    assert data.report["rows_kept"] == 4


def test_robots_are_judged_by_how_they_browse_not_by_how_much_they_did() -> None:
    """A burst of views within a minute, or a day of crawling, is a robot; a customer of
    a year and a rater of hundreds of films in one evening are not (the old rule, events
    per active day, dropped the heaviest rater of a ratings set)."""
    rows = []
    rows += [{"user_id": "loyal", "item_id": f"i{d % 50}", "event_type": "view",
              "timestamp": T0 + d * 3 * 3600} for d in range(3000)]  # 375 days, 8 a day
    rows += [{"user_id": "rater", "item_id": f"i{k}", "event_type": "rating",
              "timestamp": T0 + k // 20, "value": 4} for k in range(568)]  # 20 a second
    rows += [{"user_id": "burst", "item_id": f"i{k % 50}", "event_type": "view",
              "timestamp": T0 + k // 2} for k in range(100)]  # 100 views in 50 s
    rows += [{"user_id": "crawler", "item_id": f"i{k % 97}", "event_type": "view",
              "timestamp": T0 + k * 40} for k in range(1500)]  # 1,500 in 17 hours
    data = clean(pd.DataFrame(rows), None, None, EventWeights(), CleaningConfig(),
                 now=T0 + 400 * DAY)
    report = data.report
    assert report["bot_users"] == 2
    assert report["bots"] == {
        "burst": {"users": 1, "events": 100, "examples": ["burst"]},
        "crawl": {"users": 1, "events": 1500, "examples": ["crawler"]}}
    assert set(data.events["user_id"].unique()) == {"loyal", "rater"}
