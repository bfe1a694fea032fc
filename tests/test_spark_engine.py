"""The Spark engine (`recsvc train --engine spark`) against the local engine as oracle:
the same rows dropped for the same reasons, the same weighted matrices, the same fitted
state for what learns from every event, recall within 5%, and the same model format.
Spark runs on local[2], as in CI (pyspark is in the dev extra; Java 17 is the system's)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recsvc.core.algorithms import Transitions, Trending
from recsvc.core.algorithms.history import PurchaseHistory
from recsvc.core.errors import RecsvcError
from training.catalog import id_universe, universe
from training.clean import consenting_users
from training.config import SparkConfig, TrainConfig
from training.generate import StoreSpec, generate_store
from training.pipeline import load_inputs
from training.progress import Progress
from training.readers import read_items, read_users
from training.signals import build_training_data, repeat_purchase_rate
from training.spark.engine import fit_on_spark, repeat_share, tuning_sample
from training.spark.fits import SparkInputs, fit_history, fit_transitions, fit_trending
from training.spark.prepare import Cleaned, clean_events, indexed_events, weigh
from training.spark.read import read_events
from training.spark.session import find_java, spark_session

HALF_LIFE = 60.0


@pytest.fixture(scope="module")
def spark():
    session = spark_session(SparkConfig(master="local[2]", buckets=4, driver_memory="1g"))
    yield session
    session.stop()


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> dict[str, Path]:
    """A generated store (with its refusals of consent) and rows no file should have: a
    duplicate, an unknown event, a missing id, a bad time, an unknown item, a robot."""
    out = tmp_path_factory.mktemp("spark-store")
    paths = generate_store(StoreSpec(users=300, items=80, events=9000, seed=5,
                                     repeat_probability=0.4), out, Progress(quiet=True))
    events = pd.read_csv(paths["interactions"], dtype=str)
    first = events.iloc[0].to_dict()
    bad = [first,
           {**first, "event_type": "wishlist_add"},
           {**first, "user_id": ""},
           {**first, "timestamp": "yesterday"},
           {**first, "item_id": "not-in-catalog"}]
    start = pd.Timestamp(first["timestamp"])
    shelf = events["item_id"].unique()[:2]
    bad += [{**first, "user_id": "robot-1", "event_type": "view",  # 90 views in a minute
             "item_id": shelf[s % 2],
             "timestamp": (start + pd.Timedelta(seconds=s // 2)).isoformat()}
            for s in range(90)]
    pd.concat([events, pd.DataFrame(bad)], ignore_index=True).to_csv(
        paths["interactions"], index=False)
    return paths


def config_for(store: dict[str, Path], root: Path) -> TrainConfig:
    config = TrainConfig()
    config.input.interactions = store["interactions"]
    config.input.items = store["items"]
    config.input.users = store["users"]
    config.output.model_root = root
    config.signals.half_life_days = HALF_LIFE
    return config


def spark_clean(spark, config: TrainConfig, interactions: Path) -> Cleaned:
    items = read_items(config.input.items)
    items = items.dropna(subset=["item_id"]).drop_duplicates("item_id", keep="last")
    users, refused = consenting_users(read_users(config.input.users))
    raw, sources = read_events(spark, interactions)
    return clean_events(raw, sources, items, users, refused, config.events, config.cleaning,
                        4, None)


@pytest.fixture(scope="module")
def both(spark, store, tmp_path_factory):
    """The local engine's clean data and weighted matrices beside the Spark engine's."""
    config = config_for(store, tmp_path_factory.mktemp("models"))
    local, _ = load_inputs(config, Progress(quiet=True))
    user_ids, item_ids = id_universe(local)
    expected = build_training_data(local.events, user_ids, item_ids, HALF_LIFE)
    cleaned = spark_clean(spark, config, store["interactions"])
    ids = universe(cleaned.event_users, cleaned.event_items, cleaned.data.users,
                   cleaned.data.items)
    got, confidences = weigh(cleaned, ids[0], ids[1], HALF_LIFE, config.events,
                             reweigh=False)
    return {"config": config, "local": local, "expected": expected, "cleaned": cleaned,
            "ids": ids, "got": got, "confidences": confidences,
            "repeat": repeat_share(cleaned)}


def without_examples(report: dict) -> dict:
    out = json.loads(json.dumps(report))
    for found in out.get("bots", {}).values():
        found.pop("examples")
    return out


def test_both_engines_drop_the_same_rows_for_the_same_reasons(both) -> None:
    local, spark = both["local"].report, both["cleaned"].data.report
    assert local["rows_dropped"]["exact_duplicates"] >= 1
    assert {"unknown_event_types", "missing_ids", "bot_like_users",
            "consent_withdrawn", "items_missing_from_catalog"} <= set(local["rows_dropped"])
    assert without_examples(spark) == without_examples(local)
    for rule, found in spark["bots"].items():  # the names differ only in which come first
        assert len(found["examples"]) == len(local["bots"][rule]["examples"])


def test_both_engines_build_the_same_weighted_matrices(both) -> None:
    expected, got = both["expected"], both["got"]
    local_users, local_items = id_universe(both["local"])
    assert np.array_equal(both["ids"][0], local_users)
    assert np.array_equal(both["ids"][1], local_items)
    assert got.reference_time == expected.reference_time
    assert (got.user_items != expected.user_items).nnz == 0 or np.allclose(
        got.user_items.toarray(), expected.user_items.toarray(), rtol=1e-6, atol=0)
    assert got.user_items.nnz == expected.user_items.nnz > 2000
    for name in ("user_purchases", "user_negatives"):
        assert (getattr(got, name) != getattr(expected, name)).nnz == 0, name
    assert got.user_search_only is None and expected.user_search_only is None
    assert np.array_equal(got.user_recent, expected.user_recent)
    last_seen = np.zeros(len(local_users), dtype=np.int64)
    np.maximum.at(last_seen, expected.event_users, expected.event_times)
    assert np.array_equal(got.user_last_seen, last_seen)
    assert both["repeat"] == pytest.approx(repeat_purchase_rate(both["local"].events))


def test_what_learns_from_every_event_is_fitted_on_spark_as_locally(both) -> None:
    expected = both["expected"]
    users, items = both["ids"]
    events = indexed_events(both["cleaned"], users, items, both["config"].events)
    inputs = SparkInputs(events, both["confidences"], len(users), len(items),
                         both["got"].reference_time)
    for local, distributed, fit, state in (
        (Trending(window_days=30), Trending(window_days=30), fit_trending, "trend"),
        (Transitions(), Transitions(), fit_transitions, "successors"),
        (PurchaseHistory(repeat_prior=3.0), PurchaseHistory(repeat_prior=3.0), fit_history,
         "repeat_rate"),
    ):
        local.fit(expected)
        assert fit(distributed, inputs)
        want, have = getattr(local, state), getattr(distributed, state)
        if hasattr(want, "toarray"):
            assert want.nnz > 100
            want, have = want.toarray(), have.toarray()
        assert want is not None and np.count_nonzero(want) > 10, state
        assert np.allclose(have, want, rtol=1e-5, atol=1e-7), state


def test_tuning_sees_the_clean_events_in_the_order_read(both) -> None:
    """Under `spark.tune_events`, the driver tunes on exactly the local engine's events."""
    sample = tuning_sample(both["cleaned"], limit=10**9)
    local = both["local"].events
    assert len(sample) == len(local)
    for column in ("user_id", "item_id", "event_type"):
        assert sample[column].astype(str).tolist() == local[column].astype(str).tolist()
    for column in ("timestamp", "weight"):
        assert np.array_equal(sample[column].to_numpy(), local[column].to_numpy())
    fewer = tuning_sample(both["cleaned"], limit=3000)
    assert 0 < len(fewer) < len(local)
    whole = sample[sample["user_id"].astype(str).isin(set(fewer["user_id"].astype(str)))]
    assert len(whole) == len(fewer)  # whole shoppers, every event of each


