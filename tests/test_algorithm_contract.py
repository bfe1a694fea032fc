"""An algorithm is its own file and a line in the registry, nothing more: a test-only
algorithm, registered here, is configured, fitted, tuned, blended, saved, loaded,
served and explained by code that has never heard of it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import pytest
from pydantic import Field

from recsvc.core.algorithms import REGISTRY
from recsvc.core.algorithms.base import (
    AlgorithmParams,
    ArraySink,
    Reason,
    Recommender,
    TrainingData,
    UserBatch,
)
from recsvc.core.algorithms.forms import Form, SharedRows
from recsvc.core.engine import load_engine
from recsvc.core.lists import RecommendQuery, shopper_list
from recsvc.core.model import load_model, lookup
from recsvc.core.policy.filters import filter_stage
from recsvc.core.policy.rules import DEFAULT_VARIANT, RulesFile
from recsvc.core.ranking.packed import unpack
from tests.conftest import quick_config
from training.generate import StoreSpec, generate_store
from training.pipeline import train
from training.progress import Progress

if TYPE_CHECKING:
    from recsvc.core.artifacts import StoredVersion


class FavouriteParams(AlgorithmParams):
    item: str = ""
    boost: float = Field(1.0, gt=0)


class Favourite(Recommender):
    """Everyone's favourite is one configured item; the rest rank by item number."""

    name = "favourite"
    Params = FavouriteParams
    form = Form.SHARED_ROWS
    reason = Reason.TRENDING
    start_weight = 0.5
    params: FavouriteParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.row = np.zeros(0, dtype=np.float32)

    @classmethod
    def draw(cls, rng: np.random.Generator, params: AlgorithmParams) -> dict[str, Any]:
        return {"boost": float(rng.uniform(1.0, 2.0))}

    def fit(self, data: TrainingData) -> Self:
        assert data.items is not None
        ids = np.sort(data.items["item_id"].to_numpy(dtype=str))
        self.row = -np.arange(data.n_items, dtype=np.float32) / data.n_items
        favourite = lookup(ids, [self.params.item])[0]
        if favourite >= 0:
            self.row[favourite] = self.params.boost
        return self

    def score(self, batch: UserBatch) -> np.ndarray:
        return self.score_compact(batch).dense()

    def score_compact(self, batch: UserBatch) -> SharedRows:
        return SharedRows(self.row[None, :], np.zeros(len(batch), dtype=np.int64))

    def add_items(self, rows: list[dict[str, Any]]) -> Self:
        out = self._copy()
        out.row = np.concatenate([self.row, np.full(len(rows), -1.0, np.float32)])
        return out

    def save(self, out: ArraySink, prefix: str) -> None:
        out.save_array(f"{prefix}.row", self.row)

    def restore(self, stored: StoredVersion, prefix: str) -> None:
        self.row = stored.array(f"{prefix}.row")


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(REGISTRY, Favourite.name, Favourite)


def test_a_registered_algorithm_is_fitted_saved_served_and_explained(
        tmp_path: Path, planted, registered) -> None:
    config = quick_config(tmp_path / "m", **planted)
    config.model.set("favourite", item="b3")
    config.blend.weights = {"favourite": 20.0}  # it decides every list
    train(config, Progress(quiet=True))

    model = load_model(tmp_path / "m")
    assert isinstance(model.components["favourite"], Favourite)
    assert model.components["favourite"].params.item == "b3"
    assert model.manifest is not None and "favourite" in model.manifest.algorithms
    assert model.weights["favourite"] == 20.0
    engine = load_engine(tmp_path / "m", None, RulesFile())
    live = engine.model.item_in_stock.astype(bool)
    stage = filter_stage(engine.model, engine.rules, live, engine.model.item_price)
    value, _ = shopper_list(engine, RecommendQuery(user_id="au0", n=3), DEFAULT_VARIANT, [],
                            live, stage.allowed, 3, 1_800_000_000.0, 30.0)
    packed = unpack(value)
    assert packed is not None
    first = engine.renderer.items(packed)[0]
    assert first["item_id"] == "b3"
    assert {"code": "trending"} in first["reasons"]  # the reason it declares


def test_a_registered_algorithm_takes_part_in_tuning(tmp_path: Path, registered) -> None:
    paths = generate_store(StoreSpec(users=600, items=120, events=20_000, seed=6),
                           tmp_path / "s", Progress(quiet=True))
    config = quick_config(tmp_path / "m", **paths)
    config.model.algorithms = ["popularity", "favourite"]
    config.tuning.enabled = True
    config.tuning.time_budget_s = 10_000
    config.tuning.max_trials = 2 + 7 + 1  # through the decays, then one draw
    result = train(config, Progress(quiet=True))
    tuning = result.manifest.tuning
    assert tuning.skipped is None
    assert "favourite" in tuning.best["weights"]
    drawn = tuning.trials[-1]["params"]["favourite"]
    assert 1.0 <= drawn["boost"] <= 2.0 and tuning.trials[0]["params"]["favourite"] == {}
