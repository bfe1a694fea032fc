"""`recsvc rules check FILE`: validate a rules file against the current model and preview
what it would change before it goes live: how many shoppers' lists change, and the
exposure each item and category gains or loses, on a sample of the model's shoppers,
compared with the rules served now (or none)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from threadpoolctl import threadpool_limits

from recsvc.cli import Command
from recsvc.core.artifacts import current_version
from recsvc.core.engine import Engine, load_engine
from recsvc.core.errors import EXIT_OK, InputError
from recsvc.core.lists import shown_lists
from recsvc.core.policy.filters import filter_stage
from recsvc.core.policy.rules import RulesFile, category_mask, load_rules, resolve, tag_mask
from recsvc.settings import Settings
from recsvc.stores.catalog import CatalogOverrides

SHOWN_CHANGES = 10  # items and categories listed each way


def warnings_for(rules: RulesFile, engine: Engine, live: np.ndarray) -> list[str]:
    """What in valid rules will not do what its author likely meant, on this model."""
    model = engine.model
    out = []

    def unknown_items(ids: list[str], what: str) -> None:
        index = model.item_index(ids)
        for item, i in zip(ids, index.tolist(), strict=True):
            if i < 0:
                out.append(f"{what} {item}: not in the model's catalog")
            elif what == "pin" and not live[i]:
                out.append(f"pin {item}: out of stock or delisted, not shown until it is back")

    unknown_items(rules.pin.items, "pin")
    unknown_items(rules.exclude.items, "exclude")
    for kind, targets in (("boost", rules.boost), ("bury", rules.bury)):
        for t in targets:
            if t.item is not None:
                unknown_items([t.item], kind)
            elif t.category is not None and not category_mask(model, t.category).any():
                out.append(f"{kind} category {t.category!r}: matches no item")
            elif t.tag is not None and not tag_mask(model, t.tag).any():
                out.append(f"{kind} tag {t.tag!r}: matches no item")
    for category in rules.exclude.categories:
        if not category_mask(model, category).any():
            out.append(f"exclude category {category!r}: matches no item")
    for tag in rules.exclude.tags:
        if not tag_mask(model, tag).any():
            out.append(f"exclude tag {tag!r}: matches no item")
    if len(rules.pin.items) > 5:
        out.append(f"{len(rules.pin.items)} pins: they fill the first places of every list")
    return out


def _exposure(engine: Engine, users: np.ndarray, n: int, live: np.ndarray,
              price: np.ndarray, settings: Settings, now: float
              ) -> tuple[dict[int, tuple[int, ...]], Counter[int]]:
    """Each sampled shopper's shown list (item numbers) and how often each item shows."""
    stage = filter_stage(engine.model, engine.rules, live, price)
    lists: dict[int, tuple[int, ...]] = {}
    shown: Counter[int] = Counter()
    for user, _, packed, positions in shown_lists(
            engine, users, n, stage, live, settings.cache_list_size, now,
            settings.new_arrival_days, rows=1000):
        items = tuple(packed.items[positions].tolist())
        lists[user] = items
        shown.update(items)
    return lists, shown


def _changes(before: Counter, after: Counter, name: Any) -> dict[str, list[dict]]:  # noqa: ANN401
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in set(before) | set(after)}
    ranked = sorted(delta.items(), key=lambda kv: (kv[1], str(name(kv[0]))))
    row = lambda k, d: {"name": name(k), "before": before.get(k, 0),  # noqa: E731
                        "after": after.get(k, 0), "change": d}
    return {"gained": [row(k, d) for k, d in reversed(ranked) if d > 0][:SHOWN_CHANGES],
            "lost": [row(k, d) for k, d in ranked if d < 0][:SHOWN_CHANGES]}


