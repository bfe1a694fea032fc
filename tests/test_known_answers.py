"""Known answers on tiny data: the trained model recovers what was planted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsvc.core.algorithms import UserBatch
from recsvc.core.model import load_model
from recsvc.core.ranking.scoring import recommend
from tests.conftest import DAY, T0, planted_seen, quick_config, write_csv
from tests.oracle import rank
from training.pipeline import train
from training.progress import Progress

QUIET = Progress(quiet=True)


def top_ids(model, user_id: str, n: int, **kwargs) -> list[str]:
    users = model.user_index([user_id])
    ranking = recommend(model, model.batch(users), n, **kwargs)
    return [str(model.item_ids[i]) for i in ranking.items[0]]


def test_planted_tastes_are_recovered(tmp_path: Path, planted: dict[str, Path]) -> None:
    result = train(quick_config(tmp_path / "models", **planted), QUIET)
    model = load_model(tmp_path / "models")
    assert model.version == result.version
    for group, other in (("a", "b"), ("b", "a")):
        for u in (0, 7, 13):
            user = f"{group}u{u}"
            seen = set(planted_seen(user))
            top = top_ids(model, user, 4, exclude_seen=True)
            # The 4 unseen items of the user's own group, none of the other group.
            expected = {f"{group}{j}" for j in range(10)} - seen
            if group == "a":
                expected_or_new = expected | {"a_new"}
                assert set(top) <= expected_or_new and len(set(top) & expected) >= 3, top
            else:
                assert set(top) == expected, top
            assert not any(i.startswith(other) for i in top)


def test_each_algorithm_alone_prefers_the_users_group(tmp_path: Path, planted) -> None:
    train(quick_config(tmp_path / "models", **planted), QUIET)
    model = load_model(tmp_path / "models")
    users = model.user_index(["au3"])
    for name in ("cf", "item_knn", "content"):
        ranking = recommend(model, model.batch(users), 4, exclude_seen=True,
                            weights={name: 1.0})
        ids = [str(model.item_ids[i]) for i in ranking.items[0]]
        assert all(i.startswith("a") for i in ids), (name, ids)


def test_new_item_is_recommended_by_content(tmp_path: Path, planted) -> None:
    train(quick_config(tmp_path / "models", **planted), QUIET)
    model = load_model(tmp_path / "models")
    new = int(model.item_index(["a_new"])[0])
    assert model.user_items[:, new].nnz == 0  # no interactions at all
    # A kitchen shopper gets it from content, above every garden item (the top 5 are the
    # 4 kitchen items they have not bought and the new one); a garden shopper does not.
    top = top_ids(model, "au0", 5, exclude_seen=True, weights={"content": 1.0})
    assert "a_new" in top and all(i.startswith("a") for i in top)
    assert "a_new" not in top_ids(model, "bu0", 10, exclude_seen=True,
                                  weights={"content": 1.0})
    # And it has content neighbours on a product page from its attributes alone.
    similar = model.components["content"].similar(np.array([new]))[0]
    similar[new] = -1
    best = [str(model.item_ids[i]) for i in np.argsort(-similar)[:5]]
    assert all(i.startswith("a") for i in best)


def test_anonymous_session_is_scored_from_recent_items(tmp_path: Path, planted) -> None:
    train(quick_config(tmp_path / "models", **planted), QUIET)
    model = load_model(tmp_path / "models")
    import scipy.sparse as sp

    viewed = model.item_index(["b1", "b2"])
    history = sp.csr_matrix((np.ones(2, np.float32), ([0, 0], viewed)),
                            shape=(1, model.n_items))
    batch = UserBatch(users=np.array([-1]), history=history)
    ranking = recommend(model, batch, 5, exclude_seen=True)
    ids = [str(model.item_ids[i]) for i in ranking.items[0]]
    assert all(i.startswith("b") for i in ids), ids


def test_refund_cancels_the_purchase(tmp_path: Path) -> None:
    rows = [
        {"user_id": "u1", "item_id": "x", "event_type": "purchase", "timestamp": T0},
        {"user_id": "u1", "item_id": "x", "event_type": "refund", "timestamp": T0 + DAY},
        {"user_id": "u1", "item_id": "y", "event_type": "purchase", "timestamp": T0},
        {"user_id": "u2", "item_id": "x", "event_type": "purchase", "timestamp": T0},
    ]
    path = write_csv(tmp_path / "i.csv", rows)
    train(quick_config(tmp_path / "m", interactions=path), QUIET)
    model = load_model(tmp_path / "m")
    u1, x, y = model.user_index(["u1"])[0], model.item_index(["x"])[0], model.item_index(["y"])[0]
    assert model.user_items[u1, x] == 0
    assert model.user_items[u1, y] > 0
    assert model.user_items[model.user_index(["u2"])[0], x] > 0


def test_repeat_purchases_add_up_and_old_events_decay(tmp_path: Path) -> None:
    rows = [{"user_id": "u", "item_id": "often", "event_type": "purchase",
             "timestamp": T0 + d * DAY} for d in range(3)]
    rows += [{"user_id": "u", "item_id": "once", "event_type": "purchase",
              "timestamp": T0 + 2 * DAY}]
    rows += [{"user_id": "u", "item_id": "old", "event_type": "purchase",
              "timestamp": T0 + 2 * DAY - 90 * DAY}]
    path = write_csv(tmp_path / "i.csv", rows)
    config = quick_config(tmp_path / "m", interactions=path)
    train(config, QUIET)
    model = load_model(tmp_path / "m")
    u = model.user_index(["u"])[0]
    conf = {i: model.user_items[u, model.item_index([i])[0]] for i in ("often", "once", "old")}
    assert conf["often"] > 2.9 * conf["once"] * 0.97  # three purchases, slightly decayed
    # 90 days at the default 90-day half-life: exactly half the weight.
    assert np.isclose(conf["old"], conf["once"] / 2, rtol=1e-4)


def test_consent_false_user_is_left_out(tmp_path: Path, planted) -> None:
    users = write_csv(tmp_path / "users.csv", [
        {"user_id": "au1", "segment": "s1", "consent": "false"},
        {"user_id": "au2", "segment": "s1", "consent": "true"},
        {"user_id": "cold", "segment": "s2", "consent": "yes"},
    ])
    result = train(quick_config(tmp_path / "m", users=users, **planted), QUIET)
    model = load_model(tmp_path / "m")
    assert model.user_index(["au1"])[0] == -1
    assert model.is_opted_out("au1") and not model.is_opted_out("au2")
    assert model.user_index(["cold"])[0] >= 0  # known attributes, no events
    assert result.manifest.data_quality["rows_dropped"]["consent_withdrawn"] == 12
    # Nothing about au1 is in any array of the model: its items' counts exclude it.
    interactions = pd.read_csv(planted["interactions"])
    kept = interactions[interactions.user_id != "au1"]
    assert model.user_items.nnz == kept.groupby(["user_id", "item_id"]).ngroups


def test_repeat_buying_shop_keeps_bought_items_and_other_shop_excludes_them(
    tmp_path: Path, planted
) -> None:
    result = train(quick_config(tmp_path / "m1", **planted), QUIET)
    assert result.manifest.blend.exclude_seen is True  # nobody buys twice here
    rows = pd.read_csv(planted["interactions"])
    again = rows[rows.event_type == "purchase"].assign(timestamp=lambda f: f.timestamp + 30 * DAY)
    path = write_csv(tmp_path / "again.csv", pd.concat([rows, again]))
    result = train(quick_config(tmp_path / "m2", interactions=path, items=planted["items"]),
                   QUIET)
    assert result.manifest.blend.exclude_seen is False
    assert result.manifest.blend.weights["history"] > 0


def test_popular_per_category_and_per_segment(tmp_path: Path, planted) -> None:
    """Cold-start lists: the most bought items overall, within a category, within a segment."""
    rows = pd.read_csv(planted["interactions"])
    # Everyone in segment 'pro' also buys b9 twice: b9 is the pros' favourite.
    pros = [f"au{u}" for u in range(10)]
    extra = pd.DataFrame([{"user_id": u, "item_id": "b9", "event_type": "purchase",
                           "timestamp": T0 + DAY * k} for u in pros for k in (1, 2)])
    path = write_csv(tmp_path / "e.csv", pd.concat([rows, extra]))
    users = write_csv(tmp_path / "u.csv", [{"user_id": u, "segment": "pro"} for u in pros]
                      + [{"user_id": f"bu{u}", "segment": "home"} for u in range(30)])
    train(quick_config(tmp_path / "m", interactions=path, items=planted["items"], users=users),
          QUIET)
    model = load_model(tmp_path / "m")
    pop = model.components["popularity"]
    counts = pd.concat([rows, extra]).query("event_type == 'purchase'").groupby(
        "item_id").user_id.nunique()
    overall = [str(model.item_ids[i]) for i in np.argsort(-pop.overall, kind="stable")[:1]]
    assert overall == ["b9"] == [counts.idxmax()]
    # Within the kitchen category: only kitchen items, most bought first.
    kitchen = np.flatnonzero(model.category_names == "Kitchen > Cookware")[0]
    ranking = rank(pop.overall[None, :], 3, allowed=model.item_category == kitchen)
    top = [str(model.item_ids[i]) for i in ranking.items[0]]
    assert all(i.startswith("a") for i in top)
    assert counts[top[0]] == counts[[i for i in counts.index if i.startswith("a")]].max()
    # Per segment: the pros' list starts with b9; the home segment's does not need to.
    codes, values = model.user_attributes["segment"]
    pro = list(values).index("pro")
    assert np.argmax(pop.group_scores("segment", pro)) == model.item_index(["b9"])[0]


def test_purchases_are_kept_as_occasions_not_volume(tmp_path: Path) -> None:
    """Each day an item was bought counts once, whatever the quantity or the number of
    order lines, decayed by the age of that day's last purchase; a refunded purchase is
    no occasion; one decayed to nothing still counts as bought."""
    rows = [{"user_id": "u", "item_id": "staple", "event_type": "purchase", "value": 1,
             "timestamp": t} for t in (T0, T0 + DAY + 100, T0 + DAY + 200, T0 + 9 * DAY)]
    rows += [{"user_id": "u", "item_id": "bulk", "event_type": "purchase", "value": 500,
              "timestamp": T0 + 9 * DAY}]
    rows += [{"user_id": "u", "item_id": "back", "event_type": e, "value": 1,
              "timestamp": T0 + 2 * DAY + k} for k, e in enumerate(["purchase", "refund"])]
    rows += [{"user_id": "u", "item_id": "ancient", "event_type": "purchase", "value": 1,
              "timestamp": T0 + 9 * DAY - 20_000 * DAY}]
    rows += [{"user_id": "v", "item_id": i, "event_type": "purchase", "value": 1,
              "timestamp": T0 + 3 * DAY} for i in ("staple", "bulk", "back", "ancient")]
    path = write_csv(tmp_path / "i.csv", rows)
    config = quick_config(tmp_path / "m", interactions=path)
    train(config, QUIET)
    model = load_model(tmp_path / "m")
    u = model.user_index(["u"])[0]
    got = {i: float(model.user_purchases[u, model.item_index([i])[0]])
           for i in ("staple", "bulk", "back", "ancient")}
    half = 90.0  # the default half-life, in days
    # Days 0, 1 (two lines: the later one counts) and 9, the reference time.
    expected = 2 ** (-9 / half) + 2 ** (-(8 * DAY - 200) / DAY / half) + 1.0
    assert got["staple"] == pytest.approx(expected, rel=1e-5)
    assert got["bulk"] == pytest.approx(1.0)  # one order of 500: one occasion
    assert got["back"] == 0.0
    assert 0 < got["ancient"] < 1e-20  # 222 half-lives: below float32, floored


def test_a_fresh_purchase_is_one_more_occasion_in_the_service(tmp_path: Path) -> None:
    """Stored: "a" bought on two days (1.98 decayed occasions), "b" once at the end.
    A fresh purchase of "b", however small its weight, makes it two occasions: b now
    comes first (by confidence it would not: 1 + 0.25 against 1.98); a fresh refund
    takes an item out of the shopper's past."""
    from recsvc.core.engine import load_engine
    from recsvc.core.lists import RecommendQuery, shopper_list
    from recsvc.core.policy.filters import filter_stage
    from recsvc.core.policy.rules import RulesFile, Variant
    from recsvc.core.ranking.packed import unpack

    rows = [{"user_id": "u", "item_id": "a", "event_type": "purchase", "value": 1,
             "timestamp": t} for t in (T0, T0 + DAY)]
    rows += [{"user_id": "u", "item_id": "b", "event_type": "purchase", "value": 1,
              "timestamp": T0 + 2 * DAY}]
    rows += [{"user_id": f"o{k}", "item_id": i, "event_type": "purchase", "value": 1,
              "timestamp": T0 + DAY} for k in range(3) for i in ("a", "b", "c", "d")]
    config = quick_config(tmp_path / "m", interactions=write_csv(tmp_path / "i.csv", rows))
    train(config, QUIET)
    engine = load_engine(tmp_path / "m", None, RulesFile())
    model = engine.model
    live = model.item_in_stock.astype(bool)
    allowed = filter_stage(model, engine.rules, live, model.item_price).allowed
    own_past = Variant(name="history", weights={"history": 1.0}, exclude_seen=False)

    def first_two(fresh: list[tuple[str, float, str]]) -> list[str]:
        value, _ = shopper_list(engine, RecommendQuery(user_id="u", n=4), own_past, fresh,
                                live, allowed, 4, T0 + 3 * DAY, 30)
        packed = unpack(value)
        assert packed is not None
        return [item["item_id"] for item in engine.renderer.items(packed)][:2]

    assert first_two([]) == ["a", "b"]
    assert first_two([("b", 0.25, "purchase")]) == ["b", "a"]
    assert first_two([("a", -100.0, "refund")])[0] == "b"


