"""The whole trainer: load -> clean -> weight -> fit -> tune -> write, one stage each."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recsvc import __version__
from recsvc.core.algorithms import Recommender, TrainingData, algorithm
from recsvc.core.algorithms.base import ShopFacts
from recsvc.core.algorithms.content import ContentModel
from recsvc.core.artifacts import VersionWriter, sha256_file
from recsvc.core.clock import SECONDS_PER_DAY
from recsvc.core.errors import InputError, RecsvcError
from recsvc.core.lifecycle import State, mark, promote, prune
from recsvc.core.manifest import Manifest, Metrics, ModelCard, TrainingInfo, TuningSummary
from recsvc.core.model import RecommenderModel, as_str_array
from recsvc.core.policy.privacy import IdHasher
from training.catalog import aligned_items, id_universe, item_metadata, user_attributes
from training.clean import CleanData, clean, event_weights, format_report
from training.config import TrainConfig
from training.fit import build, build_components, fit_components
from training.forgotten import Privacy
from training.progress import Progress
from training.readers import read_interactions, read_items, read_users
from training.search import expand_searches
from training.signals import build_training_data, repeat_purchase_rate
from training.tune import TuningResult, tune

# At this share of purchases that repeat an earlier one, the shop is one where people
# reorder: bought items may come back, and the shopper's own history weighs in.
REPEAT_RATE_THRESHOLD = 0.1


@dataclass
class TrainResult:
    version: str
    manifest: Manifest
    model: RecommenderModel


def load_inputs(config: TrainConfig, progress: Progress,
                privacy: Privacy | None = None) -> tuple[CleanData, dict[str, Any]]:
    """Load and clean stages. Returns the clean data and the description of the inputs."""
    paths = {"interactions": config.input.interactions, "items": config.input.items,
             "users": config.input.users}
    if paths["interactions"] is None:
        raise InputError("no interactions file given (--interactions or [input] interactions)")
    readers = {"interactions": read_interactions, "items": read_items, "users": read_users}
    tables: dict[str, Any] = {}
    inputs: dict[str, Any] = {}
    # Checksums are computed in a thread while the files are parsed (hashlib releases
    # the GIL), so recording them costs next to nothing.
    with ThreadPoolExecutor(max_workers=1) as hasher:
        digests = {role: hasher.submit(sha256_file, Path(path))
                   for role, path in paths.items() if path is not None and Path(path).is_file()}
        for role, path in paths.items():
            if path is None:
                tables[role] = None
                continue
            with progress.step(f"load.{role}", path=str(path)) as step:
                tables[role] = readers[role](path)
                step.note(rows=len(tables[role]))
            inputs[role] = {"path": str(Path(path).resolve()), "sha256": digests[role].result(),
                            "rows": int(len(tables[role]))}
    searched: dict[str, Any] = {}
    if "query" in tables["interactions"].columns:  # searches: matched to catalog items
        with progress.step("search") as step:
            content = (build(config.model, "content") if "content" in config.model.enabled()
                       else ContentModel())
            assert isinstance(content, ContentModel)
            tables["interactions"], searched = expand_searches(
                tables["interactions"], tables["items"], config.events, content)
            step.note(**searched)
    with progress.step("clean") as step:
        data = clean(tables["interactions"], tables["items"], tables["users"],
                     config.events, config.cleaning, [str(paths["interactions"])],
                     forgotten=privacy.forgotten if privacy else None,
                     shown_id=privacy.shown_id if privacy else str)
        step.note(kept=data.report["rows_kept"])
    data.report.update(searched)
    if data.report["rows_kept"] == 0:
        raise InputError(f"interactions file {paths['interactions']}: no usable events "
                         f"after cleaning ({data.report['rows_dropped']})")
    return data, inputs


def apply_window(data: CleanData, window_days: float | None) -> CleanData:
    """Keep the last `window_days` of events (before the newest), so the nightly cost
    stays flat as logs grow. The dropped count goes into the data-quality report."""
    if not window_days:
        return data
    times = data.events["timestamp"].to_numpy(dtype=np.int64)
    keep = times >= times.max() - window_days * SECONDS_PER_DAY
    data.report["rows_outside_window"] = int((~keep).sum())
    data.report["window_days"] = window_days
    return CleanData(events=data.events.loc[keep], items=data.items, users=data.users,
                     opted_out=data.opted_out, report=data.report)


def default_blend(config: TrainConfig, facts: ShopFacts) -> tuple[dict[str, float], bool]:
    """Starting weights (each algorithm's `starting_weight`, then the config's), and
    whether bought items are excluded: not in a shop where people reorder."""
    weights = {name: algorithm(name).starting_weight(facts) for name in config.model.enabled()}
    weights.update(config.blend.weights)
    exclude = (not facts.repeat_buying if config.blend.exclude_seen is None
               else config.blend.exclude_seen)
    return weights, exclude


def attributes_needed(config: TrainConfig) -> list[str]:
    """User attribute columns the enabled algorithms learn from, in first-use order."""
    names: list[str] = []
    for name in config.model.enabled():
        names += [a for a in build(config.model, name).user_attributes() if a not in names]
    return names


def settled_config(config: TrainConfig, result: TuningResult) -> TrainConfig:
    """The config with tuning's choices in it: `recsvc train --no-tune` with it fits the
    same model again (saved in the manifest; the nightly gate refits it so)."""
    settled = config.model_copy(deep=True)
    for name, params in result.params.items():
        settled.model.set(name, **params)
    settled.signals.half_life_days = result.half_life_days
    settled.events = settled.events.model_copy(
        update={"quantity_scaling": result.quantity_scaling})
    settled.blend.weights = dict(result.weights)
    settled.blend.exclude_seen = result.exclude_seen
    return settled


@dataclass
class Shop:
    """The model's id arrays, and the catalog and users table aligned with them."""

    user_ids: np.ndarray
    item_ids: np.ndarray
    items: Any  # pd.DataFrame, catalog rows in item-number order
    attributes: dict[str, tuple[np.ndarray, list[str]]]
    metadata: dict[str, np.ndarray]


