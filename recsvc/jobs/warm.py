"""`recsvc warm-cache`: precompute users' lists into the cache after a training, so the
first page view of the day is a cache hit. The nightly job warms a candidate with the
same function (`warm`) before promoting it.

Lists are ranked in batches (one matrix product per algorithm for thousands of users)
through the same functions the service uses (`lists.rank_users`: `scoring.recommend`,
then reasons and packing), and written a few hundred at a time
through the cache's bulk writer, under the keys the service reads. Users with events
newer than the model are left to the service, which folds those events in."""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from recsvc.cli import Command
from recsvc.core.artifacts import current_version
from recsvc.core.clock import SECONDS_PER_DAY
from recsvc.core.engine import Engine, load_engine
from recsvc.core.errors import EXIT_OK, InputError
from recsvc.core.lists import rank_users
from recsvc.core.policy.filters import filter_stage
from recsvc.core.policy.rules import load_rules
from recsvc.settings import Settings
from recsvc.stores.cache import BulkWriter, list_key, open_bulk_writer
from recsvc.stores.catalog import CatalogOverrides

# Bound one batch's dense scores: rows x catalog size cells per algorithm.
MAX_BATCH_CELLS = 20_000_000
# Below this many users, one process: forking costs more than it saves.
PARALLEL_MIN_USERS = 10_000


@dataclass
class WarmResult:
    version: str
    users: int
    written: int
    skipped_fresh: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else 0.0


def select_users(engine: Engine, which: str, active_days: float) -> np.ndarray:
    """Users with a history (and consent); `active`: seen in the last `active_days`
    before the end of the training data."""
    model = engine.model
    users = np.flatnonzero(np.diff(model.user_items.indptr) > 0)
    if model.opted_out.size:
        users = users[~model.opted_out_mask(model.user_ids[users])]
    if which == "active" and model.user_last_seen.size == model.n_users:
        since = engine.reference_time - active_days * SECONDS_PER_DAY
        users = users[model.user_last_seen[users] >= since]
    return users