def test_fresh_purchases_and_refunds_update_only_the_items_they_touch(tmp_path: Path) -> None:
    """`_purchases` recomputes only the freshly touched items; its answer equals the
    whole-catalog definition: stored kept purchases (1 each) plus purchases minus
    refunds, above 0 kept; occasions as stored plus one for an item bought since."""
    from recsvc.core.lists import _purchases

    rng = np.random.default_rng(5)
    rows = [{"user_id": f"u{u}", "item_id": f"i{i}", "event_type": "purchase", "value": 1,
             "timestamp": T0 + int(d) * DAY}
            for u in range(6) for i, d in zip(rng.choice(30, 8, replace=False),
                                              rng.integers(0, 20, 8), strict=True)]
    config = quick_config(tmp_path / "m", interactions=write_csv(tmp_path / "i.csv", rows))
    train(config, QUIET)
    model = load_model(tmp_path / "m")
    kinds = ["purchase", "refund", "view", "add_to_cart"]
    for trial in range(40):
        user = int(rng.integers(-1, model.n_users))
        fresh = [(int(rng.integers(0, model.n_items)), str(rng.choice(kinds)))
                 for _ in range(int(rng.integers(0, 12)))]
        bought, occasions = _purchases(model, user, fresh)
        stored = model.occasion_rows(np.array([user])).toarray()[0]
        net = (stored > 0).astype(int)
        again = np.zeros_like(stored)
        for item, kind in fresh:
            net[item] += {"purchase": 1, "refund": -1}.get(kind, 0)
            again[item] = 1.0 if kind == "purchase" else again[item]
        assert bought.toarray()[0].tolist() == (net > 0).tolist(), trial
        assert np.allclose(occasions.toarray()[0], np.where(net > 0, stored + again, 0)), trial
