"""Evaluation end to end: known answers on the planted store, groups, the gate, the
command's two modes, its outputs and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsvc.cli import main
from recsvc.core.errors import EXIT_BAD_INPUT, EXIT_NOT_PROMOTED
from recsvc.core.model import load_model
from recsvc.core.ranking.scoring import recommend
from tests.conftest import T0, planted_seen, planted_store, quick_config, write_csv
from training.config import TrainConfig
from training.evaluate import build_test_set, evaluate, gate, rank_test_users
from training.generate import StoreSpec, generate_store
from training.pipeline import train
from training.progress import Progress

QUIET = Progress(quiet=True)
B_USERS = ("bu0", "bu7", "bu13")


def planted_answer(user: str) -> list[str]:
    group = user[0]
    return sorted({f"{group}{j}" for j in range(10)} - set(planted_seen(user)))


def held_out_rows() -> list[dict]:
    """What the b-group users went on to buy (the planted answer; bu0 also bought an item
    the model has never seen), a stranger's purchase, and an opted-out user's."""
    rows = [{"user_id": u, "item_id": i, "event_type": "purchase", "timestamp": T0 + 10**6}
            for u in B_USERS for i in planted_answer(u)]
    rows.append({"user_id": "bu0", "item_id": "zz_unknown", "event_type": "purchase",
                 "timestamp": T0 + 10**6})
    rows.append({"user_id": "stranger", "item_id": "b0", "event_type": "purchase",
                 "timestamp": T0 + 10**6})
    rows.append({"user_id": "bu1", "item_id": "b1", "event_type": "purchase",
                 "timestamp": T0 + 10**6})
    rows.append({"user_id": "bu7", "item_id": "b1", "event_type": "view",
                 "timestamp": T0 + 10**6})  # not a target event: not relevant
    return rows


@pytest.fixture
def planted_model(tmp_path: Path):
    store = planted_store(tmp_path)
    users = [{"user_id": f"{g}u{u}", "segment": "gold" if u % 2 else "silver",
              "consent": "no" if f"{g}u{u}" == "bu1" else "yes"}
             for g in "ab" for u in range(30)]
    store["users"] = write_csv(tmp_path / "users.csv", users)
    train(quick_config(tmp_path / "m", **store), QUIET)
    test_path = write_csv(tmp_path / "test.csv", held_out_rows())
    return load_model(tmp_path / "m"), test_path, store


def clean_test(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path)
    frame["weight"] = frame["event_type"].map({"purchase": 10.0, "view": 1.0})
    return frame


def test_known_answer_metrics_groups_and_counts(planted_model) -> None:
    model, test_path, _ = planted_model
    test = build_test_set(model, clean_test(test_path), ["purchase"])
    assert list(test.user_ids) == ["bu0", "bu13", "bu7", "stranger"]
    assert test.counts["opted_out_users_skipped"] == 1
    assert test.counts["relevant_items_unknown_to_model"] == 1
    result = evaluate(model, test, [4, 10])
    # The model recovers each b user's 4 planted items exactly (test_known_answers), so
    # at k = 4: precision 1; recall 1, but 4/5 for bu0 whose fifth item is unknown.
    returning = result.groups["light_users"]
    assert returning["users"] == 3
    assert returning["precision@4"] == 1.0
    assert returning["recall@4"] == pytest.approx((4 / 5 + 1 + 1) / 3)
    assert returning["ndcg@4"] == 1.0 and returning["map@4"] == 1.0
    # The stranger is a new user, reported as such, and part of the overall average.
    assert result.groups["new_users"]["users"] == 1
    overall = result.metrics["precision@4"]
    assert overall == pytest.approx((3 * 1.0 + result.groups["new_users"]["precision@4"]) / 4)
    # Segments from the user table: bu7, bu13 are gold (odd), bu0 silver.
    assert result.groups["segment=gold"]["users"] == 2
    assert result.groups["segment=silver"]["users"] == 1
    # Every algorithm is reported beside the blend, with beyond-accuracy metrics.
    assert set(result.models) == {"blend", *model.components}
    assert {"coverage@10", "diversity@10", "novelty@10", "popular_share@10",
            "f1@10", "mrr@10", "hit_rate@10"} <= set(result.metrics)


def test_the_blend_is_ranked_exactly_as_the_service_ranks_it(planted_model) -> None:
    model, test_path, _ = planted_model
    test = build_test_set(model, clean_test(test_path), ["purchase"])
    ours = rank_test_users(model, test, 10)
    known = np.flatnonzero(test.users >= 0)
    service = recommend(model, model.batch(test.users[known]), 10).items
    for row, items in zip(known, service, strict=True):
        assert list(ours[row]) == list(items)


def test_a_random_split_is_judged_without_the_shoppers_past(planted_model) -> None:
    """A random split's held-out pairs are never in training, so its evaluation ranks
    with the past excluded, whatever the model was trained to serve; the headline blend
    is reported also when only single algorithms are asked for."""
    model, test_path, _ = planted_model
    test = build_test_set(model, clean_test(test_path), ["purchase"])
    history = {"history": 1.0}
    as_served = rank_test_users(model, test, 10, history, exclude_seen=False)
    unseen = rank_test_users(model, test, 10, history, exclude_seen=True)
    known = np.flatnonzero(test.users >= 0)
    pasts = [set(model.user_items[test.users[row]].indices) for row in known]
    assert all(pasts) and all(set(as_served[row]) & past
                              for row, past in zip(known, pasts, strict=True))
    assert not any(set(unseen[row]) & past for row, past in zip(known, pasts, strict=True))
    result = evaluate(model, test, [4], ["history"], exclude_seen=True)
    assert set(result.models) == {"blend", "history"}


def test_gate_compares_with_tolerance() -> None:
    assert gate({"ndcg@10": 0.49}, {"ndcg@10": 0.5}, "ndcg@10", 0.02).passed
    assert not gate({"ndcg@10": 0.48}, {"ndcg@10": 0.5}, "ndcg@10", 0.02).passed
    assert gate({"ndcg@10": 0.5}, {"ndcg@10": 0.5}, "ndcg@10", 0.0).passed


def test_evaluate_command_reports_and_gates(planted_model, tmp_path: Path, capsys) -> None:
    model, test_path, store = planted_model
    good = model.version
    # A worse candidate: popularity alone.
    config = quick_config(tmp_path / "m", **store)
    config.blend.weights = {name: 0.0 for name in model.components} | {"popularity": 1.0}
    bad = train(config, QUIET).version
    out = tmp_path / "metrics.json"
    code = main(["evaluate", "--model-root", str(tmp_path / "m"), "--version", bad,
                 "--test", str(test_path), "--k", "4,10", "--baseline", good,
                 "--gate-metric", "ndcg@4", "--json", str(out), "--quiet"])
    captured = capsys.readouterr()
    assert code == EXIT_NOT_PROMOTED
    assert "gate FAILED: ndcg@4" in captured.out
    metrics = json.loads(out.read_text())
    assert isinstance(metrics["precision@10"], float) and isinstance(metrics["ndcg@4"], float)
    assert metrics["model_version"] == bad and metrics["gate"]["passed"] is False
    assert metrics["gate"]["baseline"] > metrics["gate"]["candidate"]
    # The report is saved with the model and listed on screen.
    reports = list((tmp_path / "m" / bad / "reports").iterdir())
    assert len(reports) == 1
    files = {p.name for p in reports[0].iterdir()}
    assert files == {"evaluation.json", "evaluation.md", "precision_recall_at_k.png",
                     "accuracy_vs_coverage.png"}
    assert f"wrote {reports[0] / 'evaluation.md'}" in captured.out
    assert (reports[0] / "precision_recall_at_k.png").read_bytes()[:4] == b"\x89PNG"
    assert "| blend |" in (reports[0] / "evaluation.md").read_text()
    # A report beside a version does not disturb loading it (checksums cover its arrays).
    assert load_model(tmp_path / "m", bad).version == bad

    code = main(["evaluate", "--model-root", str(tmp_path / "m"), "--version", good,
                 "--test", str(test_path), "--k", "4", "--baseline", bad,
                 "--gate-metric", "ndcg@4", "--no-report", "--quiet"])
    assert code == 0
    assert "gate passed" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    ([], "give either --model-root with --test"),
    (["--test", "x.csv"], "--test needs --model-root"),
    (["--interactions", "missing.csv"], "missing.csv"),
    (["--interactions", "x.csv", "--k", "ten"], "--k must be"),
    (["--interactions", "x.csv", "--tolerance", "2"], "--tolerance"),
])
def test_bad_evaluate_options_fail_with_one_line(args, message, capsys) -> None:
    assert main(["evaluate", "--quiet", *args]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_missing_test_file_and_unknown_algorithm(planted_model, tmp_path: Path, capsys) -> None:
    root = str(tmp_path / "m")
    assert main(["evaluate", "--model-root", root, "--test", str(tmp_path / "nope.csv"),
                 "--quiet"]) == EXIT_BAD_INPUT
    assert "nope.csv" in capsys.readouterr().err
    _, test_path, _ = planted_model
    assert main(["evaluate", "--model-root", root, "--test", str(test_path),
                 "--algorithms", "blend,wizard", "--quiet"]) == EXIT_BAD_INPUT
    assert "wizard" in capsys.readouterr().err


def test_split_mode_compares_algorithms_on_each_split(tmp_path: Path, capsys) -> None:
    paths = generate_store(StoreSpec(users=800, items=200, events=40_000, seed=2),
                           tmp_path / "s", QUIET)
    base = ["evaluate", "--interactions", str(paths["interactions"]), "--items",
            str(paths["items"]), "--users", str(paths["users"]), "--no-tune", "--quiet"]
    out = tmp_path / "time.json"
    assert main([*base, "--split", "time", "--json", str(out),
                 "--report", str(tmp_path / "report")]) == 0
    result = json.loads(out.read_text())
    assert result["split"]["method"] == "time"
    assert result["test"]["users"] > 100
    # The blend beats the non-personalized fallbacks it contains.
    assert result["ndcg@10"] > result["models"]["popularity"]["ndcg@10"]
    assert result["ndcg@10"] > result["models"]["trending"]["ndcg@10"]
    assert {"light_users", "medium_users", "heavy_users", "long_tail_items"} <= set(
        result["groups"])
    assert (tmp_path / "report" / "accuracy_vs_coverage.png").is_file()
    for split in (["--split", "leave-last", "--leave-last", "2"],
                  ["--split", "random", "--random-by", "item", "--seed", "1"]):
        out = tmp_path / f"{split[1]}.json"
        assert main([*base, *split, "--json", str(out), "--no-report"]) == 0
        result = json.loads(out.read_text())
        assert result["split"]["method"] == split[1]
        assert 0 < result["recall@20"] <= 1
    capsys.readouterr()
    # Evaluating a split writes no model version anywhere.
    assert not (tmp_path / "models").exists()
    assert TrainConfig().output.model_root is None
