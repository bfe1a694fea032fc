"""Bad input stops the trainer with a one-line reason, exit code 2 and no new version."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from recsvc.cli import main
from recsvc.core.artifacts import current_version, list_versions
from tests.conftest import T0, write_csv

GOOD = [{"user_id": "u1", "item_id": "i1", "event_type": "purchase", "timestamp": T0},
        {"user_id": "u2", "item_id": "i1", "event_type": "view", "timestamp": T0 + 5}]


def run_train(tmp_path: Path, capsys, *args: str) -> tuple[int, str]:
    code = main(["train", "--model-root", str(tmp_path / "models"), "--no-tune", "--quiet",
                 *args])
    err = capsys.readouterr().err.strip()
    return code, err


@pytest.fixture
def trained_root(tmp_path: Path, capsys) -> str:
    path = write_csv(tmp_path / "good.csv", GOOD)
    code, err = run_train(tmp_path, capsys, "--interactions", str(path))
    assert code == 0, err
    return current_version(tmp_path / "models")


CASES = {
    "missing file": (None, "interactions file {p}: not found"),
    "empty file": (b"", "interactions file {p}: is empty"),
    "header only": (b"user_id,item_id,event_type,timestamp\n",
                    "interactions file {p}: has a header but no rows"),
    "missing column": (b"user_id,item_id,timestamp\nu1,i1,1\n",
                       "interactions file {p}: missing required column 'event_type' "
                       "(found: user_id, item_id, timestamp)"),
    "ragged rows": (b"user_id,item_id,event_type,timestamp\nu1,i1,view,1,extra\n",
                    "interactions file {p}: unreadable as csv"),
    "binary junk": (bytes(range(256)) * 8, "interactions file {p}: "),
    "nothing usable": (b"user_id,item_id,event_type,timestamp\nu1,i1,teleport,1\n",
                       "interactions file {p}: no usable events after cleaning"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_interactions_file(tmp_path: Path, capsys, trained_root: str, case: str) -> None:
    content, expected = CASES[case]
    path = tmp_path / "events.csv"
    if content is not None:
        path.write_bytes(content)
    code, err = run_train(tmp_path, capsys, "--interactions", str(path))
    assert code == 2
    assert len(err.splitlines()) == 1, err  # one line, no traceback
    assert expected.format(p=path) in err
    assert list_versions(tmp_path / "models") == [trained_root]
    assert current_version(tmp_path / "models") == trained_root


def test_bad_catalog_and_users_files_name_themselves(tmp_path: Path, capsys,
                                                     trained_root: str) -> None:
    events = write_csv(tmp_path / "e.csv", GOOD)
    items = tmp_path / "items.csv"
    items.write_text("title,price\nlamp,3\n")
    code, err = run_train(tmp_path, capsys, "--interactions", str(events), "--items", str(items))
    assert code == 2 and f"items file {items}: missing required column 'item_id'" in err
    users = tmp_path / "users.parquet"
    users.write_bytes(b"not parquet at all")
    code, err = run_train(tmp_path, capsys, "--interactions", str(events), "--users", str(users))
    assert code == 2 and f"users file {users}: unreadable as parquet" in err
    assert list_versions(tmp_path / "models") == [trained_root]


def test_unknown_extension_and_bad_config(tmp_path: Path, capsys) -> None:
    path = tmp_path / "events.xlsx"
    path.write_text("x")
    code, err = run_train(tmp_path, capsys, "--interactions", str(path))
    assert code == 2 and "unknown file type" in err
    events = write_csv(tmp_path / "e.csv", GOOD)
    config = tmp_path / "c.toml"
    config.write_text("[tuning]\ntime_budget_s = -3\n")
    code, err = run_train(tmp_path, capsys, "--interactions", str(events), "--config",
                          str(config))
    assert code == 2 and "tuning.time_budget_s" in err and str(config) in err
    config.write_text("[tuning]\nbudget = 3\n")
    code, err = run_train(tmp_path, capsys, "--interactions", str(events), "--config",
                          str(config))
    assert code == 2 and "tuning.budget" in err
    config.write_text("[tuning\n")
    code, err = run_train(tmp_path, capsys, "--interactions", str(events), "--config",
                          str(config))
    assert code == 2 and "not valid TOML" in err
    assert list_versions(tmp_path / "models") == []


def test_all_formats_read_the_same(tmp_path: Path, capsys) -> None:
    import pandas as pd

    frame = pd.DataFrame(GOOD * 3).assign(user_id=["007", "008"] * 3)
    csv = write_csv(tmp_path / "e.csv", frame)
    gz = tmp_path / "e.csv.gz"
    gz.write_bytes(gzip.compress(csv.read_bytes()))
    frame.to_parquet(tmp_path / "e.parquet")
    frame.to_json(tmp_path / "e.jsonl", orient="records", lines=True)
    from training.readers import read_interactions

    tables = [read_interactions(tmp_path / n) for n in ("e.csv", "e.csv.gz", "e.parquet",
                                                         "e.jsonl")]
    for table in tables:
        assert list(table["user_id"]) == ["007", "008"] * 3  # leading zeros kept
        assert list(table["item_id"]) == ["i1"] * 6


def test_ids_are_trimmed_and_blank_ids_are_missing(tmp_path: Path) -> None:
    from training.readers import read_interactions

    path = tmp_path / "e.csv"
    path.write_text("user_id,item_id,event_type,timestamp\n u1 ,i1, view,1\n,i2,view,2\n"
                    "u2,  ,view,3\n")
    table = read_interactions(path)
    assert table["user_id"].iloc[0] == "u1" and table["item_id"].iloc[0] == "i1"
    assert table["user_id"].isna().tolist() == [False, True, False]
    assert table["item_id"].isna().tolist() == [False, False, True]
