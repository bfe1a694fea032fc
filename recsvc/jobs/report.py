"""`recsvc report`: what recommendations earned over a period, from the service's
impression and events logs (`recsvc.analytics`): JSON, Markdown and PNG plots.

    recsvc report --model-root models [--days 7 | --since 2026-11-24 --until 2026-12-01]
                  [--out DIR] [--window-hours 24] [--rules-file rules.toml]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from recsvc.analytics import render
from recsvc.analytics.kpis import Lifecycle, ReportSettings, build
from recsvc.cli import Command
from recsvc.core.clock import SECONDS_PER_DAY
from recsvc.core.errors import EXIT_OK, InputError, RecsvcError
from recsvc.core.model import load_model
from recsvc.core.policy.rules import load_rules
from recsvc.settings import Settings
from recsvc.stores.events_log import EventLog
from recsvc.stores.impressions import PREFIX as IMPRESSIONS

# How much history before the period is read for the shoppers' lifecycle stages.
LIFECYCLE_LOOKBACK_DAYS = 365


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model-root", type=Path, help="default RECSVC_MODEL_ROOT")
    p.add_argument("--state-dir", type=Path, help="default RECSVC_STATE_DIR")
    p.add_argument("--rules-file", type=Path, help="the variants' configured shares")
    p.add_argument("--days", type=float, default=7.0, help="the period: the last N days")
    p.add_argument("--since", help="start of the period, ISO-8601 (instead of --days)")
    p.add_argument("--until", help="end of the period, ISO-8601 (default: now)")
    p.add_argument("--window-hours", type=float, default=24.0,
                   help="attribution window for events naming no list")
    p.add_argument("--new-days", type=float, default=30.0, help="lifecycle: new shoppers")
    p.add_argument("--active-days", type=float, default=30.0, help="lifecycle: active")
    p.add_argument("--dormant-days", type=float, default=90.0,
                   help="lifecycle: dormant (older: churned)")
    p.add_argument("--active-min-events", type=int, default=1,
                   help="lifecycle: events within --active-days to count as active")
    p.add_argument("--out", type=Path, help="directory (default STATE_DIR/reports/SINCE-UNTIL)")
    p.add_argument("--no-plots", action="store_true", help="JSON and Markdown only")


def _when(text: str, flag: str) -> float:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(f"{flag} {text!r}: not an ISO-8601 date or time") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def read_log(log: EventLog, since: float) -> list[dict[str, Any]]:
    """The log's records from the files of days since `since` (torn lines skipped)."""
    day = time.strftime("%Y%m%d", time.gmtime(since))
    out = []
    for path in log.files():
        if path.name[len(log.prefix):len(log.prefix) + 8] < day:
            continue
        with open(path, "rb") as f:
            for line in f:
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(record, dict):
                    out.append(record)
    return out


def make_report(settings: Settings, start: float, end: float, window_hours: float,
                lifecycle: Lifecycle) -> dict[str, Any]:
    paths = settings.paths
    impressions = [r for r in read_log(EventLog(paths.impressions_dir, 1 << 62,
                                                prefix=IMPRESSIONS), start)
                   if isinstance(r.get("items"), list) and "ts" in r]
    lookback = start - LIFECYCLE_LOOKBACK_DAYS * SECONDS_PER_DAY
    events = [r for r in read_log(EventLog(paths.events_dir, 1 << 62), lookback)
              if all(k in r for k in ("user_id", "item_id", "event_type", "timestamp"))
              and r["timestamp"] < end]
    rules = load_rules(settings.rules_file)
    shares = {name: spec.share for name, spec in rules.variants.items()}
    catalog, segment_of, seen_before = 0, _no_segment, _never
    try:
        model = load_model(settings.model_root, verify=False)
        catalog = model.n_items
        if model.user_last_seen.size == model.n_users:
            def seen_before(user: str) -> float | None:
                at = int(model.user_index([user])[0])
                return float(model.user_last_seen[at]) if at >= 0 else None
        if "segment" in model.user_attributes:
            codes, values = model.user_attributes["segment"]

            def segment_of(user: str) -> str:
                at = int(model.user_index([user])[0])
                return str(values[codes[at]]) if at >= 0 and codes[at] >= 0 else "unknown"
    except RecsvcError:
        pass  # no model: no coverage, no segments
    report = build(impressions, events,
                   ReportSettings(start=start, end=end, window_hours=window_hours,
                                  shares=shares, lifecycle=lifecycle,
                                  catalog_size=catalog),
                   segment_of=segment_of, subject=settings.key_subject(),
                   seen_before=seen_before)
    report["sources"] = {"impressions": len(impressions), "events": len(events)}
    return report


def _no_segment(user: str) -> str:
    return "all"


def _never(user: str) -> float | None:
    return None


def _run(args: argparse.Namespace) -> int:
    overrides = {k: v for k, v in (("model_root", args.model_root),
                                   ("state_dir", args.state_dir),
                                   ("rules_file", args.rules_file)) if v is not None}
    settings = Settings(**overrides)
    end = _when(args.until, "--until") if args.until else time.time()
    start = (_when(args.since, "--since") if args.since
             else end - args.days * SECONDS_PER_DAY)
    if start >= end:
        raise InputError("the period is empty: --since must be before --until")
    if args.window_hours <= 0:
        raise InputError("--window-hours must be positive")
    report = make_report(settings, start, end, args.window_hours,
                         Lifecycle(args.new_days, args.active_days, args.dormant_days,
                                   args.active_min_events))
    stamp = lambda ts: time.strftime("%Y%m%d", time.gmtime(ts))  # noqa: E731
    out = args.out or settings.paths.root / "reports" / f"{stamp(start)}-{stamp(end)}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    (out / "report.md").write_text(render.markdown(report), encoding="utf-8")
    written = [out / "report.json", out / "report.md"]
    if not args.no_plots:
        try:
            written += render.plots(report, out)
        except ModuleNotFoundError:
            print("recsvc report: no plots (matplotlib comes with pip install "
                  "'recsvc[train]')", file=sys.stderr)
    for path in written:
        print(path)
    return EXIT_OK


REPORT = Command("report", "what recommendations earned: KPIs and A/B tests from the logs",
                 _configure, _run)
