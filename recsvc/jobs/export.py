"""`recsvc export`: each consenting shopper's top-N as a file for a campaign (email, SMS):
the very lists `GET /recommend` shows them (rules, stock and reasons applied), one row
per shopper and item, as CSV or Parquet.

Only shoppers whose consent covers the purpose are written. Campaign purposes (email,
sms) need an explicit yes: the latest the shopper said through the API (the privacy
ledger), else the `consent` column of the users table given with `--consent`; a shopper
with neither is left out, as are the forgotten and those who refused personalization
(the lists are personal). Lists reflect the model and the rules; events newer than the
model (which the service folds in) are not read."""

from __future__ import annotations

import argparse
import csv
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from threadpoolctl import threadpool_limits

from recsvc.cli import Command
from recsvc.core.artifacts import current_version, fsync_dir
from recsvc.core.engine import Engine, load_engine
from recsvc.core.errors import EXIT_OK, InputError
from recsvc.core.lists import shown_lists
from recsvc.core.policy.filters import filter_stage
from recsvc.core.policy.privacy import PURPOSES, parse_purposes
from recsvc.core.policy.rules import load_rules
from recsvc.core.ranking.packed import ListRenderer
from recsvc.settings import Settings
from recsvc.stores.catalog import CatalogOverrides
from recsvc.stores.privacy import PrivacyLedger

COLUMNS = ("user_id", "rank", "item_id", "score", "reason", "reasons", "variant",
           "model_version")
CAMPAIGN_PURPOSES = ("email", "sms")
ROWS_PER_BATCH = 2000  # shoppers ranked at once (bounded by the catalog size too)


@dataclass
class ExportResult:
    path: Path
    shoppers: int
    rows: int
    seconds: float
    left_out: Counter = field(default_factory=Counter)  # reason -> shoppers

    @property
    def per_second(self) -> float:
        return self.shoppers / self.seconds if self.seconds > 0 else 0.0


def read_ids(path: Path) -> list[str]:
    """Shopper ids: one a line, or a CSV with a `user_id` column."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--users {path}: unreadable ({exc})") from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if lines and "," in lines[0] and "user_id" in lines[0].split(","):
        rows = csv.DictReader(text.splitlines())
        return [r["user_id"].strip() for r in rows if (r.get("user_id") or "").strip()]
    return lines


def read_consent(path: Path) -> dict[str, dict[str, bool] | None]:
    """The users table's consent per shopper (`user_id`, `consent` columns)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or not {"user_id", "consent"} <= set(reader.fieldnames):
                raise InputError(f"--consent {path}: needs user_id and consent columns")
            out = {}
            for line, row in enumerate(reader, start=2):
                try:
                    out[(row["user_id"] or "").strip()] = parse_purposes(row["consent"])
                except ValueError as exc:
                    raise InputError(f"--consent {path}, line {line}: {exc}") from None
            return out
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--consent {path}: unreadable ({exc})") from None


def eligible(engine: Engine, ledger: PrivacyLedger, purpose: str,
             consent: dict[str, dict[str, bool] | None], ids: list[str] | None,
             segment: str | None) -> tuple[np.ndarray, Counter]:
    """Model user numbers of the shoppers to export, and how many were left out why."""
    model = engine.model
    left_out: Counter = Counter()
    if ids is not None:
        index = model.user_index(ids)
        left_out["unknown_to_the_model"] = int((index < 0).sum())
        users = np.unique(index[index >= 0])
    else:
        users = np.arange(model.n_users)
    if segment is not None:
        codes, values = model.user_attributes.get("segment", (None, None))
        if codes is None:
            raise InputError("--segment: the model knows no segments (train with a users "
                             "table that has a segment column)")
        wanted = [i for i, v in enumerate(values.tolist()) if str(v).lower() == segment.lower()]
        if not wanted:
            raise InputError(f"--segment {segment!r}: no such segment (known: "
                             f"{', '.join(sorted(map(str, values.tolist())))})")
        inside = np.isin(codes[users], wanted)
        left_out["other_segment"] = int((~inside).sum()) if ids is not None else 0
        users = users[inside]
    history = np.diff(model.user_items.indptr)[users] > 0
    left_out["no_history"] = int((~history).sum())
    users = users[history]
    keep = np.ones(users.size, dtype=bool)
    user_ids = [str(u) for u in model.user_ids[users].tolist()]
    refused = model.opted_out_mask(np.array(user_ids)) if model.opted_out.size else keep & False
    for j, user in enumerate(user_ids):
        if refused[j]:
            why = "no_personalization_consent"
        elif not ledger.empty and ledger.is_forgotten(user):
            why = "forgotten"
        else:
            # Per purpose, the latest statement: through the API, else the users table.
            said = (ledger.consent_of(user) if not ledger.empty else None) or {}
            filed = consent.get(user) or {}
            personal = said.get("personalization", filed.get("personalization", True))
            wanted = said.get(purpose, filed.get(purpose))
            # No statement: personalization is assumed (as in training); a campaign
            # needs a yes.
            ok = personal and (wanted if wanted is not None
                               else purpose not in CAMPAIGN_PURPOSES)
            why = None if ok else f"no_{purpose}_consent"
        if why is not None:
            keep[j] = False
            left_out[why] += 1
    return users[keep], +left_out


