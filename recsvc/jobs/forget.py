"""`recsvc forget`: forget shoppers from the command line (ids given, or a file of them,
one per line), as `DELETE /users/{user_id}` does: recorded in the privacy ledger, their
keys deleted from Redis, a JSON receipt on stdout. Running workers follow the ledger."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import orjson

from recsvc.cli import Command
from recsvc.core.errors import EXIT_FAILURE, EXIT_OK, InputError
from recsvc.core.policy.rules import load_rules
from recsvc.settings import Settings
from recsvc.stores.cache import open_cache
from recsvc.stores.forget import forget_users


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("users", nargs="*", metavar="USER", help="user ids to forget")
    p.add_argument("--file", type=Path, help="a file of user ids, one per line")
    p.add_argument("--model-root", type=Path, help="default RECSVC_MODEL_ROOT")
    p.add_argument("--state-dir", type=Path, help="default RECSVC_STATE_DIR")
    p.add_argument("--redis-url", help="the service's Redis (default RECSVC_REDIS_URL)")
    p.add_argument("--rules-file", type=Path, help="the service's rules (its A/B variants)")


def read_ids(given: list[str], file: Path | None) -> list[str]:
    ids = [u.strip() for u in given if u.strip()]
    if file is not None:
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"--file {file}: {exc.strerror or exc}") from None
        ids += [line.strip() for line in text.splitlines() if line.strip()]
    if not ids:
        raise InputError("no user ids given (USER... or --file)")
    too_long = [u for u in ids if len(u) > 256]
    if too_long:
        raise InputError(f"user id {too_long[0][:40]!r}...: longer than 256 characters")
    return ids


def _run(args: argparse.Namespace) -> int:
    overrides = {k: v for k, v in (("model_root", args.model_root),
                                   ("state_dir", args.state_dir),
                                   ("redis_url", args.redis_url),
                                   ("rules_file", args.rules_file)) if v is not None}
    settings = Settings(**overrides)
    ids = read_ids(args.users, args.file)
    receipt = asyncio.run(_forget(settings, ids))
    sys.stdout.write(orjson.dumps(receipt, option=orjson.OPT_INDENT_2).decode() + "\n")
    if "error" in receipt["removed_now"]:
        print(f"recsvc forget: {receipt['removed_now']['error']}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


async def _forget(settings: Settings, ids: list[str]) -> dict:
    cache = open_cache(settings.redis_url, timeout_ms=2000.0, breaker_failures=1)
    try:
        variants = sorted({"default", *load_rules(settings.rules_file).variants})
        return await forget_users(
            ids, ledger=settings.privacy_ledger(), cache=cache,
            cache_backend="redis" if settings.redis_url else "none (in-process caches "
                          "follow the ledger)",
            namespace=settings.cache_namespace, subject=settings.key_subject(),
            model_root=settings.model_root, variants=variants,
            grace_days=settings.forget_grace_days, now=time.time())
    finally:
        await cache.close()


FORGET = Command("forget", "forget shoppers: no more personal lists, their data removed",
                 _configure, _run)
