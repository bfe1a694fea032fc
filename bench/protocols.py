"""Quality off the home protocol: the default pipeline against its baselines on other
shapes of evaluation, through `recsvc evaluate`'s split mode (the real CLI: it cleans,
splits, trains in memory and scores with the service's ranking).

Data: the online-retail log (../shared/data/online-retail, converted) and a generated
store. Protocols:

- `random`: a random 25% of the (user, item) purchase pairs held out, stratified per
  item, every held-out pair relevant, seen items removed (how a ratings set is judged);
- `leave-last`: each shopper's last purchase held out, the whole catalogue ranked
  (a repeat purchase counts: the model serves as trained).

Rows, each on the same split: popularity alone, the untuned defaults (`--no-tune`), the
default pipeline (`recsvc evaluate --split P` with no other option: tuned on P's folds,
as a shop judged by P sets `tuning.split`), the nightly job's default (tuned on time
windows, `--tune-split time`), and an independent baseline computed here: items that
followed the shopper's last 3 items in other shoppers' sequences, plus items bought
together with them (transition counts + co-purchase counts).

    .venv/bin/python bench/protocols.py [--budget 60] [--only online-retail]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from recsvc.core.model import lookup
from training.config import TrainConfig
from training.converters.online_retail import convert, read_online_retail
from training.metrics import ranking_metrics
from training.pipeline import load_inputs
from training.progress import Progress
from training.splits import is_target, split_events

PROTOCOLS = {"random": ["--split", "random", "--random-by", "item", "--test-fraction", "0.25"],
             "leave-last": ["--split", "leave-last", "--leave-last", "1"]}


def evaluate(paths: dict[str, Path], protocol: str, extra: list[str], out: Path) -> dict:
    args = [sys.executable, "-m", "recsvc", "evaluate", "--interactions",
            str(paths["interactions"]), "--items", str(paths["items"]), "--users",
            str(paths["users"]), *PROTOCOLS[protocol], "--k", "10", "--json", str(out),
            "--no-report", "--quiet", *extra]
    subprocess.run(args, check=True, capture_output=True)
    return json.loads(out.read_text())


def transitions_baseline(paths: dict[str, Path], protocol: str) -> dict[str, float]:
    """The last-3-items baseline on the same split as `recsvc evaluate` makes."""
    config = TrainConfig()
    config.input.interactions, config.input.items = paths["interactions"], paths["items"]
    config.input.users = paths["users"]
    data, _ = load_inputs(config, Progress(quiet=True))
    split = (split_events(data.events, "random", ["purchase"], test_fraction=0.25, by="item")
             if protocol == "random" else split_events(data.events, "leave-last", ["purchase"]))
    train, test = split.train, split.test
    items = np.array(sorted(data.events["item_id"].astype(str).unique()))
    users = np.array(sorted(data.events["user_id"].astype(str).unique()))
    u = lookup(users, train["user_id"].astype(str).to_numpy())
    i = lookup(items, train["item_id"].astype(str).to_numpy())
    t = train["timestamp"].to_numpy()
    order = np.lexsort((t, u))
    u, i = u[order], i[order]
    step = np.r_[True, (u[1:] != u[:-1]) | (i[1:] != i[:-1])]
    u, i = u[step], i[step]
    rows, cols = [], []
    for ahead in (1, 2, 3):
        same = u[ahead:] == u[:-ahead]
        rows.append(i[:-ahead][same])
        cols.append(i[ahead:][same])
    n = items.size
    follows = sp.csr_matrix((np.ones(sum(r.size for r in rows)),
                             (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    bought = train.loc[is_target(train, ["purchase"])]
    pu = lookup(users, bought["user_id"].astype(str).to_numpy())
    pi = lookup(items, bought["item_id"].astype(str).to_numpy())
    basket = sp.csr_matrix((np.ones(pu.size), (pu, pi)), shape=(users.size, n))
    basket.data[:] = 1.0
    together = sp.csr_matrix(basket.T @ basket)
    together.setdiag(0)
    relation = sp.csr_matrix(follows + together)
    seen = sp.csr_matrix((np.ones(u.size), (u, i)), shape=(users.size, n))
    targets = test.loc[is_target(test, ["purchase"])]
    tu = lookup(users, targets["user_id"].astype(str).to_numpy())
    ti = lookup(items, targets["item_id"].astype(str).to_numpy())
    tested = np.unique(tu)
    starts = np.searchsorted(u, tested)
    ends = np.searchsorted(u, tested, side="right")
    ranked = []
    for user, lo, hi in zip(tested, starts, ends, strict=True):
        last = i[max(lo, hi - 3):hi]
        scores = np.asarray(relation[last].sum(axis=0)).ravel() if last.size else np.zeros(n)
        if protocol == "random":  # held-out pairs are unseen by construction
            scores[seen[user].indices] = -np.inf
        top = np.argsort(-scores, kind="stable")[:10]
        ranked.append(top[np.isfinite(scores[top]) & (scores[top] > 0)])
    row = np.searchsorted(tested, tu)
    relevant = sp.csr_matrix((np.ones(tu.size), (row, ti)), shape=(tested.size, n))
    relevant.data[:] = 1.0
    return ranking_metrics(ranked, relevant, 10)


def datasets(args: argparse.Namespace, work: Path) -> dict[str, dict[str, Path]]:
    out = {}
    if args.only in (None, "online-retail"):
        folder = work / "online-retail"
        folder.mkdir(parents=True, exist_ok=True)
        tables = convert(read_online_retail(args.data / "online_retail_non_uk.csv"))
        out["online-retail"] = {}
        for name, table in tables.items():
            path = folder / f"{name}.csv"
            table.to_csv(path, index=False)
            out["online-retail"][name] = path
    if args.only in (None, "generated"):
        folder = work / "generated"
        subprocess.run([sys.executable, "-m", "recsvc", "generate", "--out", str(folder),
                        "--users", "3000", "--items", "800", "--events", "150000", "--seed",
                        "7"], check=True, capture_output=True)
        out["generated"] = {n: folder / f"{n}.csv" for n in ("interactions", "items", "users")}
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=Path("../shared/data/online-retail"))
    p.add_argument("--workdir", type=Path, default=Path("bench/results/protocols"))
    p.add_argument("--budget", type=float, default=60.0, help="tuning budget per run")
    p.add_argument("--only", choices=["online-retail", "generated"])
    args = p.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    budget = ["--tune-budget", str(args.budget)]
    results: dict[str, dict[str, dict[str, float]]] = {}
    for name, paths in datasets(args, args.workdir).items():
        for protocol in PROTOCOLS:
            key = f"{name} / {protocol}"
            out = args.workdir / f"{name}-{protocol}"
            untuned = evaluate(paths, protocol, ["--no-tune"], out.with_suffix(".untuned.json"))
            tuned = evaluate(paths, protocol, budget, out.with_suffix(".default.json"))
            nightly = evaluate(paths, protocol, [*budget, "--tune-split", "time"],
                               out.with_suffix(".time.json"))
            pick = ("precision@10", "ndcg@10", "hit_rate@10")
            results[key] = {
                "popularity": {m: untuned["models"]["popularity"][m] for m in pick},
                "untuned defaults": {m: untuned[m] for m in pick},
                "default pipeline": {m: tuned[m] for m in pick},
                "tuned on time windows": {m: nightly[m] for m in pick},
                "last-3 transitions + co-purchases": {
                    m: round(v, 6) for m, v in transitions_baseline(paths, protocol).items()
                    if m in pick},
            }
            print(json.dumps({key: results[key]}, indent=1), flush=True)
    (args.workdir / "results.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
