"""The events log: what shoppers did, appended durably for the nightly training.

One JSON object per line, in the trainer's input format (`user_id, item_id, event_type,
timestamp`, optional `value`, `channel`, `recommendation_id`, `event_id`), in
`STATE_DIR/events/events-YYYYMMDD[-N].jsonl`: a new file each UTC day, and a new part
when one grows past `events_rotate_bytes`.

Each request's events are whole lines written under an exclusive lock on the file (the
workers of a host share it), then fsynced before the request is answered (`fsync =
"always"`; `"os"` leaves flushing to the OS: an acknowledged event then survives the
service's crash, not the machine's). A write that fails part-way (a full disk) is cut
back to where it began before the error is raised, so the next request never joins its
lines to a half-written one, and nothing of a refused request stays. A line cut short by
a kill in mid-write, of a request never acknowledged, is the only damage possible: the
next write starts on a new line, and the trainer skips and counts the torn one."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from recsvc.core.artifacts import fsync_dir

PREFIX = "events-"
SUFFIX = ".jsonl"


class EventLog:
    def __init__(self, directory: Path, rotate_bytes: int, fsync: str = "always",
                 prefix: str = PREFIX) -> None:
        if fsync not in ("always", "os"):
            raise ValueError(f"events fsync policy {fsync!r}: 'always' or 'os'")
        self.prefix = prefix  # another log in the same format: "impressions-"
        self.directory = directory
        self.rotate_bytes = rotate_bytes
        self.fsync = fsync
        self._lock = threading.Lock()

    def _target(self, now: float) -> Path:
        day = time.strftime("%Y%m%d", time.gmtime(now))
        part = 0
        while True:
            name = f"{self.prefix}{day}{'' if part == 0 else f'-{part}'}{SUFFIX}"
            path = self.directory / name
            try:
                if os.stat(path).st_size < self.rotate_bytes:
                    return path
            except FileNotFoundError:
                return path
            part += 1

    def append(self, records: list[dict[str, Any]]) -> Path:
        """Write the records as whole lines, durably (per the fsync policy); returns the
        file written. On any error nothing of them stays in the file."""
        return self.append_lines(b"".join(orjson.dumps(r) + b"\n" for r in records))

    def append_lines(self, data: bytes) -> Path:
        """`append` for lines already serialised (each ending in a newline)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with self._lock:
            path = self._target(time.time())
            fd = _open_locked(path)
            try:
                start = os.fstat(fd).st_size
                # A process killed mid-write left a torn last line: start on a new one,
                # so the torn line stays alone (the trainer skips it) and ours are whole.
                torn = start > 0 and os.pread(fd, 1, start - 1) != b"\n"
                try:
                    view = memoryview(b"\n" + data if torn else data)
                    while view:
                        written = os.write(fd, view)
                        view = view[written:]
                    if self.fsync == "always":
                        os.fsync(fd)
                except BaseException:
                    os.ftruncate(fd, start)  # no half batch for the next one to join
                    raise
            finally:
                os.close(fd)  # releases the lock
        return path

    def drop_users(self, is_dropped: Callable[[np.ndarray], np.ndarray]
                   ) -> list[dict[str, Any]]:
        """Rewrite every events file without the rows of the users `is_dropped` picks
        (given an array of user ids): forgotten shoppers. Each file is replaced whole
        (a new file, then a rename) under its lock, so a worker appending meanwhile waits,
        then writes to the new file. Returns the files changed and rows removed."""
        changed = []
        for path in self.files():
            fd = _open_locked(path)
            try:
                with open(path, "rb") as f:
                    lines = f.read().splitlines(keepends=True)
                users = np.array([_user_of(line) for line in lines], dtype=str)
                gone = is_dropped(users) & (users != "")
                if not gone.any():
                    continue
                tmp = path.with_name(f".{path.name}.tmp")
                with open(tmp, "wb") as f:
                    f.writelines(line for line, g in zip(lines, gone, strict=True) if not g)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
                fsync_dir(path.parent)
                changed.append({"file": path.name, "rows_removed": int(gone.sum())})
            finally:
                os.close(fd)
        return changed

    def prune(self, before: float) -> list[str]:
        """Delete the events files of days wholly before `before` (epoch seconds): kept
        no longer than the shop's retention. Returns the names deleted."""
        cutoff = time.strftime("%Y%m%d", time.gmtime(before))
        gone = []
        for path in self.files():
            if path.name[len(self.prefix):len(self.prefix) + 8] < cutoff:
                path.unlink(missing_ok=True)
                gone.append(path.name)
        return gone

    def files(self) -> list[Path]:
        """Every events file, oldest first."""
        if not self.directory.is_dir():
            return []
        n = len(self.prefix)
        return sorted(self.directory.glob(f"{self.prefix}*{SUFFIX}"),
                      key=lambda p: (p.name[n:n + 8], _part(p, n)))


def _open_locked(path: Path) -> int:
    """The file's descriptor, holding its exclusive lock (other workers append to the
    same file). If the file was replaced while we waited (forgotten users' rows
    removed), the lock we got is on the old one: open the new one and lock again."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def _user_of(line: bytes) -> str:
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return ""  # a torn line: the trainer skips it anyway
    return str(record.get("user_id", "")) if isinstance(record, dict) else ""


def _part(path: Path, prefix_chars: int) -> int:
    stem = path.name[prefix_chars:-len(SUFFIX)]
    return int(stem.split("-")[1]) if "-" in stem else 0