def test_the_spark_engine_tunes_with_the_local_tuner(both) -> None:
    """Tuning on the driver over the sample: trials run, the settled config says so, and
    the model fitted with the tuned weights is complete."""
    config = both["config"].model_copy(deep=True)
    config.tuning.time_budget_s = 5
    config.tuning.max_trials = 3
    model = fit_on_spark(config, both["cleaned"], Progress(quiet=True), {})
    tuning = model.card.tuning
    assert tuning.skipped is None and len(tuning.trials) >= 1
    assert model.weights and set(model.weights) <= set(model.components)
    model.check()


def test_a_partitioned_parquet_directory_reads_as_its_csv(spark, store, both, tmp_path) -> None:
    events = pd.read_csv(store["interactions"], dtype=str)
    events["day"] = events["timestamp"].str[:7]  # partitioned by month
    pq.write_to_dataset(pa.Table.from_pandas(events, preserve_index=False),
                        tmp_path / "events", partition_cols=["day"])
    config = both["config"].model_copy(deep=True)
    config.cleaning.max_invalid_share = 1.0  # the bad rows fill files of their own here
    cleaned = spark_clean(spark, config, tmp_path / "events")
    by_file = cleaned.data.report.pop("rows_dropped_by_file")
    expected = without_examples(both["cleaned"].data.report)
    expected.pop("rows_dropped_by_file")
    assert without_examples(cleaned.data.report) == expected
    assert len(by_file) > 1 and all("day=" in name for name in by_file)
    users, items = both["ids"]
    got, _ = weigh(cleaned, users, items, HALF_LIFE, both["config"].events, reweigh=False)
    assert np.allclose(got.user_items.toarray(), both["expected"].user_items.toarray(),
                       rtol=1e-6)


def run_recsvc(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "recsvc", *args], capture_output=True,
                          text=True, timeout=900, env=env)


