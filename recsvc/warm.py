"""`recsvc warm-cache`: precompute users' lists into Redis after a training, so the first
page view of the day is a cache hit.

Lists are ranked in batches (one matrix product per algorithm for thousands of users)
through the same functions the service uses (`scoring.recommend`, then
`recommend.rank_lists` for pins, reasons and packing), and written a few hundred at a
time by a small server-side script, under the keys the service reads. Users with events
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

from recsvc.artifacts import current_version
from recsvc.cache import fresh_key, list_key
from recsvc.catalog import CatalogOverrides
from recsvc.cli import Command
from recsvc.engine import Engine, load_engine
from recsvc.errors import EXIT_OK, InputError
from recsvc.models.base import SECONDS_PER_DAY
from recsvc.recommend import rank_lists
from recsvc.rules import load_rules
from recsvc.scoring import recommend
from recsvc.settings import Settings

SET_MANY = """
local ttl = ARGV[1]
for i, key in ipairs(KEYS) do
  redis.call('SET', key, ARGV[i + 1], 'EX', ttl)
end
return #KEYS
"""
SET_MANY_KEYS = 500
# Bound one batch's dense scores: rows x catalog size cells per algorithm.
MAX_BATCH_CELLS = 20_000_000


class ListWriter:
    """Writes lists with SET ... EX, SET_MANY_KEYS per call of a short server-side loop:
    the client packs one command and parses one reply per few hundred lists (measured:
    9 against 14-21 µs a list for a pipeline of SETs), and Redis is blocked for about a
    millisecond at a time. The command is packed here in one buffer and sent in one
    write: redis-py's packer sends a large command as many small writes."""

    def __init__(self, client, ttl_s: int) -> None:  # noqa: ANN001 - a redis.Redis
        self.client = client
        self.ttl = str(int(ttl_s)).encode()
        self.sha = client.script_load(SET_MANY).encode()

    def write(self, keys: list[bytes], values: list[bytes]) -> None:
        import redis

        for at in range(0, len(keys), SET_MANY_KEYS):
            part_keys, part_values = keys[at:at + SET_MANY_KEYS], values[at:at + SET_MANY_KEYS]
            args = [b"EVALSHA", self.sha, str(len(part_keys)).encode(), *part_keys, self.ttl,
                    *part_values]
            try:
                self._send(args)
            except redis.exceptions.NoScriptError:  # Redis restarted: load it again
                self.sha = self.client.script_load(SET_MANY).encode()
                args[1] = self.sha
                self._send(args)

    def _send(self, args: list[bytes]) -> None:
        payload = b"".join([b"*%d\r\n" % len(args),
                            *(b"$%d\r\n%s\r\n" % (len(arg), arg) for arg in args)])
        pool = self.client.connection_pool
        connection = pool.get_connection()
        try:
            connection.send_packed_command([payload])
            connection.read_response()  # raises on an error reply (NOSCRIPT included)
        finally:
            pool.release(connection)


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
        users = users[~np.isin(model.user_ids[users], model.opted_out)]
    if which == "active" and model.user_last_seen.size == model.n_users:
        since = engine.reference_time - active_days * SECONDS_PER_DAY
        users = users[model.user_last_seen[users] >= since]
    return users


