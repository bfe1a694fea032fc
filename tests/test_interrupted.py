"""A trainer killed at any moment leaves the previous current model intact and loadable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from recsvc.core.artifacts import VersionWriter, current_version, list_versions, open_version
from recsvc.core.model import load_model
from tests.conftest import quick_config
from training.generate import StoreSpec, generate_store
from training.pipeline import train
from training.progress import Progress


def test_crash_while_writing_keeps_current(tmp_path: Path, planted, monkeypatch) -> None:
    config = quick_config(tmp_path / "m", **planted)
    first = train(config, Progress(quiet=True)).version
    calls = {"n": 0}
    original = VersionWriter.save_array

    def failing(self, name, array):  # the disk fills up on the fifth array
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError(28, "No space left on device")
        return original(self, name, array)

    monkeypatch.setattr(VersionWriter, "save_array", failing)
    with pytest.raises(OSError):
        train(config, Progress(quiet=True))
    assert current_version(tmp_path / "m") == first
    assert list_versions(tmp_path / "m") == [first]
    assert not [p for p in (tmp_path / "m").iterdir() if p.name.startswith(".tmp")]
    assert load_model(tmp_path / "m").version == first


def test_killed_trainer_process_keeps_current(tmp_path: Path) -> None:
    paths = generate_store(StoreSpec(users=3000, items=600, events=120_000, seed=1),
                           tmp_path / "store", Progress(quiet=True))
    root = tmp_path / "m"
    args = [sys.executable, "-m", "recsvc", "train", "--interactions",
            str(paths["interactions"]), "--items", str(paths["items"]), "--model-root",
            str(root), "--no-tune", "--quiet"]
    began = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True)
    duration = time.perf_counter() - began
    first = current_version(root)
    # Kill at moments spread over a run: while loading, fitting and writing.
    killed = 0
    for fraction in (0.2, 0.4, 0.6, 0.75, 0.9):
        delay = fraction * duration
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(delay)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        killed += proc.returncode == -signal.SIGKILL
        now = current_version(root)
        model = load_model(root)  # loadable, checksums verified
        assert now == model.version
        assert np.isfinite(model.components["cf"].item_factors).all()
        # `current` moves only to a complete version (a kill after publishing, while
        # pruning, is fine); every version directory is complete.
        for version in list_versions(root):
            open_version(root, version)
        if now != first:
            assert now > first
    assert killed >= 3  # the test really interrupted runs
