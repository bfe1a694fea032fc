"""New items on day one: `PUT /items/{id}` creates an item the model was not trained on,
and it is recommendable at once: related items by its content, a place in the lists of
the shoppers whose history matches it, the new-arrival boost and exploration."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from recsvc.cli import main
from tests.test_service import KEY, start_service, train_planted

PAN = {"title": "steel pan skillet pro", "description": "pan skillet for the kitchen",
       "category": "Kitchen > Cookware", "brand": "abrand", "price": 24, "stock": 5,
       "tags": ["new", "pro"]}


@pytest.fixture
def shop(tmp_path: Path):
    store, _ = train_planted(tmp_path)
    rules = tmp_path / "rules.toml"
    rules.write_text("[new_arrivals]\nexplore = 0.0\n")
    svc = start_service(tmp_path, store, rules_file=rules, redis_url=None)
    yield svc, rules, store
    svc.http.close()
    svc.server.stop()


def explored_total(svc) -> float:  # noqa: ANN001
    """The counter, process-wide (every app of the test process shares the registry)."""
    line = next(line for line in svc.get("/metrics").text.splitlines()
                if line.startswith("recsvc_explored_total "))
    return float(line.split()[1])


def put(svc, item: str, body: dict, method: str = "PUT"):  # noqa: ANN001, ANN201
    return svc.http.request(method, f"/items/{item}", json=body, headers=KEY)


def test_a_new_item_is_recommended_at_once_to_whom_it_suits(shop, tmp_path: Path) -> None:
    svc, _, store = shop
    cached = svc.items("/recommend", user_id="au0", n=5)  # a kitchen shopper, cached
    assert "NEW1" not in cached
    assert svc.get("/similar/NEW1").status_code == 404
    created = put(svc, "NEW1", PAN)
    assert created.status_code == 200, created.text
    assert created.json()["item_id"] == "NEW1" and created.json()["created_at"] > 0
    # Related items by its content: the kitchen's.
    related = svc.items("/similar/NEW1", n=5)
    assert {i[0] for i in related} == {"a"}
    # In the kitchen shoppers' lists (after their 4 planted items), not the gardeners'.
    for user in ("au0", "au3", "au7"):
        body = svc.get("/recommend", user_id=user, n=5).json()["items"]
        new = [i for i in body if i["item_id"] == "NEW1"]
        assert new and {"code": "new_arrival"} in new[0]["reasons"], (user, body)
    for user in ("bu0", "bu3"):
        assert "NEW1" not in svc.items("/recommend", user_id=user, n=5)
    # Another worker on the same state directory serves it too.
    other = start_service(tmp_path, store, redis_url=None)
    try:
        assert "NEW1" in other.items("/recommend", user_id="au0", n=5)
    finally:
        other.http.close()
        other.server.stop()
    # Out of stock: gone at once; back in stock: back.
    assert put(svc, "NEW1", {"stock": 0}, "PATCH").json()["stock"] == 0
    assert "NEW1" not in svc.items("/recommend", user_id="au0", n=20)
    assert put(svc, "NEW1", {"stock": 3}, "PATCH").status_code == 200
    assert "NEW1" in svc.items("/recommend", user_id="au0", n=5)
    # Its own events count from now on.
    posted = svc.http.post("/events", json=[{"user_id": "bu0", "item_id": "NEW1",
                                             "event_type": "view"}])
    assert posted.json()["accepted"] == 1


def test_what_cannot_be_created_or_changed(shop) -> None:
    svc, _, _ = shop
    missing = put(svc, "NEW2", {"price": 3})
    assert missing.status_code == 404 and "title, description or category" in missing.text
    trained = put(svc, "a1", {"title": "renamed"}, "PATCH")
    assert trained.status_code == 422 and "next training" in trained.text
    assert put(svc, "NEW2", {**PAN, "stock": -1}).status_code == 422
    assert svc.http.put("/items/NEW2", json=PAN).status_code == 401  # operators only


def test_exploration_shows_a_new_arrival_and_is_measured(shop) -> None:
    svc, rules, _ = shop
    explored_before = explored_total(svc)
    assert put(svc, "NEW1", PAN).status_code == 200
    assert "NEW1" not in svc.items("/recommend", user_id="bu0", n=5)  # a gardener
    answer = svc.http.put("/admin/rules", content="[new_arrivals]\nexplore = 1.0\n",
                          headers=KEY)
    assert answer.status_code == 200
    body = svc.get("/recommend", user_id="bu0", n=5).json()
    assert body["items"][-1]["item_id"] == "NEW1"
    assert {"code": "new_arrival"} in body["items"][-1]["reasons"]
    assert svc.items("/recommend", user_id="au0", n=5).count("NEW1") == 1  # shown already
    svc.http.post("/events", json=[{"user_id": "bu0", "item_id": "NEW1",
                                    "event_type": "click",
                                    "recommendation_id": body["recommendation_id"]}])
    deadline = time.monotonic() + 30
    log = svc.state_dir / "impressions"
    while not [json.loads(line) for f in log.glob("*.jsonl")
               for line in f.read_text().splitlines() if '"explored"' in line]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    lines = [json.loads(line) for f in sorted(log.glob("*.jsonl"))
             for line in f.read_text().splitlines()]
    assert [line["explored"] for line in lines if "explored" in line] == ["NEW1"]
    assert explored_total(svc) == explored_before + 1
    out = svc.state_dir / "report"
    assert main(["report", "--model-root", str(svc.root), "--state-dir", str(svc.state_dir),
                 "--out", str(out), "--no-plots", "--rules-file", str(rules)]) == 0
    exploration = json.loads((out / "report.json").read_text())["exploration"]
    assert exploration["lists"] == 1 and exploration["clicks"] == 1
    assert exploration["ctr"] == 1.0 and exploration["items"] == 1


def test_the_nightly_training_learns_the_created_items(tmp_path: Path) -> None:
    """`recsvc retrain` adds the items created through the API to the catalog it trains
    on (the shop's catalog file may not list them yet), so their events train them."""
    import pandas as pd

    from recsvc.stores.catalog import CatalogOverrides
    from training.retrain import with_created_items

    overrides = CatalogOverrides(tmp_path / "catalog_overrides.json")
    overrides.update("NEW1", {**{k: v for k, v in PAN.items() if k != "tags"},
                              "tags": "new|pro", "created_at": 1_767_225_600.0})
    overrides.update("a1", {"in_stock": False})  # a trained item's state: not a new row
    items = pd.DataFrame({"item_id": ["a1", "a2"], "title": ["pan", "pot"],
                          "category": ["Kitchen", "Kitchen"], "price": [3.0, 4.0]})
    merged = with_created_items(items, tmp_path / "catalog_overrides.json")
    assert merged["item_id"].tolist() == ["a1", "a2", "NEW1"]
    new = merged.iloc[2]
    assert (new["title"], new["category"], new["price"]) == (PAN["title"], PAN["category"],
                                                             24)
    # Listed by the shop's catalog since: its row is the shop's.
    listed = pd.concat([items, pd.DataFrame({"item_id": ["NEW1"], "title": ["shop's"]})])
    assert with_created_items(listed, tmp_path / "catalog_overrides.json")[
        "title"].tolist()[-1] == "shop's"
