"""`recsvc versions` and `recsvc rollback`: what is on disk, and undoing a bad model.

Both work on the model root alone; a running service notices the new `current` by itself
(or at once with `POST /admin/rollback`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson

from recsvc.cli import Command
from recsvc.core.artifacts import current_version, list_versions, open_version, rollback
from recsvc.core.errors import EXIT_OK, ModelError


def describe(model_root: Path) -> list[dict]:
    current = current_version(model_root)
    rows = []
    for version in list_versions(model_root):
        try:
            m = open_version(model_root, version, verify=False).manifest
        except ModelError as exc:  # listed, not fatal: this is how an operator finds it
            rows.append({"version": version, "current": version == current,
                         "created_at": None, "users": None, "items": None,
                         "validation": {}, "error": str(exc)})
            continue
        rows.append({"version": version, "current": version == current,
                     "created_at": m.created_at, "users": m.counts.users,
                     "items": m.counts.items, "validation": m.metrics.validation})
    return rows


def _configure_versions(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model-root", type=Path, required=True)
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _run_versions(args: argparse.Namespace) -> int:
    rows = describe(args.model_root)
    if args.json:
        sys.stdout.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
        return EXIT_OK
    if not rows:
        print(f"no model versions under {args.model_root}")
        return EXIT_OK
    print(f"{'':2}{'version':34}{'created':27}{'users':>9}{'items':>8}  ndcg@10")
    for row in rows:
        ndcg = row["validation"].get("ndcg@10")
        print(f"{'*' if row['current'] else ' ':2}{row['version']:34}"
              f"{str(row['created_at'])[:25]:27}{row['users'] or 0:>9,}{row['items'] or 0:>8,}"
              f"  {'—' if ndcg is None else f'{ndcg:.4f}'}"
              + (f"  unreadable: {row['error']}" if "error" in row else ""))
    return EXIT_OK


def _configure_rollback(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model-root", type=Path, required=True)
    p.add_argument("--to", metavar="VERSION", help="default: the version before the current")


def _run_rollback(args: argparse.Namespace) -> int:
    current = current_version(args.model_root)
    target = rollback(args.model_root, args.to)
    print(f"current: {current} -> {target}")
    return EXIT_OK


VERSIONS = Command("versions", "list model versions, with metrics and the current one",
                   _configure_versions, _run_versions)
ROLLBACK = Command("rollback", "make an earlier model version current",
                   _configure_rollback, _run_rollback)