def check(settings: Settings, path: Path, current: Path | None, sample: int, n: int,
          seed: int = 0, version: str | None = None) -> dict[str, Any]:
    """Validate `path` against the model and preview it against `current` (None: no
    rules); InputError when the file does not load or does not fit the model."""
    new_rules = load_rules(path)
    if version is None and current_version(settings.model_root) is None:
        raise InputError(f"no current model under {settings.model_root}")
    rules = load_rules(current)
    overrides = CatalogOverrides(settings.paths.catalog_overrides)
    engine = overrides.with_added(load_engine(settings.model_root, version, rules), rules,
                                  time.time())
    model = engine.model
    proposed = dataclasses.replace(engine, rules=resolve(new_rules, model))
    live, price = overrides.masks(model)
    users = np.flatnonzero(np.diff(model.user_items.indptr) > 0)
    if model.opted_out.size:
        users = users[~model.opted_out_mask(model.user_ids[users])]
    if users.size > sample:
        users = np.sort(np.random.default_rng(seed).choice(users, sample, replace=False))
    now = time.time()
    with threadpool_limits(limits=1, user_api="blas"):
        old_lists, old = _exposure(engine, users, n, live, price, settings, now)
        new_lists, new = _exposure(proposed, users, n, live, price, settings, now)
    changed = sum(old_lists[u] != new_lists.get(u) for u in old_lists)
    reordered_only = sum(old_lists[u] != new_lists.get(u)
                         and set(old_lists[u]) == set(new_lists.get(u, ())) for u in old_lists)
    category = model.item_category
    names = model.category_names

    def by_category(shown: Counter) -> Counter:
        out: Counter = Counter()
        for item, count in shown.items():
            out[int(category[item])] += count
        return out

    return {
        "file": str(path),
        "valid": True,
        "model_version": engine.version,
        "against": str(current) if current else None,
        "rules": {"pins": len(new_rules.pin.items), "boosts": len(new_rules.boost),
                  "burials": len(new_rules.bury),
                  "exclusions": len(new_rules.exclude.items)
                  + len(new_rules.exclude.categories) + len(new_rules.exclude.tags),
                  "max_per_category": new_rules.diversity.max_per_category,
                  "variants": sorted(new_rules.variants)},
        "warnings": warnings_for(new_rules, engine, live),
        "preview": {
            "shoppers": len(old_lists), "n": n,
            "lists_changed": changed, "lists_reordered_only": reordered_only,
            "items": _changes(old, new, lambda i: str(model.item_ids[i])),
            "categories": _changes(by_category(old), by_category(new),
                                   lambda c: str(names[c]) if c >= 0 else "(none)"),
        },
    }


def render(report: dict[str, Any]) -> str:
    rules, preview = report["rules"], report["preview"]
    lines = [f"{report['file']}: valid against model {report['model_version']} "
             f"({rules['pins']} pins, {rules['boosts']} boosts, {rules['burials']} burials, "
             f"{rules['exclusions']} exclusions, category cap "
             f"{rules['max_per_category'] or 'none'}, "
             f"{len(rules['variants'])} variants)"]
    lines += [f"warning: {w}" for w in report["warnings"]]
    shoppers = preview["shoppers"]
    share = preview["lists_changed"] / shoppers if shoppers else 0.0
    lines.append(f"preview on {shoppers:,} shoppers' top {preview['n']}, against "
                 f"{report['against'] or 'no rules'}: {preview['lists_changed']:,} lists "
                 f"change ({share:.1%}; {preview['lists_reordered_only']:,} only reordered)")
    for what in ("items", "categories"):
        for way in ("gained", "lost"):
            rows = preview[what][way]
            if rows:
                lines.append(f"  {what} {way} exposure (times shown, before -> after):")
                lines += [f"    {r['name']}: {r['before']} -> {r['after']} ({r['change']:+d})"
                          for r in rows]
    return "\n".join(lines)


def _configure(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    c = sub.add_parser("check", help="validate a rules file and preview its effect",
                       description="Validate a rules file against the current model and "
                                   "preview what it changes in shoppers' lists.")
    c.add_argument("file", type=Path, help="the rules file (TOML) to check")
    c.add_argument("--model-root", type=Path, help="default RECSVC_MODEL_ROOT")
    c.add_argument("--state-dir", type=Path, help="default RECSVC_STATE_DIR (stock)")
    c.add_argument("--version", help="model version (default: current)")
    c.add_argument("--against", type=Path,
                   help="the rules served now (default RECSVC_RULES_FILE; none: no rules)")
    c.add_argument("--shoppers", type=int, default=2000, help="sampled shoppers to preview")
    c.add_argument("--n", type=int, default=10, help="list length to compare")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--json", action="store_true", help="the report as JSON")


def _run(args: argparse.Namespace) -> int:
    given = {"model_root": args.model_root, "state_dir": args.state_dir}
    settings = Settings(**{k: v for k, v in given.items() if v is not None})
    if args.shoppers < 1 or args.n < 1:
        raise InputError("--shoppers and --n must be at least 1")
    against = args.against or settings.rules_file
    report = check(settings, args.file, against, args.shoppers, args.n, args.seed,
                   args.version)
    sys.stdout.write((orjson.dumps(report, option=orjson.OPT_INDENT_2).decode()
                      if args.json else render(report)) + "\n")
    return EXIT_OK


RULES = Command("rules", "check a rules file and preview its effect", _configure, _run)
