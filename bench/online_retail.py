"""Quality benchmark on the online-retail protocol (../shared/data/online-retail/README.md).

Converts the log, trains the default pipeline (no hand-set hyperparameters) on the events
before 2011-10-01, and scores the returning customers with `recsvc evaluate` (the
service's own ranking code) against what they bought from 2011-10-01 on; the report
lands beside the model.

    .venv/bin/python bench/online_retail.py [--data ../shared/data/online-retail]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

from recsvc.cli import main as recsvc_main
from recsvc.core.model import load_model
from training.config import TrainConfig
from training.converters.online_retail import convert, read_online_retail
from training.pipeline import train
from training.progress import Progress

CUTOFF = pd.Timestamp("2011-10-01", tz="UTC")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=Path("../shared/data/online-retail"))
    p.add_argument("--workdir", type=Path, default=Path("bench/results/online_retail"))
    p.add_argument("--k", type=int, default=10)
    args = p.parse_args()
    tables = convert(read_online_retail(args.data / "online_retail_non_uk.csv"))
    events = tables["interactions"]
    when = pd.to_datetime(events["timestamp"], utc=True)
    args.workdir.mkdir(parents=True, exist_ok=True)
    train_path = args.workdir / "train.csv"
    events[when < CUTOFF].to_csv(train_path, index=False)
    tables["items"].to_csv(args.workdir / "items.csv", index=False)
    tables["users"].to_csv(args.workdir / "users.csv", index=False)
    test = events[(when >= CUTOFF) & (events["event_type"] == "purchase")]
    bought_before = events.loc[(when < CUTOFF) & (events["event_type"] == "purchase"), "user_id"]
    test = test[test["user_id"].isin(bought_before)]
    test_path = args.workdir / "test.csv"
    test.to_csv(test_path, index=False)

    config = TrainConfig()
    config.input.interactions = train_path
    config.input.items = args.workdir / "items.csv"
    config.input.users = args.workdir / "users.csv"
    config.output.model_root = args.workdir / "models"
    t0 = time.perf_counter()
    train(config, Progress(quiet=True))
    train_seconds = time.perf_counter() - t0
    model = load_model(config.output.model_root)

    # Scored by `recsvc evaluate`, exactly as a user would run it.
    metrics_path = args.workdir / "evaluation.json"
    code = recsvc_main(["evaluate", "--model-root", str(config.output.model_root), "--test",
                 str(test_path), "--k", f"5,{args.k},20", "--json", str(metrics_path),
                 "--quiet"])
    if code != 0:
        return code
    evaluation = json.loads(metrics_path.read_text())
    result = {
        "test_customers": evaluation["test"]["users"],
        "test_rows": int(len(test)),
        **{f"{m}@{args.k}": round(evaluation[f"{m}@{args.k}"], 4)
           for m in ("precision", "recall", "ndcg", "map", "hit_rate", "coverage")},
        "train_seconds_with_tuning": round(train_seconds, 1),
        "blend": model.manifest.blend.model_dump(),
        "tuned": model.manifest.tuning.best,
        "algorithms_alone": {name: {f"precision@{args.k}": round(row[f"precision@{args.k}"], 4),
                                    f"ndcg@{args.k}": round(row[f"ndcg@{args.k}"], 4)}
                             for name, row in evaluation["models"].items()},
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
