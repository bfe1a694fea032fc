"""Gather the nightly job's interactions: the shop's base logs plus every events file the
service appended (rotated by day and size), into one table for the clean stage.

The service's files are read line by line and forgivingly: a line cut short by a crash
while appending, or otherwise not a JSON object with the required fields, is skipped and
counted, never fatal. A base log is read as strictly as `recsvc train` reads it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

from recsvc.core.errors import InputError
from recsvc.stores.events_log import PREFIX, SUFFIX
from training.clean import SOURCE
from training.readers import FORMATS, read_interactions

REQUIRED = ("user_id", "item_id", "event_type", "timestamp")
KEEP = (*REQUIRED, "value", "channel", "event_id")


@dataclass
class Gathered:
    interactions: pd.DataFrame  # its `_source` column numbers `files`
    files: list[dict[str, Any]] = field(default_factory=list)
    skipped_lines: int = 0

    @property
    def sources(self) -> list[str]:
        return [f["path"] for f in self.files]


def is_events_file(path: Path) -> bool:
    return path.name.startswith(PREFIX) and path.name.endswith(SUFFIX)


def read_events_file(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The records of one service events file, and how many lines were skipped."""
    records, skipped = [], 0
    with open(path, "rb") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                skipped += 1  # a half-written line: the request was never acknowledged
                continue
            if not isinstance(record, dict) or any(record.get(k) in (None, "")
                                                   for k in REQUIRED):
                skipped += 1
                continue
            records.append({k: record.get(k) for k in KEEP})
    return records, skipped


def input_files(paths: list[Path]) -> list[Path]:
    """Files as given; a directory stands for its input files (events files included)."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and (
                is_events_file(p) or any(p.name.lower().endswith(s) for s in FORMATS)))
            if not found:
                raise InputError(f"interactions directory {path}: no input files in it")
            out.extend(found)
        elif path.exists():
            out.append(path)
        else:
            raise InputError(f"interactions file {path}: not found")
    return out


def gather(paths: list[Path], events_dir: Path | None = None) -> Gathered:
    files = input_files(paths)
    if events_dir is not None and events_dir.is_dir():
        files.extend(p for p in sorted(events_dir.iterdir())
                     if is_events_file(p) and p not in files)
    frames, described, skipped = [], [], 0
    for path in files:
        if is_events_file(path):
            records, bad = read_events_file(path)
            skipped += bad
            frame = pd.DataFrame.from_records(records, columns=list(KEEP))
        else:
            frame = read_interactions(path)
            for column in frame.columns:  # one dtype per column across the files
                if isinstance(frame[column].dtype, pd.CategoricalDtype):
                    frame[column] = frame[column].astype(object)
        frame[SOURCE] = len(described)  # which file: the cleaner counts drops per file
        described.append({"path": str(path.resolve()), "rows": int(len(frame)),
                          "service_events": is_events_file(path)})
        frames.append(frame)
    frames = [f for f in frames if len(f)]
    if not frames:
        raise InputError("no interactions found in "
                         + ", ".join(str(p) for p in paths + ([events_dir] if events_dir
                                                                 else [])))
    table = pd.concat(frames, ignore_index=True, sort=False)
    if table["timestamp"].dtype == object:  # ISO strings from one file, numbers from another
        table["timestamp"] = table["timestamp"].astype(str)
    return Gathered(table, described, skipped)
