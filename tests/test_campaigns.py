"""Offline uses of served lists: campaign export (`recsvc export`) and the preview of a
rules file (`recsvc rules check`), both equal to what `GET /recommend` shows."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from recsvc.cli import main
from tests.conftest import write_csv
from tests.test_service import KEY, start_service, train_planted

RULES = '[pin]\nitems = ["b9"]\n[exclude]\nitems = ["a2"]\n[diversity]\nmax_per_category = 3\n'


@pytest.fixture
def shop(tmp_path: Path):
    store, _ = train_planted(tmp_path)
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    svc = start_service(tmp_path, store, rules_file=rules)
    yield svc, rules
    svc.http.close()
    svc.server.stop()


def rows_by_user(path: Path) -> dict[str, list[dict]]:
    if path.suffix == ".parquet":
        records = pq.read_table(path).to_pylist()
    else:
        with open(path, newline="") as f:
            records = list(csv.DictReader(f))
    out: dict[str, list[dict]] = {}
    for r in records:
        out.setdefault(r["user_id"], []).append(r)
    return out


def test_export_equals_recommend_and_keeps_to_consent(shop, tmp_path: Path, capsys) -> None:
    svc, rules = shop
    # Who opted in to email: au* all, except au3 (personalization only) and au4 (no
    # statement); bu* said nothing, bu1 refused everything (in the model too).
    consent = write_csv(tmp_path / "consent.csv", [
        {"user_id": f"{g}u{u}",
         "consent": ("personalization" if f"{g}u{u}" == "au3" else "" if g == "b" or u == 4
                     else "no" if f"{g}u{u}" == "bu1" else "personalization;email")}
        for g in "ab" for u in range(30)])
    # Through the API: bu5 opts in to email; au6 withdraws it; au7 is forgotten.
    for user, body in (("bu5", {"email": True}), ("au6", {"email": False})):
        assert svc.http.put(f"/users/{user}/consent", json=body, headers=KEY).status_code == 200
    assert svc.http.delete("/users/au7", headers=KEY).status_code == 200
    out = tmp_path / "campaign.csv"
    args = ["export", "--model-root", str(svc.root), "--state-dir", str(svc.state_dir),
            "--rules-file", str(rules), "--consent", str(consent), "--n", "5"]
    assert main([*args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "exported 27 shoppers (135 rows)" in printed
    rows = rows_by_user(out)
    expected = {f"au{u}" for u in range(30)} - {"au3", "au4", "au6", "au7"} | {"bu5"}
    assert set(rows) == expected
    assert "no email consent 31" in printed and "forgotten 1" in printed
    for user in ("au0", "au9", "bu5"):
        body = svc.get("/recommend", user_id=user, n=5).json()
        exported = rows[user]
        assert [r["item_id"] for r in exported] == [i["item_id"] for i in body["items"]]
        assert [json.loads(r["reasons"]) for r in exported] == [i["reasons"]
                                                               for i in body["items"]]
        assert [float(r["score"]) for r in exported] == pytest.approx(
            [i["score"] for i in body["items"]], abs=1e-4)
        assert exported[0]["item_id"] == "b9" and exported[0]["reason"] == "promoted"
        assert all(r["item_id"] != "a2" for r in exported)
        assert [int(r["rank"]) for r in exported] == [1, 2, 3, 4, 5]
        assert {r["variant"] for r in exported} == {body["variant"]}
    # Parquet: the same rows; a segment and a list of shoppers narrow it.
    parquet = tmp_path / "campaign.parquet"
    assert main([*args, "--out", str(parquet)]) == 0
    assert {u: [r["item_id"] for r in rs] for u, rs in rows_by_user(parquet).items()} == {
        u: [r["item_id"] for r in rs] for u, rs in rows.items()}
    assert main([*args, "--out", str(out), "--segment", "silver"]) == 0
    assert set(rows_by_user(out)) == {"bu5"}
    wanted = tmp_path / "wanted.txt"
    wanted.write_text("au0\nau3\nnobody\n")
    assert main([*args, "--out", str(out), "--users", str(wanted)]) == 0
    assert set(rows_by_user(out)) == {"au0"}
    assert "unknown to the model 1" in capsys.readouterr().out
    # SMS: nobody said yes to it.
    assert main([*args, "--out", str(out), "--purpose", "sms"]) == 0
    assert rows_by_user(out) == {}


def test_export_refuses_what_it_cannot_do(shop, tmp_path: Path, capsys) -> None:
    svc, _ = shop
    base = ["export", "--model-root", str(svc.root), "--state-dir", str(svc.state_dir)]
    for extra, problem in ((["--out", str(tmp_path / "x.xlsx")], ".csv or .parquet"),
                           (["--out", str(tmp_path / "x.csv"), "--purpose", "fax"], "fax"),
                           (["--out", str(tmp_path / "x.csv"), "--segment", "platinum"],
                            "no such segment"),
                           (["--out", str(tmp_path / "no" / "x.csv")], "no directory")):
        assert main([*base, *extra]) == 2
        assert problem in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()  # nothing half-written


def test_rules_check_validates_and_previews(shop, tmp_path: Path, capsys) -> None:
    svc, rules = shop
    proposed = tmp_path / "proposed.toml"
    proposed.write_text('[pin]\nitems = ["a_new", "zz9"]\n[[boost]]\ncategory = "Toys"\n')
    base = ["rules", "check", "--model-root", str(svc.root), "--state-dir",
            str(svc.state_dir), "--n", "4"]
    assert main([*base, str(proposed), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["against"] is None and report["valid"]
    assert report["warnings"] == ["pin zz9: not in the model's catalog",
                                  "boost category 'Toys': matches no item"]
    preview = report["preview"]
    # Every list (59 consenting shoppers) now starts with a_new, a kitchen item.
    assert preview["shoppers"] == 59 and preview["lists_changed"] == 59
    gained = {r["name"]: r for r in preview["items"]["gained"]}
    assert gained["a_new"]["before"] == 0 and gained["a_new"]["after"] == 59
    assert preview["categories"]["gained"][0]["name"] == "Kitchen > Cookware"
    # Against the rules served: pinning b9 again changes nothing.
    assert main([*base, str(rules), "--against", str(rules)]) == 0
    text = capsys.readouterr().out
    assert "0 lists change (0.0%" in text and "valid against model" in text
    bad = tmp_path / "bad.toml"
    bad.write_text("[[bury]]\namount = -1\nitem = 'a1'\n")
    assert main([*base, str(bad)]) == 2
    assert "bury.0.amount" in capsys.readouterr().err
