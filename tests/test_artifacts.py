"""The model format: round trip, checksums, the typed manifest, schema upgrades, atomic
publish, pruning."""

from __future__ import annotations

import json
import mmap
import os
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from recsvc.core.artifacts import (
    VersionWriter,
    current_version,
    list_versions,
    open_version,
    publish,
)
from recsvc.core.errors import ModelError
from recsvc.core.lifecycle import State, mark, prune, rollback, state_of
from recsvc.core.model import load_model
from recsvc.core.ranking.scoring import recommend
from tests.conftest import empty_layout, minimal_card, quick_config
from training.pipeline import train
from training.progress import Progress


def write_version(root: Path, value: float = 1.0) -> str:
    with VersionWriter(root) as writer:
        writer.save_array("weights", np.full(3, value, dtype=np.float32))
        writer.save_array("ids", np.array(["a", "bb", "ccc"]))
        return writer.commit(minimal_card(), empty_layout()).version


def test_round_trip_with_checksums(tmp_path: Path) -> None:
    version = write_version(tmp_path)
    publish(tmp_path, version)
    stored = open_version(tmp_path)
    assert stored.version == version == current_version(tmp_path)
    assert stored.manifest.inputs == {"note": "test"}
    np.testing.assert_array_equal(stored.array("weights"), np.ones(3, np.float32))
    assert list(stored.array("ids")) == ["a", "bb", "ccc"]
    weights = stored.array("weights")  # memory-mapped, not copied: a view of the mapping
    assert isinstance(weights.base, (np.memmap, mmap.mmap))
    files = stored.manifest.files
    assert set(files) == {"weights.npy", "ids.npy"}
    assert all(len(meta.sha256) == 64 for meta in files.values())


def test_object_arrays_are_refused(tmp_path: Path) -> None:
    with VersionWriter(tmp_path) as writer, pytest.raises(TypeError, match="pickle"):
        writer.save_array("bad", np.array([{"a": 1}], dtype=object))


def test_corrupt_file_is_refused(tmp_path: Path) -> None:
    version = write_version(tmp_path)
    path = tmp_path / version / "weights.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="checksum mismatch in weights.npy"):
        open_version(tmp_path, version)


def test_missing_file_foreign_and_future_schema_are_refused(tmp_path: Path) -> None:
    version = write_version(tmp_path)
    manifest_path = tmp_path / version / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**manifest, "schema_version": 99}))
    with pytest.raises(ModelError, match="schema version 99 is not supported"):
        open_version(tmp_path, version)
    manifest_path.write_text(json.dumps({**manifest, "format": "something-else"}))
    with pytest.raises(ModelError, match="not a recsvc model"):
        open_version(tmp_path, version)
    manifest_path.write_text("{not json")
    with pytest.raises(ModelError, match="unreadable manifest"):
        open_version(tmp_path, version)
    manifest_path.write_text(json.dumps(manifest))
    (tmp_path / version / "ids.npy").unlink()
    with pytest.raises(ModelError, match="ids.npy is missing"):
        open_version(tmp_path, version)
    with pytest.raises(ModelError, match="no model version 'nope'"):
        open_version(tmp_path, "nope")
    with pytest.raises(ModelError, match="no current model"):
        open_version(tmp_path / "empty")


def test_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    first = write_version(tmp_path)
    publish(tmp_path, first)
    with pytest.raises(RuntimeError), VersionWriter(tmp_path) as writer:
        writer.save_array("weights", np.zeros(3))
        raise RuntimeError("crash mid-write")
    assert list_versions(tmp_path) == [first]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")] == []
    assert current_version(tmp_path) == first


def test_prune_keeps_current_and_the_newest_promoted_and_drops_rejects_first(
        tmp_path: Path) -> None:
    """Rejected and failed candidates go first and do not count towards `keep`; the
    version being served is never removed, whatever its age."""
    versions = []
    for i in range(7):
        versions.append(write_version(tmp_path, float(i)))
        time.sleep(0.001)
    versions.sort()
    states = [State.PROMOTED, State.PROMOTED, State.REJECTED, State.PROMOTED,
              State.FAILED, State.REJECTED, State.CANDIDATE]
    for version, state in zip(versions, states, strict=True):
        mark(tmp_path, version, state)
    publish(tmp_path, versions[0])  # an operator rolled back to the oldest
    stale = tmp_path / ".tmp-crashed"
    stale.mkdir()
    old = time.time() - 3 * 24 * 3600
    os.utime(stale, (old, old))
    fresh = tmp_path / ".tmp-running"
    fresh.mkdir()
    removed = prune(tmp_path, keep=2)
    # Kept: current (0), the newest two promoted (1, 3), the candidate in progress (6).
    assert sorted(removed) == [versions[2], versions[4], versions[5]]
    assert list_versions(tmp_path) == [versions[0], versions[1], versions[3], versions[6]]
    assert not stale.exists() and fresh.exists()  # a running writer's directory survives


