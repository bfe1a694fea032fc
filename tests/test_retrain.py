"""The nightly job: promotion through the gate, the lock, kills, rollback, and the
events a running service appended being trained on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from recsvc.cli import main
from recsvc.core.artifacts import current_version, list_versions
from recsvc.core.errors import EXIT_LOCKED, EXIT_NOT_PROMOTED
from recsvc.core.model import load_model
from recsvc.service.app import create_app
from recsvc.settings import Settings
from tests.conftest import LiveServer, free_port
from training.gather import gather
from training.generate import StoreSpec, generate_store
from training.progress import Progress
from training.retrain import RunLock


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> dict[str, Path]:
    return generate_store(StoreSpec(users=600, items=150, events=30_000, seed=11),
                          tmp_path_factory.mktemp("store"), Progress(quiet=True))


def retrain_args(store: dict[str, Path], root: Path, *extra: str) -> list[str]:
    return ["retrain", "--model-root", str(root), "--interactions",
            str(store["interactions"]), "--items", str(store["items"]), "--users",
            str(store["users"]), "--no-tune", "--quiet", *extra]


def last_summary(root: Path) -> dict:
    return json.loads(sorted((root / "runs").iterdir())[-1].read_text())


def test_first_run_promotes_then_gate_decides(store, tmp_path: Path, capsys) -> None:
    root = tmp_path / "m"
    assert main(retrain_args(store, root)) == 0
    first = last_summary(root)
    assert first["promoted"] and first["decision"] == "no current model"
    assert current_version(root) == first["candidate_version"]
    assert set(first["stages_s"]) >= {"gather", "train", "gate"}
    # The same settings again: equal on the gate's split, so promoted (tolerance 0).
    assert main(retrain_args(store, root)) == 0
    second = last_summary(root)
    assert second["gate"]["passed"] and second["gate"]["candidate"] == pytest.approx(
        second["gate"]["baseline"])
    assert current_version(root) == second["candidate_version"]
    # A worse candidate (popularity alone) fails the gate: exit 3, current unchanged.
    config = tmp_path / "worse.toml"
    config.write_text("[blend.weights]\ncf = 0\nease = 0\nitem_knn = 0\ncontent = 0\n"
                      "history = 0\ntrending = 0\npopularity = 1\n[blend]\n"
                      "exclude_seen = true\n")
    before = current_version(root)
    assert main(retrain_args(store, root, "--config", str(config))) == EXIT_NOT_PROMOTED
    third = last_summary(root)
    assert not third["promoted"] and "below the current model" in third["decision"]
    assert third["gate"]["candidate"] < third["gate"]["baseline"]
    assert current_version(root) == before
    assert third["candidate_version"] in list_versions(root)  # kept for inspection
    out = capsys.readouterr().out
    assert '"promoted": false' in out


def test_lock_contention_and_a_stale_lock(store, tmp_path: Path, capsys) -> None:
    root = tmp_path / "m"
    with RunLock(root):
        assert main(retrain_args(store, root)) == EXIT_LOCKED
    assert "another retrain is running" in capsys.readouterr().err
    (root / ".retrain.lock").write_text("999999")  # a killed run's pid, lock not held
    assert main(retrain_args(store, root)) == 0
    assert last_summary(root)["stale_lock_cleared"] == 999999


def test_killed_retrain_leaves_current_intact(store, tmp_path: Path) -> None:
    root = tmp_path / "m"
    assert main(retrain_args(store, root)) == 0
    first = current_version(root)
    args = [sys.executable, "-m", "recsvc", *retrain_args(store, root)]
    began = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True)
    duration = time.perf_counter() - began
    first = current_version(root)
    killed = 0
    for fraction in (0.3, 0.6, 0.85):
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(fraction * duration)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            killed += 1
        proc.wait()
        now = current_version(root)
        assert load_model(root).version == now  # complete and loadable
        assert now == first or now > first
        first = now
    assert killed >= 2
    assert main(retrain_args(store, root)) == 0  # the lock died with the killed runs


def test_versions_and_rollback(store, tmp_path: Path, capsys) -> None:
    root = tmp_path / "m"
    main(retrain_args(store, root))
    main(retrain_args(store, root))
    older, newer = list_versions(root)[-2:]
    assert current_version(root) == newer
    capsys.readouterr()
    assert main(["versions", "--model-root", str(root), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["version"] for r in rows][-2:] == [older, newer]
    assert rows[-1]["current"] and not rows[-2]["current"]
    assert main(["rollback", "--model-root", str(root)]) == 0
    assert current_version(root) == older
    assert main(["rollback", "--model-root", str(root), "--to", newer]) == 0
    assert current_version(root) == newer
    assert main(["rollback", "--model-root", str(root), "--to", "nope"]) == 2
    assert main(["versions", "--model-root", str(root)]) == 0
    assert f"* {newer}" in capsys.readouterr().out


def test_events_from_a_running_service_are_trained_next_night(store, tmp_path: Path) -> None:
    root, state = tmp_path / "m", tmp_path / "state"
    assert main(retrain_args(store, root)) == 0
    server = LiveServer(create_app(Settings(model_root=root, state_dir=state,
                                            reload_interval_s=0.2)), free_port())
    try:
        events = [{"user_id": "newbie", "item_id": f"I{i}", "event_type": "purchase"}
                  for i in range(5)]
        assert httpx.post(f"{server.url}/events", json=events).status_code == 200
        # A crash mid-append left half a line at the end of the log.
        log = next((state / "events").iterdir())
        with open(log, "ab") as f:
            f.write(b'{"user_id": "ghost", "item_id": "I1", "event_ty')
        assert main(retrain_args(store, root, "--events-dir", str(state / "events"))) == 0
        summary = last_summary(root)
        assert summary["inputs"]["skipped_service_lines"] == 1
        model = load_model(root)
        newbie = model.user_index(["newbie"])[0]
        assert newbie >= 0 and model.user_items[newbie].nnz == 5
        assert model.user_index(["ghost"])[0] < 0
        deadline = time.monotonic() + 10  # the service swapped to it by itself
        while httpx.get(f"{server.url}/model").json()["version"] != model.version:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        server.stop()


def test_gather_reads_directories_and_skips_bad_lines(store, tmp_path: Path) -> None:
    events = tmp_path / "events"
    events.mkdir()
    (events / "events-20261120.jsonl").write_text(
        '{"user_id":"u","item_id":"I1","event_type":"view","timestamp":1}\n'
        'not json\n{"user_id":"u","item_id":"I2"}\n'
        '{"user_id":"u","item_id":"I2","event_type":"purchase","timestamp":2}\n')
    (events / "events-20261121-1.jsonl").write_text(
        '{"user_id":"v","item_id":"I3","event_type":"view","timestamp":3}\n{"user')
    gathered = gather([store["interactions"]], events)
    assert gathered.skipped_lines == 3
    assert len(gathered.interactions) == sum(f["rows"] for f in gathered.files)
    assert [f["service_events"] for f in gathered.files] == [False, True, True]


def test_window_keeps_only_recent_days(store, tmp_path: Path) -> None:
    root = tmp_path / "m"
    assert main(retrain_args(store, root, "--window-days", "30")) == 0
    manifest = load_model(root).manifest
    assert manifest is not None
    report = manifest.data_quality
    assert report["rows_outside_window"] > 0 and report["window_days"] == 30


def test_promotion_warms_the_new_versions_keys_first(store, tmp_path: Path,
                                                     redis_server) -> None:
    import redis

    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    root = tmp_path / "m"
    # Users seen in the last 400 days of the store: all of them, whatever its dates.
    assert main(retrain_args(store, root, "--redis-url", redis_server.url,
                             "--active-days", "400")) == 0
    summary = last_summary(root)
    version = summary["current_version"]
    assert summary["warm_cache"]["written"] > 500
    assert summary["stages_s"]["warm_cache"] >= 0
    keys = list(client.scan_iter(match=f"recsvc:list:{version}:*", count=1000))
    assert len(keys) == summary["warm_cache"]["written"]
    client.close()


def test_one_poisoned_event_neither_stops_nor_skews_the_nightly_job(
        store, tmp_path: Path) -> None:
    """Events the API now refuses, written straight into the service's log (as an older
    service, or a hand edit, would have): the job drops them by the API's own rules,
    counts them in that file, and trains on the rest. (Before, a 2030 timestamp made
    `--window-days` leave nothing and exit 2 every night, and a 1e308 rating crashed ALS.)"""
    root, events = tmp_path / "m", tmp_path / "state" / "events"
    events.mkdir(parents=True)
    poisoned = events / "events-20261130.jsonl"
    poisoned.write_text("".join(
        json.dumps(event) + "\n" for event in [
            {"user_id": "u1", "item_id": "I1", "event_type": "view",
             "timestamp": "2030-01-01T00:00:00Z"},
            {"user_id": "u1", "item_id": "I1", "event_type": "rating", "value": 1e308,
             "timestamp": 1_767_225_600},
        ] + [{"user_id": f"n{i}", "item_id": "I1", "event_type": "view",
              "timestamp": 1_767_225_600 + i} for i in range(60)]))
    assert main(retrain_args(store, root, "--events-dir", str(events),
                             "--window-days", "180")) == 0
    summary = last_summary(root)
    assert summary["promoted"]
    quality = summary["inputs"]["data_quality"]
    assert quality["rows_dropped_by_file"][str(poisoned.resolve())] == {
        "timestamps_in_future": 1, "ratings_out_of_scale": 1}
    assert load_model(root).reference_time < 1_800_000_000  # not 2030


def test_rejected_and_failed_candidates_never_push_out_what_can_be_served(
        store, tmp_path: Path, capsys) -> None:
    """Each version's state is recorded; pruning keeps the current and the newest
    promoted versions, whatever was rejected or left behind in between; rollback goes
    to a promoted version, never to a reject unless forced."""
    from training.config import TrainConfig
    from training.pipeline import fit_model, load_inputs, write_model

    root = tmp_path / "m"
    keep = tmp_path / "keep.toml"
    keep.write_text("[output]\nkeep_versions = 2\n")
    worse = tmp_path / "worse.toml"
    worse.write_text("[output]\nkeep_versions = 2\n[blend]\nexclude_seen = true\n"
                     "[blend.weights]\ncf = 0\nease = 0\nitem_knn = 0\ncontent = 0\n"
                     "history = 0\ntrending = 0\npopularity = 1\n")
    assert main(retrain_args(store, root, "--config", str(keep))) == 0
    first = current_version(root)
    assert main(retrain_args(store, root, "--config", str(keep))) == 0
    second = current_version(root)
    for _ in range(3):
        assert main(retrain_args(store, root, "--config", str(worse))) == EXIT_NOT_PROMOTED
    rejected = [v for v in list_versions(root) if v not in (first, second)]
    # A run killed after writing its candidate leaves one in the `candidate` state.
    config = TrainConfig()
    config.input.interactions = store["interactions"]
    config.output.model_root = root
    config.tuning.enabled = False
    data, _ = load_inputs(config, Progress(quiet=True))
    orphan = write_model(config, fit_model(config, data, Progress(quiet=True)),
                         Progress(quiet=True), make_current=False)
    capsys.readouterr()
    assert main(["versions", "--model-root", str(root), "--json"]) == 0
    states = {r["version"]: r["state"] for r in json.loads(capsys.readouterr().out)}
    assert states == {first: "promoted", second: "promoted", orphan: "candidate",
                      **dict.fromkeys(rejected, "rejected")}
    assert main(["versions", "--model-root", str(root)]) == 0
    table = capsys.readouterr().out
    assert f"* {second}" in table and "gate: ndcg@10" in table
    # Rollback skips the rejects; one of them only by force.
    assert main(["rollback", "--model-root", str(root)]) == 0
    assert current_version(root) == first
    assert main(["rollback", "--model-root", str(root), "--to", rejected[0]]) == 2
    assert "never promoted" in capsys.readouterr().err
    assert main(["rollback", "--model-root", str(root), "--to", second]) == 0
    # The next good night: the orphan is marked failed, then rejects, the failed one and
    # promoted versions beyond the newest two go; what is served stays.
    assert main(retrain_args(store, root, "--config", str(keep))) == 0
    third = current_version(root)
    summary = last_summary(root)
    assert summary["candidates_failed_before"] == [orphan]
    assert sorted(summary["pruned"]) == sorted([first, *rejected, orphan])
    assert list_versions(root) == [second, third]


def test_every_outcome_leaves_a_run_summary(store, tmp_path: Path) -> None:
    root = tmp_path / "m"
    missing = tmp_path / "nope.csv"
    args = ["retrain", "--model-root", str(root), "--interactions", str(missing), "--quiet"]
    assert main(args) == 2
    failed = last_summary(root)
    assert failed["exit_code"] == 2 and not failed["promoted"]
    assert "nope.csv" in failed["decision"] and failed["finished_at"]


def test_a_generated_store_ends_today_so_todays_events_retrain_it(tmp_path: Path) -> None:
    """`make demo`, a day of the service's events, then the nightly job: it tunes on the
    store and today's events together (the store used to end in June: its time folds
    fell in the gap and tuning was skipped every night) and says what it decided."""
    from training.generate import DAY, today

    day = today()  # once: a run across midnight must not move it
    paths = generate_store(StoreSpec(users=1500, items=300, events=60_000, seed=5, end=day),
                           tmp_path / "s", Progress(quiet=True))
    root, events = tmp_path / "m", tmp_path / "state" / "events"
    args = ["retrain", "--model-root", str(root), "--interactions", str(paths["interactions"]),
            "--items", str(paths["items"]), "--users", str(paths["users"]),
            "--events-dir", str(events), "--tune-budget", "5", "--quiet",
            "--window-days", "180"]
    assert main(args) == 0
    first = load_model(root)
    assert day - DAY <= first.reference_time <= day
    events.mkdir(parents=True)
    now = time.time()  # today's events: between the store's end and now, whatever the hour
    (events / "events-today.jsonl").write_text("".join(
        json.dumps({"user_id": f"U{i % 1500}", "item_id": f"I{i % 300}",
                    "event_type": "purchase", "timestamp": day + (now - day) * (i + 1) / 401})
        + "\n" for i in range(400)))
    assert main(args) in (0, EXIT_NOT_PROMOTED)
    summary = last_summary(root)
    assert (summary["decision"] == "passed the gate"
            or "below the current model's" in summary["decision"])
    candidate = load_model(root, summary["candidate_version"])
    assert candidate.card is not None and candidate.card.tuning.skipped is None
    assert candidate.reference_time > day  # today's events are in it