def describe_shop(config: TrainConfig, data: CleanData, user_ids: np.ndarray,
                  item_ids: np.ndarray) -> Shop:
    items = aligned_items(data, item_ids)
    return Shop(user_ids, item_ids, items,
                user_attributes(data, user_ids, attributes_needed(config)),
                item_metadata(items))


def choose_settings(config: TrainConfig, events: Any, shop: Shop, repeat_rate: float,
                    progress: Progress) -> tuple[TuningResult, TrainConfig]:
    """Tune stage (on `events`: all of them, or the Spark engine's sample of shoppers):
    the tuning result and the config settled with it."""
    weights, exclude_seen = default_blend(config, ShopFacts(repeat_rate >= REPEAT_RATE_THRESHOLD))
    result = TuningResult(params={}, half_life_days=config.signals.half_life_days,
                          weights=weights, exclude_seen=exclude_seen,
                          quantity_scaling=config.events.quantity_scaling)
    if config.tuning.enabled:
        result = tune(events, shop.user_ids, shop.item_ids, shop.items, shop.attributes,
                      shop.metadata["item_in_stock"], result, config, progress)
    else:
        result.skipped = "disabled (--no-tune)"
    return result, settled_config(config, result)


def fit_model(
    config: TrainConfig, data: CleanData, progress: Progress, inputs: dict[str, Any] | None = None
) -> RecommenderModel:
    """Weight, tune and fit stages on clean data: a complete model in memory, with its
    card (`model.card`). Nothing is written."""
    user_ids, item_ids = id_universe(data)
    shop = describe_shop(config, data, user_ids, item_ids)
    repeat_rate = repeat_purchase_rate(data.events)
    result, settled = choose_settings(config, data.events, shop, repeat_rate, progress)
    events = data.events
    if settled.events != config.events:
        events = events.assign(weight=event_weights(events, settled.events))
    with progress.step("weight", half_life_days=result.half_life_days,
                       quantity_scaling=result.quantity_scaling):
        training = build_training_data(events, user_ids, item_ids, result.half_life_days,
                                       shop.items, shop.attributes)
    components = fit_components(build_components(settled.model, training), training,
                                progress)
    return assemble(settled, result, training, components, shop, data, repeat_rate, inputs)