def test_spark_and_local_models_recall_alike_and_serve_alike(store, tmp_path) -> None:
    """Trained by each engine on the same first 85% of the time, scored by `recsvc
    evaluate` (which loads either model the service's way) on the rest."""
    events = pd.read_csv(store["interactions"], dtype=str)
    times = pd.to_datetime(events["timestamp"], format="ISO8601", utc=True, errors="coerce")
    cut = times.quantile(0.85)
    events[times < cut].to_csv(tmp_path / "train.csv", index=False)
    events[times >= cut].to_csv(tmp_path / "test.csv", index=False)
    recall = {}
    for engine in ("local", "spark"):
        root = tmp_path / engine
        trained = run_recsvc("train", "--engine", engine, "--spark-master", "local[2]",
                             "--interactions", str(tmp_path / "train.csv"),
                             "--items", str(store["items"]), "--users", str(store["users"]),
                             "--model-root", str(root), "--no-tune", "--quiet")
        assert trained.returncode == 0, trained.stderr[-3000:]
        scored = run_recsvc("evaluate", "--model-root", str(root), "--test",
                            str(tmp_path / "test.csv"), "--k", "10", "--json",
                            str(tmp_path / f"{engine}.json"), "--no-report", "--quiet")
        assert scored.returncode == 0, scored.stderr[-3000:]
        recall[engine] = json.loads((tmp_path / f"{engine}.json").read_text())["recall@10"]
        manifest = json.loads(next(root.glob("*/manifest.json")).read_text())
        assert set(manifest["blend"]["weights"]) >= {"cf", "trending", "next", "history"}
    assert recall["local"] > 0.05
    assert abs(recall["spark"] - recall["local"]) <= 0.05 * recall["local"], recall


def test_without_java_the_engine_says_so_in_one_line(store, tmp_path) -> None:
    with pytest.raises(RecsvcError, match=r"needs Java 17 or newer.*no `java` is on PATH"):
        find_java({"PATH": str(tmp_path)})
    with pytest.raises(RecsvcError, match="JAVA_HOME=/nowhere has no bin/java"):
        find_java({"JAVA_HOME": "/nowhere", "PATH": os.environ["PATH"]})
    env = {**os.environ, "JAVA_HOME": "/nowhere"}
    done = run_recsvc("train", "--engine", "spark", "--interactions",
                      str(store["interactions"]), "--model-root", str(tmp_path / "m"),
                      "--quiet", env=env)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        "recsvc train: error: the spark engine needs Java 17 or newer: JAVA_HOME=/nowhere "
        "has no bin/java (unset it or point it at a JDK/JRE)"]
    assert not (tmp_path / "m").exists() or not any((tmp_path / "m").iterdir())


def test_the_nightly_job_runs_on_spark_as_it_runs_locally(spark, store, tmp_path) -> None:
    """`retrain --engine spark`: the base log plus the service's events files (a line cut
    short, one not JSON, one without its event type: skipped, as locally), the same
    report and the gate's split at the same cut-off as the local job's."""
    import shutil

    from recsvc.cli import main
    from training.retrain import RetrainOptions, retrain
    from training.spark.nightly import SparkNight

    times = pd.read_csv(store["interactions"], dtype=str)["timestamp"]
    epoch = pd.to_datetime(times, format="ISO8601", utc=True, errors="coerce").max()
    epoch = epoch.timestamp() + 0.5
    events = tmp_path / "events"
    events.mkdir()
    good = [{"user_id": f"U{u}", "item_id": "I3", "event_type": "purchase",
             "timestamp": epoch - u, "value": 2} for u in range(3)]
    (events / "events-20261130.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in good) + "not json\n"
        '{"user_id":"U1","item_id":"I2","timestamp":5}\n{"user_id":"U2","ite')
    args = ["retrain", "--interactions", str(store["interactions"]), "--items",
            str(store["items"]), "--users", str(store["users"]), "--events-dir", str(events),
            "--no-tune", "--quiet"]
    local = tmp_path / "local"
    assert main([*args, "--model-root", str(local)]) == 0  # the first: promoted
    shutil.copytree(local, tmp_path / "spark", symlinks=True)
    main([*args, "--model-root", str(local)])
    expected = json.loads(sorted((local / "runs").iterdir())[-1].read_text())

    config = config_for(store, tmp_path / "spark")
    config.signals.half_life_days = TrainConfig().signals.half_life_days
    config.tuning.enabled = False
    options = RetrainOptions(model_root=tmp_path / "spark", interactions=[store["interactions"]],
                             items=store["items"], users=store["users"], events_dir=events,
                             config=config, engine=SparkNight(session=spark))
    got = retrain(options, Progress(quiet=True))
    assert got["inputs"]["skipped_service_lines"] == expected["inputs"][
        "skipped_service_lines"] == 3

    def named_by_file(report: dict) -> dict:
        out = without_examples(report)
        out["rows_dropped_by_file"] = {Path(k).name: v for k, v in
                                       out["rows_dropped_by_file"].items()}
        return out

    assert named_by_file(got["inputs"]["data_quality"]) == named_by_file(
        expected["inputs"]["data_quality"])
    assert got["gate"]["split"]["cutoff"] == expected["gate"]["split"]["cutoff"]
    assert set(got["gate"]["metrics"]) == {"candidate", "current"}
    assert got["promoted"] == got["gate"]["passed"]
    assert (tmp_path / "spark" / got["candidate_version"] / "manifest.json").exists()