def test_rollback_goes_to_the_previous_promoted_version_only(tmp_path: Path) -> None:
    first, rejected, current = sorted(write_version(tmp_path, float(i)) for i in range(3))
    mark(tmp_path, first, State.PROMOTED)
    mark(tmp_path, rejected, State.REJECTED, metric="ndcg@10", candidate=0.1, baseline=0.2)
    mark(tmp_path, current, State.PROMOTED)
    publish(tmp_path, current)
    assert rollback(tmp_path) == first  # the rejected one in between is skipped
    assert current_version(tmp_path) == first
    with pytest.raises(ModelError, match="never promoted .*rejected.*--force"):
        rollback(tmp_path, rejected)
    assert current_version(tmp_path) == first
    assert rollback(tmp_path, rejected, force=True) == rejected
    assert state_of(tmp_path, rejected) is State.PROMOTED  # it has been, now


def test_version_ids_are_safe_names(tmp_path: Path) -> None:
    write_version(tmp_path)
    for bad in ("../../etc", "a/b", ".hidden", "x" * 65, "a b"):
        with pytest.raises(ModelError, match="is not a version id"):
            open_version(tmp_path, bad)
        with pytest.raises(ModelError, match="is not a version id"):
            publish(tmp_path, bad)


def test_trained_model_round_trips(tmp_path: Path, planted) -> None:
    result = train(quick_config(tmp_path / "m", **planted), Progress(quiet=True))
    model = load_model(tmp_path / "m")
    assert model.version == result.version
    assert set(model.components) == {"cf", "ease", "item_knn", "content", "popularity",
                                     "trending", "history", "next"}
    np.testing.assert_array_equal(model.components["ease"].weights,
                                  result.model.components["ease"].weights)
    np.testing.assert_allclose(model.components["cf"].item_factors,
                               result.model.components["cf"].item_factors)
    assert (model.user_items != result.model.user_items).nnz == 0
    manifest = model.manifest
    assert manifest is not None and manifest.schema_version == 2
    assert manifest.inputs["interactions"]["rows"] == 720  # 60 users x 6 x (view, buy)
    assert len(manifest.inputs["items"]["sha256"]) == 64
    assert manifest.algorithms["cf"].params["factors"] == 2
    # Every array on disk is listed with its checksum; beside them only the manifest and
    # the version's state (promoted, by `recsvc train`).
    on_disk = {p.name for p in (tmp_path / "m" / result.version).iterdir()}
    assert on_disk == set(manifest.files) | {"manifest.json", "lifecycle.json"}
    assert state_of(tmp_path / "m", result.version) is State.PROMOTED
    # The manifest's settings fit the same model again: tuning's choices are in them.
    assert manifest.training.config["model"]["cf"]["factors"] == 2
    assert manifest.training.config["blend"]["weights"] == manifest.blend.weights


def test_a_large_catalogs_sparse_ease_round_trips_and_ranks_the_same(tmp_path: Path,
                                                                      planted) -> None:
    """Above `ease.max_items` EASE's weights are sparse: written as CSR, checked on load,
    and the loaded model ranks exactly as the trained one."""
    config = quick_config(tmp_path / "m", **planted)
    config.model.set("ease", max_items=0, neighbours=8)
    result = train(config, Progress(quiet=True))
    model = load_model(tmp_path / "m")
    stored, fitted = model.components["ease"].weights, result.model.components["ease"].weights
    assert sp.issparse(stored) and (stored != fitted).nnz == 0
    assert "model.ease.weights_sparse.data.npy" in model.manifest.files
    users = np.arange(model.n_users)
    alone = {"ease": 1.0}
    assert [r.tolist() for r in recommend(model, model.batch(users), 5, weights=alone).items] \
        == [r.tolist() for r in recommend(result.model, result.model.batch(users), 5,
                                          weights=alone).items]
    # The history model's repeat rates travel too (none here: nobody bought twice).
    assert model.components["history"].repeat_rate is None
    assert result.model.components["history"].repeat_rate is None


