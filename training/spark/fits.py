"""Fitting on Spark what learns from every event, and ALS on the confidence matrix.

Each function fits one registered algorithm (by name, in `SPARK_FITS`) from the indexed
events (`prepare.indexed_events`) to exactly the state its local `fit` gives: the local
fit is the oracle tests/test_spark_engine.py holds these to. An algorithm that learns
from events (`Recommender.learns_from_events`) and has no entry here is left out of a
Spark-trained model, with the reason in the training log; one that learns from the
per-pair matrices alone is fitted on the driver as the local engine fits it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from recsvc.core.algorithms import MatrixFactorization, Recommender, Transitions, Trending
from recsvc.core.algorithms.history import PurchaseHistory, rates_from_counts
from recsvc.core.algorithms.transitions import strongest_per_row
from recsvc.core.clock import SECONDS_PER_DAY
from training.spark.read import ROW

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


@dataclass
class SparkInputs:
    events: DataFrame  # u, i, w, t, bought, _row (`prepare.indexed_events`)
    confidences: DataFrame  # row, col, value: the decayed confidence matrix's entries
    n_users: int
    n_items: int
    reference_time: int


def fit_als(model: Recommender, inputs: SparkInputs) -> bool:
    """Spark ML's ALS with implicit preferences on log1p of the confidences (as `cf`
    compresses them), its settings taken from `cf`'s. BPR has no Spark form: False."""
    from pyspark.ml.recommendation import ALS
    from pyspark.sql import functions as F

    assert isinstance(model, MatrixFactorization)
    p = model.params
    if p.algorithm != "als":
        return False
    ratings = inputs.confidences.select(F.col("row").cast("int").alias("user"),
                                        F.col("col").cast("int").alias("item"),
                                        F.log1p("value").cast("float").alias("rating"))
    als = ALS(rank=p.factors, maxIter=p.iterations, regParam=p.regularization, alpha=p.alpha,
              implicitPrefs=True, seed=p.random_state, userCol="user", itemCol="item",
              ratingCol="rating", nonnegative=False)
    fitted = als.fit(ratings)
    model.user_factors = _factors(fitted.userFactors, inputs.n_users, p.factors)
    model.item_factors = _factors(fitted.itemFactors, inputs.n_items, p.factors)
    return True


def _factors(frame: DataFrame, rows: int, k: int) -> np.ndarray:
    """Dense factors, zero for ids ALS never saw (no positive confidence)."""
    table = frame.toPandas()
    out = np.zeros((rows, k), dtype=np.float32)
    if len(table):
        out[table["id"].to_numpy()] = np.stack(table["features"].to_numpy()).astype(np.float32)
    return out


def fit_trending(model: Recommender, inputs: SparkInputs) -> bool:
    from pyspark.sql import functions as F

    assert isinstance(model, Trending)
    p = model.params
    age = (F.lit(inputs.reference_time) - F.col("t")) / SECONDS_PER_DAY
    sums = (inputs.events.where((age <= p.window_days) & (F.col("w") > 0))
            .groupBy("i").agg(F.sum(F.col("w") * F.pow(F.lit(0.5), age / p.half_life_days))
                              .alias("trend")).toPandas())
    trend = np.zeros(inputs.n_items, dtype=np.float64)
    trend[sums["i"].to_numpy()] = sums["trend"].to_numpy()
    model.trend = trend.astype(np.float32)
    return True


def fit_transitions(model: Recommender, inputs: SparkInputs) -> bool:
    """`Transitions.fit`: each shopper's events in order (time, then as read), a run on
    one item merged into its first event, then for each of the `window` steps ahead
    the pair (earlier item, later item) weighed by distance and by the later event's
    age; each item's `neighbours` strongest successors, scaled to sum to one."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    assert isinstance(model, Transitions)
    p = model.params
    order = Window.partitionBy("u").orderBy("t", ROW)
    steps = (inputs.events.where(F.col("w") > 0)
             .withColumn("before", F.lag("i").over(order))
             .where(F.col("before").isNull() | (F.col("before") != F.col("i")))
             .select("u", "i", "t", ROW))
    age = F.pow(F.lit(0.5), (F.lit(inputs.reference_time) - F.col("t_next"))
                / (p.half_life_days * SECONDS_PER_DAY))
    pairs = None
    for step in range(1, p.window + 1):
        ahead = (steps.withColumn("next", F.lead("i", step).over(order))
                 .withColumn("t_next", F.lead("t", step).over(order))
                 .where(F.col("next").isNotNull() & (F.col("next") != F.col("i")))
                 .select(F.col("i").alias("a"), F.col("next").alias("b"),
                         (F.lit(p.distance_decay ** (step - 1)) * age).alias("w")))
        pairs = ahead if pairs is None else pairs.unionByName(ahead)
    assert pairs is not None
    strongest = Window.partitionBy("a").orderBy(F.col("w").desc(), F.col("b"))
    kept = (pairs.groupBy("a", "b").agg(F.sum("w").alias("w"))
            .withColumn("rank", F.row_number().over(strongest))
            .where(F.col("rank") <= p.neighbours).toPandas())
    counts = sp.csr_matrix((kept["w"].to_numpy(), (kept["a"].to_numpy(), kept["b"].to_numpy())),
                           shape=(inputs.n_items, inputs.n_items), dtype=np.float64)
    model.successors = strongest_per_row(counts, p.neighbours)
    model.__dict__.pop("_relation", None)
    return True


def fit_history(model: Recommender, inputs: SparkInputs) -> bool:
    """Repeat rates: per item, its buyers and those who bought it on two or more days."""
    from pyspark.sql import functions as F

    assert isinstance(model, PurchaseHistory)
    days = (inputs.events.where(F.col("bought") > 0)
            .select("u", "i", F.floor(F.col("t") / int(SECONDS_PER_DAY)).alias("day"))
            .distinct().groupBy("u", "i").agg(F.count(F.lit(1)).alias("days")))
    per_item = (days.groupBy("i").agg(F.count(F.lit(1)).alias("buyers"),
                                      F.sum((F.col("days") > 1).cast("int")).alias("again"))
                .toPandas())
    model.repeat_rate = None
    if len(per_item):
        buyers = np.zeros(inputs.n_items, dtype=np.float64)
        again = np.zeros(inputs.n_items, dtype=np.float64)
        buyers[per_item["i"].to_numpy()] = per_item["buyers"].to_numpy()
        again[per_item["i"].to_numpy()] = per_item["again"].to_numpy()
        model.repeat_rate = rates_from_counts(buyers, again, model.params.repeat_prior)
    return True


# name -> fit; a fit returns False when this model's settings have no Spark form.
SPARK_FITS: dict[str, Callable[[Recommender, SparkInputs], bool]] = {
    MatrixFactorization.name: fit_als,
    Trending.name: fit_trending,
    Transitions.name: fit_transitions,
    PurchaseHistory.name: fit_history,
}
