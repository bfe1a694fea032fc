"""`recsvc versions` and `recsvc rollback`: what is on disk, and undoing a bad model.

Both work on the model root alone; a running service notices the new `current` by itself
(or at once with `POST /admin/rollback`). States and what may be rolled back to:
`recsvc.core.lifecycle`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson

from recsvc.cli import Command
from recsvc.core.artifacts import current_version
from recsvc.core.errors import EXIT_OK
from recsvc.core.lifecycle import describe_versions, rollback


def _why(row: dict) -> str:
    """What to say beside a version that may not be served."""
    if "error" in row:
        return f"  unreadable: {row['error']}"
    change = row.get("last_change") or {}
    if row["state"] == "rejected" and "metric" in change:
        return (f"  gate: {change['metric']} {change.get('candidate', 0):.4f} < "
                f"{change.get('baseline', 0):.4f}")
    if row["state"] == "failed" and "error" in change:
        return f"  {change['error']}"
    return ""


def _configure_versions(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model-root", type=Path, required=True)
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _run_versions(args: argparse.Namespace) -> int:
    rows = describe_versions(args.model_root)
    if args.json:
        sys.stdout.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
        return EXIT_OK
    if not rows:
        print(f"no model versions under {args.model_root}")
        return EXIT_OK
    print(f"{'':2}{'version':34}{'state':11}{'created':27}{'users':>9}{'items':>8}  ndcg@10")
    for row in rows:
        ndcg = row["validation"].get("ndcg@10")
        print(f"{'*' if row['current'] else ' ':2}{row['version']:34}{row['state']:11}"
              f"{str(row['created_at'])[:25]:27}{row['users'] or 0:>9,}{row['items'] or 0:>8,}"
              f"  {'—' if ndcg is None else f'{ndcg:.4f}'}" + _why(row))
    return EXIT_OK


def _configure_rollback(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model-root", type=Path, required=True)
    p.add_argument("--to", metavar="VERSION",
                   help="default: the promoted version before the current")
    p.add_argument("--force", action="store_true",
                   help="allow a version that was never promoted (rejected, failed)")


def _run_rollback(args: argparse.Namespace) -> int:
    current = current_version(args.model_root)
    target = rollback(args.model_root, args.to, force=args.force)
    print(f"current: {current} -> {target}")
    return EXIT_OK


VERSIONS = Command("versions", "list model versions, with metrics and the current one",
                   _configure_versions, _run_versions)
ROLLBACK = Command("rollback", "make an earlier model version current",
                   _configure_rollback, _run_rollback)
