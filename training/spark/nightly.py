"""`recsvc retrain --engine spark`: the nightly job's engine-bound steps on Spark.

The job itself (lock, candidate, gate, warm-up, promotion, forgetting, retention) is
`training.retrain`'s; this gathers tonight's inputs into Spark, fits the candidate with
`engine.fit_on_spark`, and runs the gate's two refits on Spark over the same time split
the local gate makes (`training.splits.time_split`: the newest `gate_fraction` of events
tested, its cut-off found exactly)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from recsvc.core.clock import SECONDS_PER_DAY
from recsvc.core.errors import InputError
from recsvc.core.manifest import ModelCard
from recsvc.core.model import RecommenderModel
from training.config import SparkConfig, TrainConfig
from training.evaluate import GateResult
from training.gather import REQUIRED, input_files, is_events_file
from training.progress import Progress
from training.retrain import RetrainOptions, catalog_tables, gate_refits
from training.spark.engine import clean_tables, fit_on_spark
from training.spark.prepare import BUCKET, Cleaned
from training.spark.read import ROW, read_all, read_events
from training.spark.session import spark_session

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


@dataclass
class SparkNight:
    config: SparkConfig = field(default_factory=SparkConfig)
    session: SparkSession | None = None

    def start(self) -> SparkSession:
        if self.session is None:
            self.session = spark_session(self.config)
        return self.session

    def load(self, options: RetrainOptions, progress: Progress
             ) -> tuple[Cleaned, dict[str, Any]]:
        session = self.start()
        files = input_files(list(options.interactions))
        if options.events_dir is not None and options.events_dir.is_dir():
            files += [p for p in sorted(options.events_dir.iterdir())
                      if is_events_file(p) and p not in files]
        base = [p for p in files if not is_events_file(p)]
        service = [p for p in files if is_events_file(p)]
        reads = [read_events(session, p) for p in base]
        skipped = 0
        if service:
            frame, names = read_events(session, service, malformed="DROPMALFORMED")
            whole = frame
            for column in REQUIRED:
                whole = whole.where(whole[column].isNotNull())
            lines = session.read.text([str(p) for p in service])
            skipped = (lines.where("trim(value) != ''").count() - whole.count())
            reads.append((whole, names))
        raw, sources = read_all(session, reads)
        items, users = catalog_tables(options)
        if items is not None:
            items = items.dropna(subset=["item_id"]).drop_duplicates("item_id", keep="last")
        cleaned = clean_tables(session, raw, sources, items, users, options.config,
                               options.privacy, progress)
        cleaned.data.report["service_lines_skipped"] = int(skipped)
        cleaned = within_window(cleaned, options.config.input.window_days)
        if cleaned.rows == 0:
            raise InputError("no usable events after cleaning")
        described = [{"path": name, "service_events": is_events_file(Path(name))}
                     for name in sources]
        return cleaned, {"files": described, "skipped_service_lines": int(skipped),
                         "data_quality": cleaned.data.report, "engine": "spark"}

    def fit(self, config: TrainConfig, data: Cleaned, progress: Progress,
            inputs: dict[str, Any]) -> RecommenderModel:
        return fit_on_spark(config, data, progress, inputs)

    def compare(self, data: Cleaned, candidate: ModelCard, current: ModelCard,
                options: RetrainOptions) -> tuple[GateResult, dict[str, Any]]:
        from pyspark.sql import functions as F

        cutoff = newest_share_cutoff(data.events, data.rows, options.gate_fraction)
        past = restricted(data, F.col("timestamp") < cutoff)
        future = (data.events.where(F.col("timestamp") >= cutoff).orderBy(ROW)
                  .drop(ROW, BUCKET).toPandas())
        if past.rows == 0 or len(future) == 0:
            raise InputError("the time split leaves no events on one side of the cut-off")
        for column in ("user_id", "item_id", "event_type"):
            future[column] = future[column].astype("category")
        quiet = Progress(quiet=True)
        result, scores = gate_refits(lambda config: fit_on_spark(config, past, quiet, {}),
                                     future, data.data.users, candidate, current, options)
        iso = pd.Timestamp(cutoff, unit="s", tz="UTC").isoformat()
        return result, {"split": {"method": "time", "cutoff": cutoff, "cutoff_iso": iso},
                        "metrics": scores}


def newest_share_cutoff(events: DataFrame, rows: int, fraction: float) -> int:
    """`time_split`'s cut-off, exactly: the time at position ceil((n-1)(1-f)) of the
    sorted times (numpy's "higher" quantile), found from per-day then per-second counts."""
    from pyspark.sql import functions as F

    if not 0 < fraction < 1:
        raise InputError(f"--gate-fraction must be between 0 and 1, not {fraction}")
    position = int(np.ceil((rows - 1) * (1 - fraction)))
    day = F.floor(F.col("timestamp") / int(SECONDS_PER_DAY))
    days = events.groupBy(day.alias("day")).count().orderBy("day").toPandas()
    before = days["count"].cumsum().to_numpy()
    at = int(np.searchsorted(before, position, side="right"))
    seconds = (events.where(day == int(days["day"].iloc[at])).groupBy("timestamp").count()
               .orderBy("timestamp").toPandas())
    offset = position - (int(before[at - 1]) if at else 0)
    within = int(np.searchsorted(seconds["count"].cumsum().to_numpy(), offset, side="right"))
    return int(seconds["timestamp"].iloc[within])


def restricted(cleaned: Cleaned, where: Any) -> Cleaned:
    """The clean events `where` holds, with what the driver keeps of them recomputed."""
    from pyspark.sql import functions as F

    events = cleaned.events.where(where)
    facts = events.agg(F.max("timestamp").alias("t"), F.count(F.lit(1)).alias("n")).first()
    users = np.asarray([r[0] for r in events.select("user_id").distinct().collect()], str)
    items = np.asarray([r[0] for r in events.select("item_id").distinct().collect()], str)
    return replace(cleaned, events=events, event_users=users, event_items=items,
                   reference_time=int(facts["t"] or 0), rows=int(facts["n"]))


def within_window(cleaned: Cleaned, window_days: float | None) -> Cleaned:
    """`pipeline.apply_window` on Spark: the last `window_days` before the newest event."""
    from pyspark.sql import functions as F

    if not window_days:
        return cleaned
    start = cleaned.reference_time - window_days * SECONDS_PER_DAY
    kept = restricted(cleaned, F.col("timestamp") >= start)
    kept.data.report["rows_outside_window"] = cleaned.rows - kept.rows
    kept.data.report["window_days"] = window_days
    return kept
