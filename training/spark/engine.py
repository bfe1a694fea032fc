"""`recsvc train --engine spark`: the local engine's stages with Spark doing what grows
with the events. The model is assembled and written by the local engine's own code
(`training.pipeline.assemble`, `write_model`): the service cannot tell the engines'
models apart."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from recsvc.core.algorithms import Recommender, algorithm
from recsvc.core.errors import InputError
from recsvc.core.model import RecommenderModel
from training.catalog import universe
from training.clean import consenting_users, format_report
from training.config import TrainConfig
from training.fit import build_components
from training.forgotten import Privacy
from training.pipeline import (
    TrainResult,
    assemble,
    choose_settings,
    describe_shop,
    write_model,
)
from training.progress import Progress
from training.readers import read_items, read_users
from training.spark.fits import SPARK_FITS, SparkInputs
from training.spark.prepare import BUCKET, Cleaned, clean_events, indexed_events, weigh
from training.spark.read import ROW, read_events
from training.spark.session import bucket_count, spark_session

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def train_on_spark(config: TrainConfig, progress: Progress | None = None,
                   privacy: Privacy | None = None,
                   session: SparkSession | None = None) -> TrainResult:
    progress = progress or Progress()
    privacy = privacy or Privacy()
    if config.output.model_root is None:
        raise InputError("no model root given (--model-root or [output] model_root)")
    if config.input.window_days:
        raise InputError("[input] window_days is read by the local engine only")
    with progress.step("spark.start", master=config.spark.master):
        session = session or spark_session(config.spark)
    cleaned, inputs = load_and_clean(session, config, progress, privacy)
    progress.text(format_report(cleaned.data.report))
    model = fit_on_spark(config, cleaned, progress, inputs)
    version = write_model(config, model, progress)
    assert model.manifest is not None
    return TrainResult(version=version, manifest=model.manifest, model=model)


def load_and_clean(session: SparkSession, config: TrainConfig, progress: Progress,
                   privacy: Privacy) -> tuple[Cleaned, dict[str, Any]]:
    """Load and clean stages: the tables on the driver, the events in Spark."""
    path = config.input.interactions
    if path is None:
        raise InputError("no interactions file given (--interactions or [input] interactions)")
    items = users = None
    if config.input.items is not None:
        items = read_items(config.input.items)
        items = items.dropna(subset=["item_id"]).drop_duplicates("item_id", keep="last")
    if config.input.users is not None:
        users = read_users(config.input.users)
    with progress.step("load.interactions", path=str(path)):
        raw, sources = read_events(session, Path(path))
        if raw.limit(1).count() == 0:
            raise InputError(f"interactions file {path}: has a header but no rows")
    cleaned = clean_tables(session, raw, sources, items, users, config, privacy, progress)
    if cleaned.rows == 0:
        raise InputError(f"interactions file {path}: no usable events after cleaning "
                         f"({cleaned.data.report['rows_dropped']})")
    inputs = {"interactions": {"path": str(Path(path).resolve()), "files": len(sources),
                               "rows": cleaned.data.report["rows_read"], "engine": "spark"}}
    return cleaned, inputs


def clean_tables(session: SparkSession, raw: DataFrame, sources: list[str],
                 items: pd.DataFrame | None, users: pd.DataFrame | None,
                 config: TrainConfig, privacy: Privacy, progress: Progress) -> Cleaned:
    """The clean stage: the users table judged on the driver, the events in Spark."""
    gone = None
    forgotten = privacy.forgotten
    if forgotten is not None:
        ids = np.asarray([r[0] for r in raw.select("user_id").distinct().collect()
                          if r[0] is not None], dtype=str)
        gone = ids[forgotten(ids)]
        if users is not None:
            users = users.loc[~forgotten(users["user_id"].astype(str).to_numpy())]
    users, opted_out = consenting_users(users)
    with progress.step("clean") as step:
        cleaned = clean_events(raw, sources, items, users, opted_out, config.events,
                               config.cleaning, bucket_count(session, config.spark), gone,
                               privacy.shown_id)
        step.note(kept=cleaned.rows)
    return cleaned


def tuning_sample(cleaned: Cleaned, limit: int) -> pd.DataFrame:
    """Whole shoppers' events, about `limit` of them, in the order read: what the driver
    tunes on (all the events when there are fewer)."""
    from pyspark.sql import functions as F

    events = cleaned.events
    if cleaned.rows > limit:
        share = limit / cleaned.rows
        events = events.where(F.pmod(F.hash("user_id", F.lit("tune")), F.lit(1_000_000))
                              < int(share * 1_000_000))
    frame = events.orderBy(ROW).drop(ROW, BUCKET).toPandas()
    for column in ("user_id", "item_id", "event_type"):
        frame[column] = frame[column].astype("category")
    return frame


def repeat_share(cleaned: Cleaned) -> float:
    """`signals.repeat_purchase_rate`: the share of purchases of an item its shopper
    had bought before."""
    from pyspark.sql import functions as F

    bought = cleaned.events.where(F.col("event_type") == "purchase")
    facts = bought.agg(F.count(F.lit(1)).alias("n"),
                       F.countDistinct("user_id", "item_id").alias("pairs")).first()
    return (facts["n"] - facts["pairs"]) / facts["n"] if facts["n"] else 0.0


def fit_on_spark(config: TrainConfig, cleaned: Cleaned, progress: Progress,
                 inputs: dict[str, Any]) -> RecommenderModel:
    data = cleaned.data
    user_ids, item_ids = universe(cleaned.event_users, cleaned.event_items, data.users,
                                  data.items)
    shop = describe_shop(config, data, user_ids, item_ids)
    repeat_rate = repeat_share(cleaned)
    sample = None
    if config.tuning.enabled:
        with progress.step("tune.sample") as step:
            sample = tuning_sample(cleaned, config.spark.tune_events)
            step.note(events=len(sample))
    result, settled = choose_settings(config, sample, shop, repeat_rate, progress)
    with progress.step("weight", half_life_days=result.half_life_days,
                       quantity_scaling=result.quantity_scaling):
        training, confidences = weigh(cleaned, user_ids, item_ids, result.half_life_days,
                                      settled.events, reweigh=settled.events != config.events)
    training.items = shop.items
    training.user_attributes = dict(shop.attributes)
    events = indexed_events(cleaned, user_ids, item_ids, settled.events)
    spark_inputs = SparkInputs(events, confidences, len(user_ids), len(item_ids),
                               training.reference_time)
    components: dict[str, Recommender] = {}
    for name, component in build_components(settled.model, training).items():
        with progress.step(f"fit.{name}", users=training.n_users,
                           items=training.n_items) as step:
            fit = SPARK_FITS.get(name)
            if fit is not None and fit(component, spark_inputs):
                step.note(on="spark")
            elif not algorithm(name).learns_from_events:
                component.fit(training)
                step.note(on="driver")
            else:
                step.note(left_out="learns from every event and has no Spark fit")
                continue
            components[name] = component
    events.unpersist()
    return assemble(settled, result, training, components, shop, data, repeat_rate, inputs)
