"""`recsvc evaluate`: the two ways to run an evaluation, and where the reports go.

1. A trained model (`--model-root`, `--version`) on a held-out file (`--test`), with an
   optional gate against a baseline version scored on the same file.
2. One log (`--interactions`) split in time, per user or at random; the default pipeline
   is trained on the train part in memory (no version is written: production's `current`
   is never touched by an evaluation) and scored on the rest."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pandas as pd

from recsvc.core.errors import InputError
from recsvc.core.model import RecommenderModel, load_model
from training.clean import CleanData, clean
from training.config import TrainConfig, apply_tuning_options, load_config
from training.evaluate import Evaluation, GateResult, TestSet, build_test_set, evaluate, gate
from training.progress import Progress
from training.readers import read_interactions, read_users
from training.report import as_json, format_gate, format_table, write_report
from training.splits import split_events


@dataclass
class EvaluateResult:
    evaluation: Evaluation
    gate: GateResult | None
    files: list[Path]


def parse_ks(text: str) -> list[int]:
    try:
        ks = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise InputError(f"--k must be comma-separated whole numbers, not {text!r}") from None
    if not ks or ks[0] < 1:
        raise InputError(f"--k values must be at least 1, not {text!r}")
    return ks


def parse_cutoff(text: str, option: str = "--cutoff") -> int:
    try:
        stamp = pd.Timestamp(text)
    except (ValueError, TypeError):
        raise InputError(f"{option} {text!r} is not an ISO-8601 date") from None
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return int(stamp.timestamp())


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def _algorithms(text: str | None, model: RecommenderModel) -> list[str] | None:
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n != "blend" and n not in model.components]
    if unknown:
        raise InputError(f"--algorithms: {', '.join(unknown)} not in the model "
                         f"(it has blend, {', '.join(sorted(model.components))})")
    return names


def _test_set(model: RecommenderModel, events: pd.DataFrame, config: TrainConfig,
              users: pd.DataFrame | None, source: str) -> TestSet:
    test = build_test_set(model, events, config.tuning.target_events, users)
    if len(test) == 0:
        raise InputError(f"{source}: no user has a target event "
                         f"({', '.join(config.tuning.target_events)}) to evaluate against")
    return test


def run_evaluate(args: argparse.Namespace) -> EvaluateResult:
    if (args.test is None) == (args.interactions is None):
        raise InputError("give either --model-root with --test (evaluate a trained model) "
                         "or --interactions with --split (split a log and compare)")
    if args.tolerance < 0 or args.tolerance >= 1:
        raise InputError("--tolerance must be between 0 and 1 (a relative drop)")
    config = load_config(args.config)
    ks = parse_ks(args.k)
    progress = Progress(quiet=args.quiet)
    users = read_users(args.users) if args.users is not None else None
    gate_result: GateResult | None = None
    context: dict[str, object] = {}

    if args.test is not None:
        if args.model_root is None:
            raise InputError("--test needs --model-root (the model to evaluate)")
        model = load_model(args.model_root, args.version)
        with progress.step("load.test", path=str(args.test)) as step:
            raw = read_interactions(args.test)
            cleaned = clean(raw, None, users, config.events, config.cleaning, [str(args.test)])
            step.note(rows=len(raw), kept=len(cleaned.events))
        test = _test_set(model, cleaned.events, config, cleaned.users, str(args.test))
        with progress.step("evaluate", users=len(test)):
            evaluation = evaluate(model, test, ks, _algorithms(args.algorithms, model))
        context["test_file"] = str(Path(args.test).resolve())
        if args.baseline is not None:
            if args.gate_metric not in evaluation.metrics:
                raise InputError(f"--gate-metric {args.gate_metric} is not among the metrics "
                                 f"(k = {args.k})")
            baseline = load_model(args.model_root,
                                  None if args.baseline == "current" else args.baseline)
            base_test = _test_set(baseline, cleaned.events, config, cleaned.users,
                                  str(args.test))
            with progress.step("evaluate.baseline", version=baseline.version):
                base_eval = evaluate(baseline, base_test, ks, ["blend"])
            gate_result = gate(evaluation.metrics, base_eval.metrics, args.gate_metric,
                               args.tolerance)
            context["baseline_version"] = baseline.version
        report_dir = args.report or (Path(args.model_root) / model.version / "reports"
                                     / _stamp())
    else:
        if args.baseline is not None:
            raise InputError("--baseline compares trained versions: use it with --test")
        evaluation, split_info = _split_and_evaluate(args, config, ks, progress)
        context["split"] = split_info
        report_dir = args.report or Path("recsvc-evaluation") / _stamp()

    print(format_table(evaluation))
    if gate_result is not None:
        print(format_gate(gate_result))
    files: list[Path] = []
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_bytes(orjson.dumps(as_json(evaluation, gate_result, **context),
                                           option=orjson.OPT_INDENT_2))
        files.append(args.json)
    if not args.no_report:
        files += write_report(evaluation, report_dir, gate_result,
                              title=f"Evaluation of {evaluation.model_version}", **context)
    for path in files:
        print(f"wrote {path}", file=sys.stdout)
    return EvaluateResult(evaluation, gate_result, files)


def _split_and_evaluate(args: argparse.Namespace, config: TrainConfig, ks: list[int],
                        progress: Progress) -> tuple[Evaluation, dict[str, object]]:
    from training.pipeline import fit_model, load_inputs

    config.input.interactions = args.interactions
    config.input.items = args.items
    config.input.users = args.users
    tune_split = args.tune_split
    if tune_split is None and "split" not in config.tuning.model_fields_set:
        # Judged by this protocol, so tuned for it: what a shop that cares about it sets
        # tuning.split to. (--tune-split time shows what the default nightly run gives.)
        tune_split = args.split
    apply_tuning_options(config, args.no_tune, args.tune_budget, tune_split)
    data, _ = load_inputs(config, progress)
    cutoff = parse_cutoff(args.cutoff) if args.cutoff else None
    split = split_events(data.events, args.split, config.tuning.target_events,
                         test_fraction=args.test_fraction, cutoff=cutoff,
                         leave_last=args.leave_last, seed=args.seed, by=args.random_by)
    progress.log("split", **split.description, train_events=len(split.train),
                 test_events=len(split.test))
    train = CleanData(events=split.train, items=data.items, users=data.users,
                      opted_out=data.opted_out, report=data.report)
    model = fit_model(config, train, progress)
    test = _test_set(model, split.test, config, data.users, str(args.interactions))
    with progress.step("evaluate", users=len(test)):
        evaluation = evaluate(model, test, ks, _algorithms(args.algorithms, model),
                              exclude_seen=True if args.split == "random" else None)
    evaluation.model_version = f"split-{args.split}"  # trained in memory, never written
    info = {**split.description, "train_events": int(len(split.train)),
            "test_events": int(len(split.test)),
            "tuning": model.card.tuning.best if model.card else {},
            "tuning_protocol": model.card.tuning.protocol if model.card else {}}
    return evaluation, info
