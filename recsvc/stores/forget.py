"""Forgetting shoppers: the one use case behind `DELETE /users/{user_id}` and
`recsvc forget`.

At once: the forget is recorded in the privacy ledger (a keyed hash, never the id), and
their cached lists (every version, every variant) and fresh events are deleted from the
cache; every worker, following the ledger, drops what it holds of them and serves them
only non-personal lists, and records nothing more of theirs. Later, the nightly job
drops their rows from training, rewrites the events files without them, and retires the
versions that still hold their rows once `forget_grace_days` have passed
(`forgotten_rows` and `retire_versions` below). The receipt says which is which."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from recsvc.core.artifacts import list_versions, open_version
from recsvc.core.errors import RecsvcError
from recsvc.stores.cache import Cache, fresh_key, list_key, shown_key
from recsvc.stores.privacy import PrivacyLedger


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def versions_holding(model_root: Path, user_ids: list[str]) -> dict[str, list[str]]:
    """For each model version on disk, which of `user_ids` it holds rows of."""
    out: dict[str, list[str]] = {}
    wanted = np.array(sorted(set(user_ids)), dtype=str)
    for version in list_versions(model_root):
        with contextlib.suppress(RecsvcError, OSError, KeyError):
            ids = open_version(model_root, version, verify=False).array("user_ids")
            at = np.searchsorted(ids, wanted)
            held = (at < ids.size) & (ids[np.minimum(at, ids.size - 1)] == wanted)
            if held.any():
                out[version] = wanted[held].tolist()
    return out


async def forget_users(
    user_ids: Iterable[str],
    *,
    ledger: PrivacyLedger,
    cache: Cache,
    cache_backend: str,
    namespace: str,
    subject: Callable[[str], str],
    model_root: Path,
    variants: list[str],
    grace_days: float,
    now: float,
) -> dict[str, Any]:
    """Forget these shoppers; the receipt (JSON-ready) of what was removed where and
    what follows."""
    users = sorted({u for u in user_ids if u})
    hashes = ledger.forget(users, now)
    versions = list_versions(model_root)
    holding = versions_holding(model_root, users)
    deleted = 0
    for user in users:
        who = subject(user)
        keys = [list_key(namespace, v, variant, who) for v in versions for variant in variants]
        deleted += await cache.delete([*keys, fresh_key(namespace, who),
                                       shown_key(namespace, who)])
    retire_at = _iso(now + grace_days * 86_400)
    removed: dict[str, Any] = {"cache": cache_backend, "keys_deleted": deleted,
                               "what": "cached lists of every version and variant, "
                                       "fresh events, what they were shown"}
    if cache.status() == "degraded":
        removed["error"] = ("the cache did not answer: keys not deleted (the service "
                            "ignores them, and they expire with their TTL); run again")
    return {
        "forgotten_at": _iso(now),
        "users": len(users),
        "recorded": {"ledger": str(ledger.path), "user_hashes": hashes},
        "removed_now": removed,
        "from_now_on": "served non-personal lists by every worker (within its reload "
                       "interval); their events are not recorded",
        "pending": {
            "training": "the next training drops their rows",
            "events_log": "the next nightly job (`recsvc retrain`) rewrites the events "
                          "files without their rows",
            "model_versions": [{"version": v, "holds_rows_of": len(u),
                                "retired_by": retire_at} for v, u in sorted(holding.items())],
        },
    }


def forgotten_mask(ledger: PrivacyLedger, user_ids: np.ndarray) -> np.ndarray:
    """For each id (any order, repeats allowed), whether that shopper was forgotten:
    each distinct id hashed once."""
    if not ledger.forgotten or len(user_ids) == 0:
        return np.zeros(len(user_ids), dtype=bool)
    names, inverse = np.unique(np.asarray(user_ids, dtype=str), return_inverse=True)
    gone = np.array([ledger.digest(u) in ledger.forgotten for u in names.tolist()])
    return gone[inverse]


def retirable(model_root: Path, ledger: PrivacyLedger, grace_days: float, now: float
              ) -> list[str]:
    """Versions that hold rows of a shopper forgotten more than `grace_days` ago."""
    due = {h for h, at in ledger.forgotten.items()
           if now - at >= timedelta(days=grace_days).total_seconds()}
    if not due:
        return []
    out = []
    for version in list_versions(model_root):
        with contextlib.suppress(RecsvcError, OSError, KeyError):
            ids = open_version(model_root, version, verify=False).array("user_ids")
            if any(ledger.digest(u) in due for u in ids.tolist()):
                out.append(version)
    return out
