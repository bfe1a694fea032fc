"""The model format: round trip, checksums, schema, atomic publish, pruning."""

from __future__ import annotations

import json
import mmap
import os
import time
from pathlib import Path

import numpy as np
import pytest

from recsvc.artifacts import (
    VersionWriter,
    current_version,
    list_versions,
    open_version,
    prune,
    publish,
)
from recsvc.errors import ModelError
from recsvc.model import load_model
from tests.conftest import quick_config
from training.pipeline import train
from training.progress import Progress


def write_version(root: Path, value: float = 1.0) -> str:
    with VersionWriter(root) as writer:
        writer.save_array("weights", np.full(3, value, dtype=np.float32))
        writer.save_array("ids", np.array(["a", "bb", "ccc"]))
        return writer.commit({"note": "test"})


def test_round_trip_with_checksums(tmp_path: Path) -> None:
    version = write_version(tmp_path)
    publish(tmp_path, version)
    stored = open_version(tmp_path)
    assert stored.version == version == current_version(tmp_path)
    assert stored.manifest["note"] == "test"
    np.testing.assert_array_equal(stored.array("weights"), np.ones(3, np.float32))
    assert list(stored.array("ids")) == ["a", "bb", "ccc"]
    weights = stored.array("weights")  # memory-mapped, not copied: a view of the mapping
    assert isinstance(weights.base, (np.memmap, mmap.mmap))
    files = stored.manifest["files"]
    assert set(files) == {"weights.npy", "ids.npy"}
    assert all(len(meta["sha256"]) == 64 for meta in files.values())


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


def test_prune_keeps_newest_and_current(tmp_path: Path) -> None:
    versions = []
    for i in range(5):
        versions.append(write_version(tmp_path, float(i)))
        time.sleep(0.001)
    versions.sort()
    publish(tmp_path, versions[0])  # an operator rolled back to the oldest
    stale = tmp_path / ".tmp-crashed"
    stale.mkdir()
    old = time.time() - 3 * 24 * 3600
    os.utime(stale, (old, old))
    fresh = tmp_path / ".tmp-running"
    fresh.mkdir()
    removed = prune(tmp_path, keep=2)
    assert sorted(removed) == versions[1:3]
    assert list_versions(tmp_path) == [versions[0], *versions[3:]]
    assert not stale.exists() and fresh.exists()  # a running writer's directory survives


def test_trained_model_round_trips(tmp_path: Path, planted) -> None:
    result = train(quick_config(tmp_path / "m", **planted), Progress(quiet=True))
    model = load_model(tmp_path / "m")
    assert model.version == result.version
    assert set(model.components) == {"cf", "ease", "item_knn", "content", "popularity",
                                     "trending", "history"}
    np.testing.assert_array_equal(model.components["ease"].weights,
                                  result.model.components["ease"].weights)
    np.testing.assert_allclose(model.components["cf"].item_factors,
                               result.model.components["cf"].item_factors)
    assert (model.user_items != result.model.user_items).nnz == 0
    manifest = model.manifest
    for key in ("schema_version", "created_at", "inputs", "data_quality", "tuning", "metrics",
                "components", "blend", "files", "counts"):
        assert key in manifest, key
    assert manifest["inputs"]["interactions"]["rows"] == 720  # 60 users x 6 x (view, buy)
    assert len(manifest["inputs"]["items"]["sha256"]) == 64
    # Every array on disk is listed with its checksum, and nothing else is there.
    on_disk = {p.name for p in (tmp_path / "m" / result.version).iterdir()}
    assert on_disk == set(manifest["files"]) | {"manifest.json"}
