"""`recsvc generate` and `recsvc train`: options, config merging and output."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from recsvc.cli import Command
from recsvc.errors import EXIT_OK, InputError
from training.config import load_config
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
    p.add_argument("--quiet", action="store_true", help="print only the version id")


def _run_train(args: argparse.Namespace) -> int:
    from training.pipeline import format_summary, train

    config = load_config(args.config)
    for key in ("interactions", "items", "users"):
        if getattr(args, key) is not None:
            setattr(config.input, key, getattr(args, key))
    if args.model_root is not None:
        config.output.model_root = args.model_root
    if args.no_tune:
        config.tuning.enabled = False
    if args.tune_budget is not None:
        if args.tune_budget <= 0:
            raise InputError("--tune-budget must be positive")
        config.tuning.time_budget_s = args.tune_budget
    progress = Progress(quiet=args.quiet)
    result = train(config, progress)
    progress.text(format_summary(result))
    print(result.version)  # alone on stdout, for scripts: V=$(recsvc train ...)
    return EXIT_OK


def _configure_generate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--users", type=int, default=2000)
    p.add_argument("--items", type=int, default=500)
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--days", type=int, default=180, help="length of the simulated history")


def _run_generate(args: argparse.Namespace) -> int:
    from training.generate import StoreSpec, generate_store

    for name in ("users", "items", "events", "days"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name} must be at least 1")
    spec = StoreSpec(users=args.users, items=args.items, events=args.events, seed=args.seed,
                     days=args.days)
    progress = Progress()
    paths = generate_store(spec, args.out, progress)
    for path in paths.values():
        print(path, file=sys.stdout)
    return EXIT_OK


TRAIN = Command("train", "train a model from interaction logs and make it current",
                _configure_train, _run_train)
GENERATE = Command("generate", "write a synthetic store (interactions, items, users)",
                   _configure_generate, _run_generate)