class _Writer:
    """Rows to CSV or Parquet, into a temporary file renamed into place at the end."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.parquet = path.suffix.lower() == ".parquet"
        self.tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        self.columns: dict[str, list[Any]] = {c: [] for c in COLUMNS}
        if self.parquet:
            import pyarrow  # noqa: F401  (a clear message before any work)
            import pyarrow.parquet as pq

            self._pq = pq
            self._parquet_writer = None
        else:
            self._file = open(self.tmp, "w", newline="", encoding="utf-8")  # noqa: SIM115
            self._csv = csv.writer(self._file)
            self._csv.writerow(COLUMNS)

    def write(self, rows: list[tuple]) -> None:
        if not self.parquet:
            self._csv.writerows(rows)
            return
        import pyarrow as pa

        table = pa.table({c: [r[i] for r in rows] for i, c in enumerate(COLUMNS)},
                         schema=pa.schema([("user_id", pa.string()), ("rank", pa.int32()),
                                           ("item_id", pa.string()), ("score", pa.float32()),
                                           ("reason", pa.string()), ("reasons", pa.string()),
                                           ("variant", pa.string()),
                                           ("model_version", pa.string())]))
        if self._parquet_writer is None:
            self._parquet_writer = self._pq.ParquetWriter(self.tmp, table.schema)
        self._parquet_writer.write_table(table)

    def close(self, ok: bool) -> None:
        if self.parquet:
            if self._parquet_writer is None and ok:
                self.write([])
            if self._parquet_writer is not None:
                self._parquet_writer.close()
        else:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
        if ok:
            os.replace(self.tmp, self.path)
            fsync_dir(self.path.parent)
        else:
            self.tmp.unlink(missing_ok=True)


def export(settings: Settings, out: Path, n: int = 10, purpose: str = "email",
           consent_file: Path | None = None, ids: list[str] | None = None,
           segment: str | None = None, version: str | None = None) -> ExportResult:
    if purpose not in PURPOSES:
        raise InputError(f"--purpose {purpose!r}: one of {', '.join(PURPOSES)}")
    if not 1 <= n <= 100:
        raise InputError("--n must be from 1 to 100 (as GET /recommend)")
    if out.suffix.lower() not in (".csv", ".parquet"):
        raise InputError(f"--out {out}: name a .csv or .parquet file")
    if not out.parent.is_dir():
        raise InputError(f"--out {out}: no directory {out.parent}")
    if version is None and current_version(settings.model_root) is None:
        raise InputError(f"no current model under {settings.model_root}")
    began = time.perf_counter()
    consent = read_consent(consent_file) if consent_file is not None else {}
    rules = load_rules(settings.rules_file)
    overrides = CatalogOverrides(settings.paths.catalog_overrides)
    engine = overrides.with_added(load_engine(settings.model_root, version, rules), rules,
                                  time.time())
    model = engine.model
    users, left_out = eligible(engine, settings.privacy_ledger(), purpose, consent, ids,
                               segment)
    live, price = overrides.masks(model)
    stage = filter_stage(model, engine.rules, live, price)
    renderer = ListRenderer(model)
    ids_of = model.user_ids
    rows = max(1, min(ROWS_PER_BATCH, 20_000_000 // max(1, model.n_items)))
    writer = _Writer(out)
    written = shoppers = 0
    ok = False
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            pending: list[tuple] = []
            for user, variant, packed, positions in shown_lists(
                    engine, users, n, stage, live, settings.cache_list_size, time.time(),
                    settings.new_arrival_days, rows):
                if not positions:
                    continue
                user_id = str(ids_of[user])
                shoppers += 1
                for rank, item in enumerate(orjson.loads(renderer.items_json(packed,
                                                                             positions)), 1):
                    reasons = item["reasons"]
                    pending.append((user_id, rank, item["item_id"], item["score"],
                                    reasons[0]["code"] if reasons else "",
                                    orjson.dumps(reasons).decode(), variant.name,
                                    engine.version))
                if len(pending) >= 50_000:
                    writer.write(pending)
                    written += len(pending)
                    pending = []
            writer.write(pending)
            written += len(pending)
        ok = True
    finally:
        writer.close(ok)
    return ExportResult(out, shoppers, written, time.perf_counter() - began, left_out)


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model-root", type=Path, help="default RECSVC_MODEL_ROOT")
    p.add_argument("--state-dir", type=Path, help="default RECSVC_STATE_DIR (stock, privacy)")
    p.add_argument("--version", help="model version (default: current)")
    p.add_argument("--rules-file", type=Path, help="default RECSVC_RULES_FILE")
    p.add_argument("--out", type=Path, required=True, help="FILE.csv or FILE.parquet")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--users", type=Path, help="these shoppers only (ids, or a CSV)")
    who.add_argument("--segment", help="the shoppers of this segment only")
    p.add_argument("--n", type=int, default=10, help="items per shopper")
    p.add_argument("--purpose", default="email", help=f"one of {', '.join(PURPOSES)}")
    p.add_argument("--consent", type=Path,
                   help="users table (user_id, consent) saying who opted in to what")


def _run(args: argparse.Namespace) -> int:
    given = {"model_root": args.model_root, "state_dir": args.state_dir,
             "rules_file": args.rules_file}
    settings = Settings(**{k: v for k, v in given.items() if v is not None})
    ids = read_ids(args.users) if args.users else None
    result = export(settings, args.out, args.n, args.purpose, args.consent, ids,
                    args.segment, args.version)
    left = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in sorted(result.left_out.items()))
    print(f"exported {result.shoppers:,} shoppers ({result.rows:,} rows) to {result.path} in "
          f"{result.seconds:.1f}s ({result.per_second:,.0f} shoppers/s)"
          + (f"; left out: {left}" if left else ""))
    return EXIT_OK


EXPORT = Command("export", "write consenting shoppers' top-N lists for a campaign",
                 _configure, _run)