def assemble(settled: TrainConfig, result: TuningResult, training: TrainingData,
             components: dict[str, Recommender], shop: Shop, data: CleanData,
             repeat_rate: float, inputs: dict[str, Any] | None) -> RecommenderModel:
    """The model and its card from what every engine's stages produced."""
    settled.blend.weights = {name: w for name, w in result.weights.items() if name in components}
    last_seen = np.zeros(len(shop.user_ids), dtype=np.int64)
    np.maximum.at(last_seen, training.event_users, training.event_times)
    if training.user_last_seen is not None:  # an engine that kept no events says
        last_seen = training.user_last_seen
    card = ModelCard(
        recsvc_version=__version__,
        events=settled.events.model_dump(),
        training=TrainingInfo(reference_time=training.reference_time,
                              half_life_days=result.half_life_days,
                              repeat_purchase_rate=round(repeat_rate, 4),
                              config=settled.model_dump(mode="json")),
        tuning=TuningSummary.model_validate(result.summary()),
        metrics=Metrics(validation=result.metrics),
        inputs=inputs or {},
        data_quality=data.report,
    )
    return RecommenderModel(
        user_last_seen=last_seen,
        user_ids=shop.user_ids,
        item_ids=shop.item_ids,
        user_items=training.user_items,
        components=components,
        weights=dict(settled.blend.weights),
        exclude_seen=result.exclude_seen,
        user_attributes={n: (codes, as_str_array(values))
                         for n, (codes, values) in shop.attributes.items()},
        **hashed_opt_outs(data.opted_out),
        user_purchases=training.user_purchases,
        user_negatives=training.user_negatives,
        user_search_only=training.user_search_only,
        user_recent=training.user_recent,
        card=card,
        **shop.metadata,
    )


def hashed_opt_outs(opted_out: np.ndarray) -> dict[str, Any]:
    """The model's record of who refused personalization: keyed hashes under a fresh
    random key, so that the model file names nobody."""
    salt = os.urandom(16)
    return {"opted_out": np.unique(IdHasher(salt).digests(opted_out)),
            "opted_out_salt": salt}


def write_model(config: TrainConfig, model: RecommenderModel, progress: Progress,
                make_current: bool = True) -> str:
    """Write stage: a new version under the model root, made current (unless the caller
    decides later, as the nightly job does); old ones pruned."""
    if config.output.model_root is None:
        raise InputError("no model root given (--model-root or [output] model_root)")
    assert model.card is not None
    try:
        model.check()
    except ValueError as exc:  # never written, let alone served
        raise RecsvcError(f"the trained model is inconsistent (a trainer bug): {exc}") from None
    with progress.step("write", model_root=str(config.output.model_root)) as step:
        with VersionWriter(config.output.model_root) as writer:
            model.manifest = writer.commit(model.card, model.save(writer))
        version = model.manifest.version
        removed: list[str] = []
        if make_current:
            promote(config.output.model_root, version, by="recsvc train")
            removed = prune(config.output.model_root, config.output.keep_versions)
        else:
            mark(config.output.model_root, version, State.CANDIDATE)
        step.note(version=version, pruned=len(removed))
    return version


def train(config: TrainConfig, progress: Progress | None = None,
          privacy: Privacy | None = None) -> TrainResult:
    progress = progress or Progress()
    if config.output.model_root is None:
        raise InputError("no model root given (--model-root or [output] model_root)")
    data, inputs = load_inputs(config, progress, privacy)
    progress.text(format_report(data.report))
    data = apply_window(data, config.input.window_days)
    model = fit_model(config, data, progress, inputs)
    version = write_model(config, model, progress)
    assert model.manifest is not None
    return TrainResult(version=version, manifest=model.manifest, model=model)


def format_summary(result: TrainResult) -> str:
    m = result.manifest
    lines = [f"model {result.version}: {m.counts.users:,} users, {m.counts.items:,} items, "
             f"{m.counts.interactions:,} user-item pairs"]
    weights = ", ".join(f"{k} {v:g}" for k, v in m.blend.weights.items() if v)
    lines.append(f"blend: {weights}; already-bought items "
                 f"{'excluded' if m.blend.exclude_seen else 'may be recommended again'}")
    if m.tuning.skipped:
        lines.append(f"tuning: skipped ({m.tuning.skipped})")
    else:
        lines.append(f"tuning: {len(m.tuning.trials)} trials in {m.tuning.seconds:.1f}s "
                     f"(budget {m.tuning.budget_s:g}s)")
        lines.append("validation (time split): " + ", ".join(
            f"{k} {v:.4f}" for k, v in m.metrics.validation.items()))
    return "\n".join(lines)


__all__ = ["Shop", "TrainResult", "assemble", "choose_settings", "default_blend",
           "describe_shop", "fit_model", "format_summary", "load_inputs", "train",
           "write_model"]
