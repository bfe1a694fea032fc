"""Quality benchmark on the online-retail protocol (../shared/data/online-retail/README.md).

Converts the log, trains the default pipeline (no hand-set hyperparameters) on the events
before 2011-10-01, and scores the returning customers through `recsvc.scoring` — the
service's own ranking code — against what they bought from 2011-10-01 on.

    .venv/bin/python bench/online_retail.py [--data ../shared/data/online-retail]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsvc.model import load_model
from recsvc.scoring import recommend
from training.config import TrainConfig
from training.converters.online_retail import convert, read_online_retail
from training.metrics import ranking_metrics
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

    config = TrainConfig()
    config.input.interactions = train_path
    config.input.items = args.workdir / "items.csv"
    config.input.users = args.workdir / "users.csv"
    config.output.model_root = args.workdir / "models"
    t0 = time.perf_counter()
    train(config, Progress(quiet=True))
    train_seconds = time.perf_counter() - t0
    model = load_model(config.output.model_root)

    users = model.user_index(test["user_id"].unique())
    assert (users >= 0).all()
    row = {u: r for r, u in enumerate(users)}
    items = model.item_index(test["item_id"])
    known = items >= 0
    rows = np.array([row[u] for u in model.user_index(test["user_id"])])[known]
    relevant = sp.csr_matrix((np.ones(rows.size), (rows, items[known])),
                             shape=(users.size, model.n_items))
    relevant.data[:] = 1.0
    ranking = recommend(model, model.batch(users), args.k)
    metrics = ranking_metrics(ranking.items, relevant, args.k)
    result = {
        "test_customers": int(users.size),
        "test_rows": int(len(test)),
        **{k: round(v, 4) for k, v in metrics.items()},
        "train_seconds_with_tuning": round(train_seconds, 1),
        "blend": model.manifest["blend"],
        "tuned_cf": model.manifest["tuning"]["best"]["cf"],
        "half_life_days": model.manifest["training"]["half_life_days"],
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
