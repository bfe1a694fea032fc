"""The command-line contract: names, config files, output a script can capture."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from recsvc.cli import main
from recsvc.core.artifacts import current_version
from recsvc.core.model import load_model
from tests.conftest import planted_store


def test_python_m_and_help_list_the_commands() -> None:
    out = subprocess.run([sys.executable, "-m", "recsvc", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "generate" in out and "train" in out and "evaluate" in out


def test_train_prints_only_the_version_on_stdout(tmp_path: Path, capsys) -> None:
    store = planted_store(tmp_path)
    code = main(["train", "--interactions", str(store["interactions"]), "--items",
                 str(store["items"]), "--model-root", str(tmp_path / "m"), "--no-tune"])
    captured = capsys.readouterr()
    assert code == 0
    assert captured.out.strip() == current_version(tmp_path / "m")
    assert "rows read 720, kept 720" in captured.err
    assert "tuning: skipped (disabled (--no-tune))" in captured.err


def test_config_file_sets_everything_and_flags_override(tmp_path: Path, capsys) -> None:
    planted_store(tmp_path)
    (tmp_path / "recsvc.toml").write_text(
        '[input]\ninteractions = "interactions.csv"\nitems = "items.csv"\n'
        '[output]\nmodel_root = "models"\nkeep_versions = 1\n'
        "[model]\nalgorithms = ['cf', 'popularity', 'history']\n"
        "[model.cf]\nfactors = 3\nalgorithm = 'bpr'\niterations = 20\n"
        "[tuning]\nenabled = false\n"
        "[blend]\nexclude_seen = false\n[blend.weights]\ncf = 2.0\n"
    )
    for _ in range(2):
        assert main(["train", "--config", str(tmp_path / "recsvc.toml"), "--quiet"]) == 0
    model = load_model(tmp_path / "models")
    assert model.manifest is not None
    cf = model.manifest.algorithms["cf"].params
    assert cf["algorithm"] == "bpr" and cf["factors"] == 3
    assert set(model.components) == {"cf", "popularity", "history"}
    assert model.weights["cf"] == 2.0 and model.exclude_seen is False
    assert len([p for p in (tmp_path / "models").iterdir() if not p.name.startswith(".")
                and p.name != "current"]) == 1  # keep_versions = 1 pruned the first
    # A flag beats the file.
    assert main(["train", "--config", str(tmp_path / "recsvc.toml"), "--model-root",
                 str(tmp_path / "other"), "--quiet"]) == 0
    assert current_version(tmp_path / "other") is not None


def test_the_first_config_layout_is_still_read(tmp_path: Path) -> None:
    """Flat `[model]` keys of the first layout land in their algorithm's section, and
    `ease = false` leaves EASE out."""
    from training.config import load_config

    (tmp_path / "old.toml").write_text(
        "[model]\nfactors = 3\ncf_algorithm = 'bpr'\nease = false\n"
        "ease_regularization = 8.0\ntrending_window_days = 7\n")
    model = load_config(tmp_path / "old.toml").model
    assert model.params("cf") == {**model.params("cf"), "factors": 3, "algorithm": "bpr"}
    assert model.params("trending")["window_days"] == 7.0
    assert "ease" not in model.enabled() and "cf" in model.enabled()


def test_bad_algorithm_settings_name_the_field(tmp_path: Path, capsys) -> None:
    for text, expected in (("[model.cf]\nfactors = 0\n", "cf.factors"),
                           ("[model.nope]\nx = 1\n", "unknown algorithm 'nope'"),
                           ("[model]\nalgorithms = ['cf', 'nope']\n",
                            "unknown algorithm 'nope'"),
                           ("[model.ease]\nlambda = 3\n", "ease.lambda")):
        (tmp_path / "bad.toml").write_text(text)
        assert main(["train", "--config", str(tmp_path / "bad.toml"), "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert expected in err and "bad.toml" in err and len(err.splitlines()) == 1, err
