"""Business rules and A/B variants: resolved against a model, applied through HTTP."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from recsvc.core.errors import InputError
from recsvc.core.model import load_model
from recsvc.core.policy.rules import RulesFile, load_rules, resolve
from tests.test_service import start_service, train_planted

RULES = """
[[boost]]
category = "Garden"
amount = 3.0
[[bury]]
item = "a1"
amount = 50.0
[pin]
items = ["b9"]
[exclude]
items = ["a2"]
[diversity]
max_per_category = 2

[variants.control]
share = 50
[variants.popular_first]
share = 50
weights = { popularity = 8.0 }
"""


@pytest.fixture
def ruled(tmp_path: Path):
    store, _ = train_planted(tmp_path)
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    svc = start_service(tmp_path, store, rules_file=rules)
    yield svc
    svc.http.close()
    svc.server.stop()


def test_rules_shape_every_list(ruled) -> None:
    for user in ("au0", "au5", "bu3", "stranger"):
        body = ruled.get("/recommend", user_id=user, n=4).json()
        ids = [i["item_id"] for i in body["items"]]
        assert ids[0] == "b9"  # pinned first
        assert body["items"][0]["reasons"][0] == {"code": "promoted"}
        assert "a2" not in ids  # excluded everywhere
        assert "a1" not in ids  # buried far down
        categories = Counter(i[0] for i in ids)  # one category per planted group
        assert categories == {"a": 2, "b": 2}  # diversity cap
        # Two categories cannot fill six places two at a time: six items all the same.
        six = ruled.items("/recommend", user_id=user, n=6)
        assert len(six) == 6 and set(ids) <= set(six) and six[0] == "b9" and "a2" not in six
    # The Garden boost lifts garden items into a kitchen shopper's list.
    assert any(i.startswith("b") for i in ruled.items("/recommend", user_id="au0", n=4))
    assert "a2" not in ruled.items("/similar/a3", n=20)


def test_variants_are_stable_echoed_and_differ(ruled) -> None:
    seen = {}
    for i in range(60):
        user = f"shopper{i}"
        variant = ruled.get("/recommend", user_id=user).json()["variant"]
        assert ruled.get("/recommend", user_id=user).json()["variant"] == variant
        seen[user] = variant
    counts = Counter(seen.values())
    assert set(counts) == {"control", "popular_first"}
    assert min(counts.values()) >= 15  # about half each
    metrics = ruled.get("/metrics").text
    assert 'recsvc_recommendations_total{variant="popular_first"}' in metrics
    assert ruled.get("/model").json()["variants"] == ["control", "popular_first"]


def test_tag_rules_and_bad_rules_files(tmp_path: Path) -> None:
    train_planted(tmp_path)
    model = load_model(tmp_path / "m")
    model.tag_names = np.array(["sale"])
    tags = np.zeros((model.n_items, 1), dtype=np.int8)
    tags[model.item_index(["a4", "b4"]), 0] = 1
    model.item_tags = sp.csr_matrix(tags)
    resolved = resolve(RulesFile.model_validate(
        {"exclude": {"tags": ["SALE"]}, "boost": [{"tag": "sale", "amount": 2}]}), model)
    assert set(model.item_ids[~resolved.allowed]) == {"a4", "b4"}
    assert set(model.item_ids[resolved.bias > 0]) == {"a4", "b4"}
    for text, message in (("[[boost]]\ncategory='x'\ntag='y'\n", "exactly one"),
                          ("[pin]\nitem = 3\n", "pin.item"),
                          ("[[boost\n", "unreadable")):
        path = tmp_path / "bad.toml"
        path.write_text(text)
        with pytest.raises(InputError, match=message):
            load_rules(path)
    with pytest.raises(InputError, match="not found"):
        load_rules(tmp_path / "missing.toml")
    unknown = RulesFile.model_validate({"variants": {"x": {"share": 1,
                                                           "weights": {"magic": 1.0}}}})
    with pytest.raises(InputError, match="does not have"):
        resolve(unknown, model)


def test_reason_codes_for_new_arrivals_and_repeat_purchases(tmp_path: Path) -> None:
    import time

    from recsvc.core.engine import Engine
    from recsvc.core.ranking.explain import BOUGHT_BEFORE, NEW, explain_batch
    from recsvc.core.ranking.packed import SEEN_BEFORE

    train_planted(tmp_path)
    model = load_model(tmp_path / "m")
    engine = Engine.build(model, RulesFile())
    now = time.time()
    model.item_created_at = model.item_created_at.copy()
    new = int(model.item_index(["a_new"])[0])
    model.item_created_at[new] = int(now - 86_400)  # arrived yesterday
    picks = np.array([[new, int(model.item_index(["a1"])[0])]])
    contributions = {"history": np.array([[0.0, 2.0]], np.float32),
                     "popularity": np.array([[0.0, 0.0]], np.float32)}
    bought = sp.csr_matrix(([True], ([0], [picks[0, 1]])), shape=(1, model.n_items))
    codes, anchors = explain_batch(engine.model, picks, contributions, np.zeros((1, 0), int),
                                   np.zeros((1, 0), bool), bought, bought,
                                   np.zeros((1, 0), int), now, 30)
    assert codes[0, 0, 0] == NEW
    assert codes[0, 1, 0] == BOUGHT_BEFORE and NEW not in codes[0, 1]
    assert (anchors == -1).all()
    # The same pick, not bought (only viewed): its own past carries it, "seen" not "bought".
    nothing = sp.csr_matrix((1, model.n_items), dtype=bool)
    codes, _ = explain_batch(engine.model, picks, contributions, np.zeros((1, 0), int),
                             np.zeros((1, 0), bool), nothing, bought, np.zeros((1, 0), int),
                             now, 30)
    assert codes[0, 1, 0] == SEEN_BEFORE
    # Not touched at all (a search only matched it): not "seen" either.
    codes, _ = explain_batch(engine.model, picks, contributions, np.zeros((1, 0), int),
                             np.zeros((1, 0), bool), nothing, nothing, np.zeros((1, 0), int),
                             now, 30)
    assert SEEN_BEFORE not in codes[0, 1] and BOUGHT_BEFORE not in codes[0, 1]


def test_strongest_anchor_is_the_past_item_with_the_largest_ease_weight(tmp_path: Path) -> None:
    from recsvc.core.engine import Engine
    from recsvc.core.ranking.explain import strongest_anchor

    train_planted(tmp_path)
    model = load_model(tmp_path / "m")
    assert "ease" in model.components
    weights = np.asarray(model.components["ease"].weights)
    engine = Engine.build(model, RulesFile())
    rng = np.random.default_rng(0)
    n = model.n_items
    picks = rng.integers(0, n, (6, 9))
    picks[0, 5:] = -1  # a short list
    anchors = np.full((6, 4), -1)
    for b, m in enumerate([4, 2, 1, 0, 3, 4]):  # padded rows, one without any past item
        anchors[b, :m] = rng.choice(n, m, replace=False)
    best, has = strongest_anchor(engine.model, picks, anchors)
    for b in range(6):
        valid = anchors[b][anchors[b] >= 0]
        for k in range(9):
            if picks[b, k] < 0 or valid.size == 0:
                assert not has[b, k]
                continue
            column = weights[valid, picks[b, k]]
            assert has[b, k] == (column.max() > 0)
            if has[b, k]:
                assert best[b, k] == int(np.argmax(column))


def test_anchors_are_the_session_then_the_most_confident_past_items() -> None:
    from recsvc.core.ranking.anchors import MAX_ANCHORS
    from recsvc.core.ranking.anchors import anchor_candidates as _anchors

    history = sp.csr_matrix(np.array([[0, 3, 1, 3, 0, 2], [0, 0, 0, 0, 0, 0]], np.float32))
    anchors, from_session = _anchors(history, [np.array([5])], True)
    # The session's item first; then by confidence (ties: item order), 5 not twice.
    assert anchors[0].tolist() == [5, 1, 3, 2]
    assert from_session[0].tolist() == [True, False, False, False]
    assert (anchors[1] == -1).all() and not from_session[1].any()
    many = sp.csr_matrix(np.arange(1, 31, dtype=np.float32)[None, :])
    assert _anchors(many, [], True)[0][0].tolist() == list(range(29, 29 - MAX_ANCHORS, -1))
    assert _anchors(history, [], False)[0].shape == (2, 0)  # not personal: no past


def test_variants_start_and_stop_without_a_restart(tmp_path: Path) -> None:
    import time

    from tests.test_service import start_service, train_planted

    store, _ = train_planted(tmp_path)
    rules = tmp_path / "rules.toml"
    rules.write_text("[variants.control]\nshare = 1\n")
    svc = start_service(tmp_path, store, rules_file=rules)
    users = [f"{g}u{u}" for g in "ab" for u in range(30)]

    def variants() -> set[str]:
        return {svc.get("/recommend", user_id=u, n=2).json()["variant"] for u in users}

    def until(wanted: set[str]) -> None:
        deadline = time.monotonic() + 30  # every worker looks each reload interval
        while variants() != wanted:
            assert time.monotonic() < deadline, variants()
            time.sleep(0.1)

    def replace(text: str) -> None:  # as docs/service.md asks: a new file, then a rename
        new = rules.with_suffix(".new")
        new.write_text(text)
        new.replace(rules)

    try:
        assert variants() == {"control"}
        replace("[variants.control]\nshare = 1\n[variants.trial]\nshare = 1\n"
                "weights = { popularity = 5.0 }\n")
        until({"control", "trial"})
        assert svc.get("/model").json()["variants"] == ["control", "trial"]
        replace("[variants.control]\nshare = 1\n[variants.trial]\nshare = -1\n")
        time.sleep(1.5)  # a file that does not load is refused; the rules served stay
        assert variants() == {"control", "trial"}
        # Even written in place, in two steps (an editor's save): never half applied.
        with open(rules, "w") as f:
            f.write("[variants.control]\n")
            f.flush()
            time.sleep(0.05)
            f.write("share = 1\n")
        until({"control"})  # the trial stopped
    finally:
        svc.http.close()
        svc.server.stop()