def warm_cache(
    engine: Engine,
    writer: BulkWriter,
    settings: Settings,
    users: np.ndarray,
    overrides: CatalogOverrides,
    batch_size: int | None = None,
) -> WarmResult:
    """Warm `users` (model user numbers) in this process."""
    model = engine.model
    began = time.perf_counter()
    live, price = overrides.masks(model)
    rankable = filter_stage(model, engine.rules, live, price).rankable  # as the service
    ns = settings.cache_namespace
    rows = batch_size or max(1, min(2000, MAX_BATCH_CELLS // max(1, model.n_items)))
    subject = settings.key_subject()
    fresh_users = writer.users_with_fresh(ns)  # their lists are the service's to make
    total, skipped = int(users.size), 0
    if fresh_users:
        ids = model.user_ids[users].tolist()
        has_fresh = np.array([subject(str(u)) in fresh_users for u in ids], dtype=bool)
        users, skipped = users[~has_fresh], int(has_fresh.sum())
    written = 0
    for ranked in rank_users(engine, users, settings.cache_list_size, rankable,
                             time.time(), settings.new_arrival_days, rows):
        keys, values = [], []
        for user_id, value, listed in zip(model.user_ids[ranked.users].tolist(),
                                          ranked.lists, ranked.lengths.tolist(), strict=True):
            if listed:  # an empty list is the service's to handle (fallbacks)
                keys.append(list_key(ns, engine.version, ranked.variant.name,
                                     subject(str(user_id))).encode())
                values.append(value)
        writer.set_many(keys, values, settings.cache_ttl_s)
        written += len(keys)
    return WarmResult(engine.version, total, written, skipped,
                      time.perf_counter() - began)


# Set in the parent before forking: children inherit the loaded engine (its arrays are
# memory-mapped, so nothing is copied) and warm their own share of the users.
_SHARED: dict[str, object] = {}


def _warm_share(share: int) -> tuple[int, int]:
    engine, settings, users, overrides, batch_size, shares = (
        _SHARED[k] for k in ("engine", "settings", "users", "overrides", "batch_size",
                             "shares"))
    assert isinstance(engine, Engine) and isinstance(settings, Settings)
    assert isinstance(users, np.ndarray) and isinstance(overrides, CatalogOverrides)
    assert isinstance(shares, int) and (batch_size is None or isinstance(batch_size, int))
    assert settings.redis_url is not None
    writer = open_bulk_writer(settings.redis_url)
    try:
        result = warm_cache(engine, writer, settings, users[share::shares], overrides,
                            batch_size)
    finally:
        writer.close()
    return result.written, result.skipped_fresh


def warm_parallel(engine: Engine, settings: Settings, users: np.ndarray,
                  overrides: CatalogOverrides, processes: int,
                  batch_size: int | None = None) -> WarmResult:
    """`warm_cache` over `processes` forked workers, each with its share of the users."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    began = time.perf_counter()
    overrides.masks(engine.model)  # resolve once, before forking
    _SHARED.update(engine=engine, settings=settings, users=users, overrides=overrides,
                   batch_size=batch_size, shares=processes)
    try:
        with ProcessPoolExecutor(processes,
                                 mp_context=multiprocessing.get_context("fork")) as pool:
            results = list(pool.map(_warm_share, range(processes)))
    finally:
        _SHARED.clear()
    return WarmResult(engine.version, int(users.size), sum(r[0] for r in results),
                      sum(r[1] for r in results), time.perf_counter() - began)


def warm(settings: Settings, version: str | None = None, which: str = "active",
         active_days: float = 30.0, processes: int = 1,
         batch_size: int | None = None) -> WarmResult:
    """Load `version` (default: current) with the service's rules and warm its lists for
    `which` users (`active`: seen within `active_days` of the model's data end; `all`),
    in one process or `processes` forked ones. What `recsvc warm-cache` and the nightly
    job run."""
    if not settings.redis_url:
        raise InputError("warming needs a shared cache: --redis-url (or RECSVC_REDIS_URL)")
    if processes < 1:
        raise InputError("--processes must be at least 1")
    if version is None and current_version(settings.model_root) is None:
        raise InputError(f"no current model under {settings.model_root}")
    try:
        writer = open_bulk_writer(settings.redis_url)
    except (ConnectionError, ValueError) as exc:
        raise InputError(str(exc)) from None
    rules = load_rules(settings.rules_file)
    overrides = CatalogOverrides(settings.paths.catalog_overrides)
    engine = overrides.with_added(load_engine(settings.model_root, version, rules), rules,
                                  time.time())
    users = select_users(engine, which, active_days)
    if settings.paths.privacy_ledger.exists():  # forgotten, or consent withdrawn since
        ledger = settings.privacy_ledger()
        if not ledger.empty:
            ids = engine.model.user_ids[users].tolist()
            users = users[np.array([ledger.allows(str(u), "personalization") for u in ids],
                                   dtype=bool)]
    # One BLAS thread per process: the workers already use every core, and idle BLAS
    # threads only spin beside them (measured: +20% users/s with two workers).
    with threadpool_limits(limits=1, user_api="blas"):
        if processes == 1 or users.size < PARALLEL_MIN_USERS:
            try:
                return warm_cache(engine, writer, settings, users, overrides, batch_size)
            finally:
                writer.close()
        writer.close()
        return warm_parallel(engine, settings, users, overrides, processes, batch_size)


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model-root", type=Path, help="directory holding model versions")
    p.add_argument("--version", help="version to warm (default: current)")
    p.add_argument("--redis-url", help="redis://host:port/db (or RECSVC_REDIS_URL)")
    p.add_argument("--users", choices=["active", "all"], default="active")
    p.add_argument("--active-days", type=float, default=30.0,
                   help="'active': seen within this many days of the model's data end")
    p.add_argument("--rules-file", type=Path, help="the service's rules file")
    p.add_argument("--batch-size", type=int, help="users per batch (default: by catalog)")
    p.add_argument("--processes", type=int, default=os.cpu_count() or 1,
                   help="worker processes (default: one per CPU)")


def _run(args: argparse.Namespace) -> int:
    given = {"model_root": args.model_root, "redis_url": args.redis_url,
             "rules_file": args.rules_file}
    settings = Settings(**{k: v for k, v in given.items() if v is not None})
    result = warm(settings, args.version, args.users, args.active_days, args.processes,
                  args.batch_size)
    print(f"warmed {result.written:,} lists for model {result.version} "
          f"({result.skipped_fresh:,} users with newer events left to the service) in "
          f"{result.seconds:.1f}s: {result.per_second:,.0f} users/s", file=sys.stdout)
    return EXIT_OK


WARM_CACHE = Command("warm-cache", "precompute users' lists into the cache", _configure,
                     _run)