def test_manifest_fields_are_checked_by_name(tmp_path: Path) -> None:
    """A missing or unknown field is refused with its name, never read as a default."""
    version = write_version(tmp_path)
    path = tmp_path / version / "manifest.json"
    manifest = json.loads(path.read_text())
    del manifest["events"]["weights"]
    path.write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match=r"manifest field events\.weights: Field required"):
        open_version(tmp_path, version)
    manifest = json.loads(path.read_text())
    manifest["events"]["weights"] = {"view": 1.0}
    manifest["training"]["surprise"] = 1
    path.write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match=r"manifest field training\.surprise: Extra inputs"):
        open_version(tmp_path, version)


def test_a_manifest_must_name_its_own_directory(tmp_path: Path) -> None:
    version = write_version(tmp_path)
    path = tmp_path / version / "manifest.json"
    path.write_text(json.dumps({**json.loads(path.read_text()),
                                "version": "../../../tmp/evil"}))
    with pytest.raises(ModelError, match="names version '../../../tmp/evil'"):
        open_version(tmp_path, version)



FIXTURE_V1 = Path(__file__).parent / "fixtures" / "model-v1"


def test_a_schema_1_model_loads_and_ranks_as_it_did(tmp_path: Path) -> None:
    """A model written by the first schema (kept as written by that code, with the lists
    that code served) is upgraded on read and serves the very same lists: the same items
    and scores; its reasons claim no purchase, since that schema kept no record of them
    (what that code called "bought" it now calls "viewed" or "seen")."""
    import shutil

    from recsvc.core.engine import load_engine
    from recsvc.core.lists import RecommendQuery, shopper_list
    from recsvc.core.policy.filters import filter_stage
    from recsvc.core.policy.rules import DEFAULT_VARIANT, RulesFile

    shutil.copytree(FIXTURE_V1, tmp_path / "models")
    expected = json.loads((FIXTURE_V1.parent / "model-v1-lists.json").read_text())
    publish(tmp_path / "models", expected["version"])
    engine = load_engine(tmp_path / "models", None, RulesFile())
    card = engine.model.card
    assert card is not None and card.events.quantity_scaling == "log"
    # Its settings as the trainer reads them now, tuned values in their sections.
    assert card.training.config["model"]["factors"] == 2
    live = engine.model.item_in_stock.astype(bool)
    stage = filter_stage(engine.model, engine.rules, live, engine.model.item_price)
    for user, items in expected["lists"].items():
        value, _ = shopper_list(engine, RecommendQuery(user_id=user, n=5), DEFAULT_VARIANT,
                                [], live, stage.allowed, 5, 1_800_000_000.0, 30.0)
        from recsvc.core.ranking.packed import unpack

        packed = unpack(value)
        assert packed is not None
        truthful = json.loads(json.dumps(items).replace("because_you_bought",
                                                          "because_you_viewed")
                              .replace("bought_before", "seen_before"))
        assert engine.renderer.items(packed) == truthful, user


@pytest.mark.parametrize("name, change, message", [
    ("item_category", lambda a: a[:-1], r"item_category: shape \(20,\), expected \(21,\)"),
    ("model.cf.item_factors", lambda a: a[:, :1], r"cf\.item_factors: shape \(21, 1\)"),
    ("model.ease.weights", lambda a: np.where(np.eye(a.shape[0]) > 0, np.nan, a),
     r"ease\.weights: 21 values are not finite"),
    ("user_items.indices", lambda a: a + 1000, r"user_items: column index out of range"),
    ("item_category", lambda a: a + 50, r"item_category: codes out of range"),
    ("user_ids", lambda a: a[::-1], r"user_ids: not sorted and unique"),
    ("model.trending.trend", lambda a: np.full_like(a, np.inf), r"trending\.trend: 21"),
])
def test_a_version_whose_arrays_disagree_is_refused_naming_the_array(
        tmp_path: Path, planted, name, change, message) -> None:
    """Checksums prove a file is what was written, not that what was written is right:
    a version with arrays of the wrong length, width, range or values (what a trainer
    bug would write) is refused when it loads, naming the array, before any request."""
    from tests.conftest import replace_array

    result = train(quick_config(tmp_path / "m", **planted), Progress(quiet=True))
    version_dir = tmp_path / "m" / result.version
    replace_array(version_dir, name, change(np.load(version_dir / f"{name}.npy")))
    open_version(tmp_path / "m")  # every checksum still verifies
    with pytest.raises(ModelError, match=f"model {result.version}: inconsistent: {message}"):
        load_model(tmp_path / "m")