def warm_cache(
    engine: Engine,
    client,  # noqa: ANN001 - a redis.Redis
    settings: Settings,
    users: np.ndarray,
    overrides: CatalogOverrides,
    batch_size: int | None = None,
) -> WarmResult:
    model = engine.model
    began = time.perf_counter()
    live, _ = overrides.masks(model)
    allowed = live & engine.rules.allowed
    size = settings.cache_list_size
    ns = settings.cache_namespace
    rows = batch_size or max(1, min(2000, MAX_BATCH_CELLS // max(1, model.n_items)))
    ids = model.user_ids
    user_ids_all = [str(u) for u in ids[users].tolist()]
    variant_of = ([engine.rules.variant_for(u) for u in user_ids_all] if engine.rules.variants
                  else [engine.rules.variant_for("")] * len(user_ids_all))
    names = np.array([v.name for v in variant_of])
    written = skipped = 0
    now = time.time()
    writer = ListWriter(client, settings.cache_ttl_s)
    # Users with events newer than the model: one SCAN, rather than a lookup per user.
    fresh_prefix = fresh_key(ns, "")
    fresh_users = {key.decode()[len(fresh_prefix):]
                   for key in client.scan_iter(match=f"{fresh_prefix}*", count=10_000)}
    for name in np.unique(names):
        members = users[names == name]
        variant = next(v for v in variant_of if v.name == name)
        weights = variant.weights or model.weights
        exclude_seen = (variant.exclude_seen if variant.exclude_seen is not None
                        else model.exclude_seen)
        prefix = list_key(ns, engine.version, str(name), "").encode()
        for start in range(0, members.size, rows):
            chunk = members[start:start + rows]
            user_ids = [str(u) for u in ids[chunk].tolist()]
            if fresh_users:
                has_fresh = np.array([u in fresh_users for u in user_ids], dtype=bool)
                chunk = chunk[~has_fresh]
                user_ids = [u for u, f in zip(user_ids, has_fresh, strict=True) if not f]
                skipped += int(has_fresh.sum())
            if chunk.size == 0:
                continue
            batch = model.batch(chunk)
            ranking = recommend(model, batch, size, exclude_seen, allowed, weights,
                                bias=engine.rules.bias, explain=True, in_stock=live)
            lists = rank_lists(engine, ranking, batch.history, [], allowed, now,
                               settings.new_arrival_days)
            keys, values = [], []
            for user_id, value, listed in zip(user_ids, lists, ranking.lengths.tolist(),
                                              strict=True):
                if listed:  # an empty list is the service's to handle (fallbacks)
                    keys.append(prefix + user_id.encode())
                    values.append(value)
            writer.write(keys, values)
            written += len(keys)
    return WarmResult(engine.version, int(users.size), written, skipped,
                      time.perf_counter() - began)


# Set in the parent before forking: children inherit the loaded engine (its arrays are
# memory-mapped, so nothing is copied) and warm their own share of the users.
_SHARED: dict[str, object] = {}


def _warm_share(share: int) -> tuple[int, int]:
    import redis

    engine, settings, users, overrides, batch_size, shares = (
        _SHARED[k] for k in ("engine", "settings", "users", "overrides", "batch_size",
                             "shares"))
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=30)  # type: ignore[attr-defined]
    mine = users[share::shares]  # type: ignore[index]
    # One BLAS thread per worker: the workers already use every core, and BLAS threads
    # on top of them only contend (measured: +20% users/s with two workers).
    with threadpool_limits(limits=1, user_api="blas"):
        result = warm_cache(engine, client, settings, mine, overrides, batch_size)  # type: ignore[arg-type]
    client.close()
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
    import redis

    overrides = {"model_root": args.model_root, "redis_url": args.redis_url,
                 "rules_file": args.rules_file}
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    if not settings.redis_url:
        raise InputError("warm-cache needs --redis-url (or RECSVC_REDIS_URL)")
    if current_version(settings.model_root) is None and args.version is None:
        raise InputError(f"no current model under {settings.model_root}")
    engine = load_engine(settings.model_root, args.version, load_rules(settings.rules_file))
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=10)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise InputError(f"cannot reach Redis at {settings.redis_url}: {exc}") from None
    users = select_users(engine, args.users, args.active_days)
    overrides_store = CatalogOverrides(settings.resolved_state_dir() / "catalog_overrides.json")
    if args.processes < 1:
        raise InputError("--processes must be at least 1")
    if args.processes == 1 or users.size < 10_000:
        with threadpool_limits(limits=1, user_api="blas"):  # idle BLAS threads spin
            result = warm_cache(engine, client, settings, users, overrides_store,
                                args.batch_size)
    else:
        result = warm_parallel(engine, settings, users, overrides_store, args.processes,
                               args.batch_size)
    print(f"warmed {result.written:,} lists for model {result.version} "
          f"({result.skipped_fresh:,} users with newer events left to the service) in "
          f"{result.seconds:.1f}s: {result.per_second:,.0f} users/s", file=sys.stdout)
    return EXIT_OK


WARM_CACHE = Command("warm-cache", "precompute users' lists into Redis", _configure, _run)
