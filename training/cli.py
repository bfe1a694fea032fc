"""`recsvc generate` and `recsvc train`: options, config merging and output."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from recsvc.cli import Command
from recsvc.core.errors import EXIT_NOT_PROMOTED, EXIT_OK, InputError
from training.config import apply_tuning_options, load_config
from training.progress import Progress


def _configure_train(p: argparse.ArgumentParser) -> None:
    p.add_argument("--interactions", type=Path, help="events file (CSV, CSV.gz, Parquet, JSONL)")
    p.add_argument("--items", type=Path, help="optional item catalog")
    p.add_argument("--users", type=Path, help="optional user table (attributes, consent)")
    p.add_argument("--model-root", type=Path, help="directory holding model versions")
    p.add_argument("--config", type=Path, help="TOML file; options given here override it")
    p.add_argument("--no-tune", action="store_true", help="skip tuning; use configured values")
    p.add_argument("--tune-budget", type=float, metavar="SECONDS",
                   help="time budget for tuning (tuning.time_budget_s)")
    add_tune_split(p)
    add_state_dir(p)
    add_engine(p)
    p.add_argument("--quiet", action="store_true", help="print only the version id")


def _run_train(args: argparse.Namespace) -> int:
    from training.forgotten import Privacy, privacy_for
    from training.pipeline import format_summary, train

    config = load_config(args.config)
    for key in ("interactions", "items", "users"):
        if getattr(args, key) is not None:
            setattr(config.input, key, getattr(args, key))
    if args.model_root is not None:
        config.output.model_root = args.model_root
    apply_tuning_options(config, args.no_tune, args.tune_budget, args.tune_split)
    progress = Progress(quiet=args.quiet)
    privacy = (privacy_for(config.output.model_root, args.state_dir)
               if config.output.model_root is not None else Privacy())
    if args.spark_master is not None:
        config.spark.master = args.spark_master
    if args.engine == "spark":
        from training.spark.engine import train_on_spark

        result = train_on_spark(config, progress, privacy)
    else:
        result = train(config, progress, privacy)
    progress.text(format_summary(result))
    print(result.version)  # alone on stdout, for scripts: V=$(recsvc train ...)
    return EXIT_OK


def add_tune_split(p: argparse.ArgumentParser | argparse._ArgumentGroup,
                   default: str = "time") -> None:
    p.add_argument("--tune-split", choices=["time", "leave-last", "random", "auto"],
                   help=f"the protocol tuning validates on (tuning.split; default {default})")


def add_engine(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", choices=["local", "spark"], default="local",
                   help="local: this machine (default); spark: Apache Spark, for logs "
                        "larger than one machine trains in a night (pip install "
                        "'recsvc[spark]'; needs Java 17+; docs/scale.md)")
    p.add_argument("--spark-master", metavar="URL",
                   help="where Spark runs (spark.master; default local[*]): local[N], "
                        "spark://host:7077, yarn, k8s://...")


def add_state_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--state-dir", type=Path,
                   help="the service's state (events log, privacy ledger; default "
                        "RECSVC_STATE_DIR, else MODEL_ROOT/../state): forgotten shoppers' "
                        "rows are dropped")


def _configure_generate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--users", type=int, default=2000)
    p.add_argument("--items", type=int, default=500)
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--days", type=int, default=180, help="length of the simulated history")
    p.add_argument("--end", help="when the history ends, ISO-8601 (default: today, 00:00 UTC)")


def _run_generate(args: argparse.Namespace) -> int:
    from training.generate import StoreSpec, generate_store

    for name in ("users", "items", "events", "days"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name} must be at least 1")
    end = None
    if args.end is not None:
        from training.evaluate_command import parse_cutoff

        end = parse_cutoff(args.end, "--end")
    spec = StoreSpec(users=args.users, items=args.items, events=args.events, seed=args.seed,
                     days=args.days, end=end)
    progress = Progress()
    paths = generate_store(spec, args.out, progress)
    for path in paths.values():
        print(path, file=sys.stdout)
    return EXIT_OK


def _configure_evaluate(p: argparse.ArgumentParser) -> None:
    one = p.add_argument_group("a trained model on a held-out file")
    one.add_argument("--model-root", type=Path, help="directory holding model versions")
    one.add_argument("--version", help="version to evaluate (default: current)")
    one.add_argument("--test", type=Path, help="held-out interactions, in the input format")
    one.add_argument("--baseline", metavar="VERSION",
                     help="gate: compare with this version ('current' allowed) on the same "
                          "test; exit 3 when the evaluated one is worse beyond --tolerance")
    one.add_argument("--tolerance", type=float, default=0.0,
                     help="gate: allowed relative drop of --gate-metric (0.02 = 2%%)")
    one.add_argument("--gate-metric", default="ndcg@10", help="gate metric (ndcg@10)")
    two = p.add_argument_group("split one log, train on the past part, test on the rest")
    two.add_argument("--interactions", type=Path, help="events file to split")
    two.add_argument("--items", type=Path, help="optional item catalog")
    two.add_argument("--split", choices=["time", "leave-last", "random"], default="time")
    two.add_argument("--test-fraction", type=float, default=0.2,
                     help="time: share of events after the cut-off; random: share of pairs")
    two.add_argument("--cutoff", help="time split at this date (ISO-8601) instead")
    two.add_argument("--leave-last", type=int, default=1, metavar="K",
                     help="leave-last: target events held out per user")
    two.add_argument("--random-by", choices=["user", "item"], default="user",
                     help="random: stratify the held-out pairs per user or per item")
    two.add_argument("--seed", type=int, default=0)
    two.add_argument("--no-tune", action="store_true", help="train with configured values")
    two.add_argument("--tune-budget", type=float, metavar="SECONDS")
    add_tune_split(two, "the --split protocol, unless the config sets tuning.split")
    p.add_argument("--users", type=Path, help="user table (attributes of test users)")
    p.add_argument("--config", type=Path, help="trainer TOML (events, target events, ...)")
    p.add_argument("--k", default="5,10,20", help="cut-offs, comma-separated (5,10,20)")
    p.add_argument("--algorithms", help="blend and algorithms to compare (default: all)")
    p.add_argument("--json", type=Path, metavar="OUT", help="write the metrics as JSON")
    p.add_argument("--report", type=Path, metavar="DIR",
                   help="report directory (default: with the model, or ./recsvc-evaluation)")
    p.add_argument("--no-report", action="store_true", help="write no report files")
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def _run_evaluate(args: argparse.Namespace) -> int:
    from training.evaluate_command import run_evaluate

    result = run_evaluate(args)
    return EXIT_NOT_PROMOTED if result.gate is not None and not result.gate.passed else EXIT_OK


def _configure_retrain(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model-root", type=Path, required=True)
    p.add_argument("--interactions", type=Path, nargs="+", required=True,
                   metavar="FILE_OR_DIR", help="base logs (files, or directories of them)")
    p.add_argument("--items", type=Path)
    p.add_argument("--users", type=Path)
    p.add_argument("--events-dir", type=Path,
                   help="the service's events log (default: STATE_DIR/events)")
    add_state_dir(p)
    p.add_argument("--retention-days", type=float,
                   help="delete events files and run summaries older than this "
                        "(default RECSVC_RETENTION_DAYS, 400)")
    p.add_argument("--forget-grace-days", type=float,
                   help="retire versions holding rows of shoppers forgotten this long ago "
                        "(default RECSVC_FORGET_GRACE_DAYS, 7)")
    p.add_argument("--config", type=Path, help="trainer TOML")
    p.add_argument("--redis-url", help="warm the cache before promoting")
    p.add_argument("--rules-file", type=Path, help="the service's rules (for warming)")
    p.add_argument("--tolerance", type=float, default=0.0,
                   help="gate: allowed relative drop of --gate-metric")
    p.add_argument("--gate-metric", default="ndcg@10")
    p.add_argument("--gate-fraction", type=float, default=0.1,
                   help="share of the newest events the gate tests on")
    p.add_argument("--window-days", type=float, help="train on the last N days only")
    p.add_argument("--active-days", type=float, default=30.0,
                   help="users warmed: seen within this many days")
    p.add_argument("--processes", type=int, default=os.cpu_count() or 1,
                   help="cache warm-up workers (default: one per CPU)")
    p.add_argument("--tune-budget", type=float, metavar="SECONDS")
    add_tune_split(p)
    p.add_argument("--no-tune", action="store_true")
    add_engine(p)
    p.add_argument("--quiet", action="store_true", help="only the JSON summary")


def _run_retrain(args: argparse.Namespace) -> int:
    import orjson

    from recsvc.settings import Settings
    from training.forgotten import privacy_for
    from training.retrain import RetrainOptions, retrain

    config = load_config(args.config)
    apply_tuning_options(config, args.no_tune, args.tune_budget, args.tune_split)
    if args.window_days is not None:
        if args.window_days <= 0:
            raise InputError("--window-days must be positive")
        config.input.window_days = args.window_days
    if not 0 <= args.tolerance < 1:
        raise InputError("--tolerance must be between 0 and 1 (a relative drop)")
    settings = Settings(model_root=args.model_root,
                        **({"state_dir": args.state_dir} if args.state_dir else {}))
    events_dir = args.events_dir or settings.paths.events_dir
    grace = (settings.forget_grace_days if args.forget_grace_days is None
             else args.forget_grace_days)
    if grace < 0:
        raise InputError("--forget-grace-days must not be negative")
    options = RetrainOptions(
        model_root=args.model_root, interactions=args.interactions, items=args.items,
        users=args.users, events_dir=events_dir, config=config, redis_url=args.redis_url,
        tolerance=args.tolerance, gate_metric=args.gate_metric,
        gate_fraction=args.gate_fraction, active_days=args.active_days,
        rules_file=args.rules_file, processes=args.processes,
        privacy=privacy_for(args.model_root, args.state_dir), forget_grace_days=grace,
        retention_days=(settings.retention_days if args.retention_days is None
                        else args.retention_days),
        catalog_overrides=settings.paths.catalog_overrides)
    if args.spark_master is not None:
        config.spark.master = args.spark_master
    if args.engine == "spark":
        from training.spark.nightly import SparkNight

        options.engine = SparkNight(config.spark)
    summary = retrain(options, Progress(quiet=args.quiet))
    sys.stdout.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2, default=str).decode()
                     + "\n")
    return EXIT_OK if summary["promoted"] else EXIT_NOT_PROMOTED


TRAIN = Command("train", "train a model from interaction logs and make it current",
                _configure_train, _run_train)
RETRAIN = Command("retrain", "the nightly job: gather, train, gate, warm, promote",
                  _configure_retrain, _run_retrain)
EVALUATE = Command("evaluate", "score a model on held-out interactions; compare; gate",
                   _configure_evaluate, _run_evaluate)
GENERATE = Command("generate", "write a synthetic store (interactions, items, users)",
                   _configure_generate, _run_generate)
