"""The nightly job: gather, train a candidate (with tuning), gate it against the current
model, and only then warm the cache and promote it.

The gate compares configurations, not files: the candidate's chosen settings and the
current model's settings are each refitted on the same time-based split of tonight's
data (the past part) and scored on its future part by `training.evaluate`. Comparing the
two trained models directly would favour whichever has already seen the test period.

The candidate is written as a version but not made current until it passes, and the
cache is warmed under its version's keys before `current` moves, so the service swaps
to a model whose lists are already there (no cold-cache stampede). A kill at any moment
leaves `current` as it was."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
from pydantic import ValidationError

from recsvc.core.artifacts import current_version, open_version
from recsvc.core.errors import (
    EXIT_FAILURE,
    EXIT_NOT_PROMOTED,
    EXIT_OK,
    InputError,
    LockedError,
    ModelError,
    RecsvcError,
    first_problem,
)
from recsvc.core.lifecycle import State, fail_orphans, mark, promote, prune, retire
from recsvc.core.manifest import ModelCard
from recsvc.core.model import RecommenderModel
from recsvc.jobs.warm import warm
from recsvc.settings import Settings
from recsvc.stores.catalog import CatalogOverrides
from recsvc.stores.events_log import EventLog
from recsvc.stores.forget import retirable
from recsvc.stores.runs import RUNS_DIR
from training.clean import CleanData, clean, format_report
from training.config import TrainConfig
from training.evaluate import GateResult, build_test_set, evaluate, gate
from training.forgotten import Privacy
from training.gather import gather
from training.pipeline import apply_window, fit_model, write_model
from training.progress import Progress
from training.readers import read_items, read_users
from training.splits import time_split

LOCK_NAME = ".retrain.lock"


class RunLock:
    """One nightly run at a time per model root. An OS file lock: a killed run's lock is
    released by the kernel, so it can never block the next night; its pid, left in the
    file, is reported as a stale lock cleared."""

    def __init__(self, model_root: Path) -> None:
        self.path = Path(model_root) / LOCK_NAME
        self.stale_pid: int | None = None
        self._file: Any = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "a+")  # noqa: SIM115 - held for the whole run
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            f.close()
            raise LockedError(f"another retrain is running on {self.path.parent} "
                              f"(pid {holder})") from None
        f.seek(0)
        previous = f.read().strip()
        if previous.isdigit():
            self.stale_pid = int(previous)  # it held the lock, and died without clearing
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        self._file = f
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        f = self._file
        f.seek(0)
        f.truncate()
        f.flush()
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()


@dataclass
class RetrainOptions:
    model_root: Path
    interactions: list[Path]
    items: Path | None = None
    users: Path | None = None
    events_dir: Path | None = None
    config: TrainConfig = field(default_factory=TrainConfig)
    redis_url: str | None = None
    tolerance: float = 0.0
    gate_metric: str = "ndcg@10"
    gate_fraction: float = 0.1
    active_days: float = 30.0
    rules_file: Path | None = None
    processes: int = 1  # warm-up workers
    privacy: Privacy = field(default_factory=Privacy)  # forgotten shoppers; ids in reports
    forget_grace_days: float = 7.0
    retention_days: float | None = None  # events files and run summaries
    # Operators' catalog overrides: items created there since (`PUT /items/{id}`) join
    # the catalog of the training, so their events train them.
    catalog_overrides: Path | None = None
    engine: Any = field(default_factory=lambda: LocalNight())  # or SparkNight


def with_created_items(items: pd.DataFrame, overrides: Path) -> pd.DataFrame:
    """The catalog with the items created through the API that it does not list yet."""
    store = CatalogOverrides(overrides)
    listed = set(items["item_id"].astype(str))
    created = [row for row in store.created_rows() if row["item_id"] not in listed]
    if not created:
        return items
    rows = pd.DataFrame(created)
    rows["created_at"] = pd.to_datetime(rows["created_at"], unit="s", utc=True)
    for column in ("item_id", "category", "brand", "tags", "title", "description"):
        if column in items.columns and isinstance(items[column].dtype, pd.CategoricalDtype):
            items = items.astype({column: object})
    return pd.concat([items, rows[[c for c in rows.columns if c in items.columns
                                   or c == "item_id"]]], ignore_index=True)


def refit_config(base: TrainConfig, card: ModelCard, where: str) -> TrainConfig:
    """The settings a model was trained with (tuning's choices included), to fit it
    again on other data without tuning; inputs and outputs are tonight's."""
    try:
        config = TrainConfig.model_validate(card.training.config)
    except ValidationError as exc:
        raise ModelError(f"model {where}: its saved training config: "
                         f"{first_problem(exc)}") from None
    config.tuning.enabled = False
    config.input = base.input.model_copy()
    config.output = base.output.model_copy()
    return config


def compare_on_split(
    data: CleanData,
    candidate: ModelCard,
    current: ModelCard,
    options: RetrainOptions,
) -> tuple[GateResult, dict[str, Any]]:
    split = time_split(data.events, test_fraction=options.gate_fraction)
    train = CleanData(events=split.train, items=data.items, users=data.users,
                      opted_out=data.opted_out, report=data.report)
    quiet = Progress(quiet=True)
    result, scores = gate_refits(lambda config: fit_model(config, train, quiet), split.test,
                                 data.users, candidate, current, options)
    return result, {"split": split.description, "metrics": scores}


def gate_refits(refit: Callable[[TrainConfig], RecommenderModel], test_events: pd.DataFrame,
                users: pd.DataFrame | None, candidate: ModelCard, current: ModelCard,
                options: RetrainOptions) -> tuple[GateResult, dict[str, Any]]:
    """The candidate's and the current model's settings each refitted (`refit`, on the
    split's past) and scored on `test_events`; the gate's verdict and both scores."""
    k = int(options.gate_metric.split("@")[1]) if "@" in options.gate_metric else 10
    scores = {}
    for name, card in (("candidate", candidate), ("current", current)):
        model = refit(refit_config(options.config, card, name))
        test = build_test_set(model, test_events, options.config.tuning.target_events, users)
        if len(test) == 0:
            raise InputError("the gate's test period has no target events to score")
        scores[name] = evaluate(model, test, [k], ["blend"]).metrics
    if options.gate_metric not in scores["candidate"]:
        raise InputError(f"unknown gate metric {options.gate_metric!r}")
    return gate(scores["candidate"], scores["current"], options.gate_metric,
                options.tolerance), scores


def retrain(options: RetrainOptions, progress: Progress) -> dict[str, Any]:
    """Run the job; returns its summary. Every outcome — promoted, rejected, bad input,
    a failure — is saved under MODEL_ROOT/runs/ with the reason; a candidate written by a
    run that then fails is marked failed (and pruned first)."""
    root = Path(options.model_root)
    began = time.perf_counter()
    stages: dict[str, float] = {}

    def stage(name: str, since: float) -> float:
        now = time.perf_counter()
        stages[name] = round(now - since, 2)
        return now

    lock = RunLock(root)
    try:
        lock.__enter__()
    except LockedError as exc:
        save_summary(root, {"started_at": datetime.now(UTC).isoformat(), "promoted": False,
                            "exit_code": exc.exit_code, "decision": str(exc)})
        raise
    with contextlib.closing(lock):
        summary: dict[str, Any] = {
            "started_at": datetime.now(UTC).isoformat(), "model_root": str(root.resolve()),
            "stale_lock_cleared": lock.stale_pid, "previous_version": current_version(root),
            "candidates_failed_before": fail_orphans(root, "its run did not finish")}
        try:
            _run(options, progress, root, summary, stage)
        except BaseException as exc:
            exit_code = exc.exit_code if isinstance(exc, RecsvcError) else EXIT_FAILURE
            summary.update(promoted=False, exit_code=exit_code,
                           decision=f"{type(exc).__name__}: {exc}")
            if summary.get("candidate_version"):
                mark(root, summary["candidate_version"], State.FAILED, error=str(exc))
            raise
        finally:
            summary.update(current_version=current_version(root), stages_s=stages,
                           seconds=round(time.perf_counter() - began, 2),
                           finished_at=datetime.now(UTC).isoformat())
            save_summary(root, summary)
    return summary


class LocalNight:
    """The nightly job's engine-bound steps on this machine: gather and clean, fit, and
    the gate's two refits on tonight's split. `training.spark.nightly.SparkNight` does
    the same on Spark (`recsvc retrain --engine spark`)."""

    def load(self, options: RetrainOptions, progress: Progress) -> tuple[Any, dict[str, Any]]:
        """Tonight's clean data, and what the summary says of the inputs."""
        gathered = gather(options.interactions, options.events_dir)
        items, users = catalog_tables(options)
        data = clean(gathered.interactions, items, users, options.config.events,
                     options.config.cleaning, gathered.sources,
                     forgotten=options.privacy.forgotten, shown_id=options.privacy.shown_id)
        data.report["service_lines_skipped"] = gathered.skipped_lines
        data = apply_window(data, options.config.input.window_days)
        if len(data.events) == 0:
            raise InputError("no usable events after cleaning")
        return data, {"files": gathered.files, "skipped_service_lines": gathered.skipped_lines,
                      "data_quality": data.report}

    def fit(self, config: TrainConfig, data: Any, progress: Progress,
            inputs: dict[str, Any]) -> RecommenderModel:
        return fit_model(config, data, progress, inputs)

    def compare(self, data: Any, candidate: ModelCard, current: ModelCard,
                options: RetrainOptions) -> tuple[GateResult, dict[str, Any]]:
        return compare_on_split(data, candidate, current, options)


def catalog_tables(options: RetrainOptions) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """The item catalog (with the items created through the API) and the users table."""
    items = read_items(options.items) if options.items else None
    if items is not None and options.catalog_overrides is not None:
        items = with_created_items(items, options.catalog_overrides)
    users = read_users(options.users) if options.users else None
    return items, users


def _run(options: RetrainOptions, progress: Progress, root: Path, summary: dict[str, Any],
         stage: Any) -> None:
    t = time.perf_counter()
    night = options.engine
    data, summary["inputs"] = night.load(options, progress)
    progress.text(format_report(summary["inputs"]["data_quality"]))
    t = stage("gather", t)

    config = options.config.model_copy(deep=True)
    config.output.model_root = root
    model = night.fit(config, data, progress, {"files": summary["inputs"]["files"]})
    assert model.card is not None
    candidate = write_model(config, model, progress, make_current=False)
    summary["candidate_version"] = candidate
    summary["candidate_validation"] = model.card.metrics.validation
    t = stage("train", t)

    previous = summary["previous_version"]
    if previous is None:
        promote_it, reason = True, "no current model"
    else:
        current_manifest = open_version(root, previous, verify=False).manifest
        result, details = night.compare(data, model.card, current_manifest, options)
        summary["gate"] = {**result.summary(), **details}
        promote_it = result.passed
        reason = ("passed the gate" if promote_it else
                  f"{result.metric} {result.candidate:.4f} is below the current "
                  f"model's {result.baseline:.4f} beyond tolerance {result.tolerance:g}")
    t = stage("gate", t)

    if promote_it:
        if options.redis_url:
            summary["warm_cache"] = warm_candidate(root, candidate, options)
            t = stage("warm_cache", t)
        promote(root, candidate, by="recsvc retrain", decision=reason)
        summary["pruned"] = prune(root, config.output.keep_versions)
    else:
        mark(root, candidate, State.REJECTED, **summary["gate"])
    if options.privacy.forgotten is not None:
        summary["forgotten"] = forget_stored(root, options)
    if options.retention_days is not None:
        summary["retention"] = prune_old(root, options)
    summary.update(promoted=promote_it, decision=reason,
                   exit_code=EXIT_OK if promote_it else EXIT_NOT_PROMOTED)


def forget_stored(root: Path, options: RetrainOptions) -> dict[str, Any]:
    """What tonight removed of forgotten shoppers beyond training: their rows in the
    events files, and the versions holding their rows past the grace period (never the
    current one: it is replaced when a candidate without them is promoted)."""
    ledger, is_forgotten = options.privacy.ledger, options.privacy.forgotten
    assert ledger is not None and is_forgotten is not None
    out: dict[str, Any] = {"users": len(ledger.forgotten)}
    if options.events_dir is not None:
        out["events_files"] = EventLog(options.events_dir, 1 << 62).drop_users(is_forgotten)
    current = current_version(root)
    holding = retirable(root, ledger, options.forget_grace_days, time.time())
    out["versions_retired"] = retire(root, [v for v in holding if v != current])
    if current in holding:
        out["current_holds_forgotten"] = (
            f"{current} still holds rows of shoppers forgotten over "
            f"{options.forget_grace_days:g} days ago: promote a model trained without them")
    return out


def prune_old(root: Path, options: RetrainOptions) -> dict[str, Any]:
    """Delete what is kept past `retention_days`: events files (by the day in their
    name) and the run summaries under MODEL_ROOT/runs (by the time in theirs)."""
    assert options.retention_days is not None
    cutoff = datetime.now(UTC) - timedelta(days=options.retention_days)
    out: dict[str, Any] = {"days": options.retention_days, "events_files": [],
                           "run_summaries": 0}
    if options.events_dir is not None:
        out["events_files"] = EventLog(options.events_dir, 1 << 62).prune(cutoff.timestamp())
    for path in sorted((root / RUNS_DIR).glob("*.json")):
        with contextlib.suppress(ValueError, OSError):
            if datetime.strptime(path.stem, "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC) < cutoff:
                path.unlink()
                out["run_summaries"] += 1
    return out


def warm_candidate(root: Path, version: str, options: RetrainOptions) -> dict[str, Any]:
    """Warm the candidate's lists for active users before it becomes current: the same
    job as `recsvc warm-cache` (compiled kernels warmed, workers forked)."""
    settings = Settings(model_root=root, redis_url=options.redis_url,
                        rules_file=options.rules_file)
    result = warm(settings, version, "active", options.active_days, options.processes)
    return {"users": result.users, "written": result.written,
            "seconds": round(result.seconds, 2)}


def save_summary(root: Path, summary: dict[str, Any]) -> Path:
    runs = root / RUNS_DIR
    runs.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    path = runs / f"{stamp}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2, default=str))
    os.replace(tmp, path)
    with contextlib.suppress(OSError):
        summary["summary_file"] = str(path)
    return path
