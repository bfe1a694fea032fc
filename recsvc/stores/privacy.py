"""The privacy ledger: which shoppers asked to be forgotten, and what each consented to
when it changed through the API. Shared by the service's workers (each follows it), the
forget command and the nightly job, in `STATE_DIR/privacy.jsonl`.

One JSON object per line, appended durably under a file lock (as the events log is):

    {"user": "<keyed hash>", "at": 1764547200.0, "forget": true}
    {"user": "<keyed hash>", "at": 1764547200.0, "consent": {"personalization": false, ...}}

The ledger never holds an id: `user` is the id's keyed hash (`core.policy.privacy`),
under `RECSVC_ID_HASH_KEY` when it is set, else under a random key the ledger keeps
beside itself (`id_hash.key`, readable by its owner only). Whoever can read both can
check a guessed id against it, nothing more; set the key elsewhere to keep it apart."""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from recsvc.core.policy.privacy import PURPOSES, IdHasher


def load_key(given: str | None, key_file: Path) -> bytes:
    """The id hash key: the configured one, else the one kept in `key_file` (made, with
    owner-only permissions, the first time it is needed)."""
    if given:
        return given.encode()
    with contextlib.suppress(FileNotFoundError):
        return key_file.read_bytes().strip()
    key_file.parent.mkdir(parents=True, exist_ok=True)
    fd = None
    with contextlib.suppress(FileExistsError):  # another process made it first
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    if fd is not None:
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_hex(32).encode())
            f.flush()
            os.fsync(f.fileno())
    return key_file.read_bytes().strip()


@dataclass
class PrivacyLedger:
    path: Path
    key: Callable[[], bytes]  # read (or made) only when a hash is first needed
    # What has been read so far: hash -> when forgotten; hash -> consent per purpose.
    forgotten: dict[str, float] = field(default_factory=dict)
    consent: dict[str, dict[str, bool]] = field(default_factory=dict)
    _offset: int = 0
    _inode: int | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _hasher: IdHasher | None = None

    @classmethod
    def open(cls, path: Path, key: bytes | Callable[[], bytes]) -> PrivacyLedger:
        ledger = cls(path, key if callable(key) else (lambda: key))
        ledger.refresh()
        return ledger

    @property
    def hasher(self) -> IdHasher:
        # Lazily: a service whose ledger is empty needs no key, so it starts on a
        # read-only state directory as before.
        if self._hasher is None:
            self._hasher = IdHasher(self.key())
        return self._hasher

    @property
    def empty(self) -> bool:
        return not self.forgotten and not self.consent

    # -- reading ---------------------------------------------------------------------

    def refresh(self) -> list[str]:
        """Read what was appended since the last call (by any process); returns the
        hashes newly forgotten, so a worker can purge what it holds of them."""
        with self._lock:
            try:
                st = os.stat(self.path)
            except (FileNotFoundError, NotADirectoryError):
                return []
            if st.st_ino != self._inode:  # a new file: read it all again
                self._inode, self._offset = st.st_ino, 0
                self.forgotten.clear()
                self.consent.clear()
            if st.st_size <= self._offset:
                return []
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read(st.st_size - self._offset)
            end = data.rfind(b"\n") + 1  # a line still being written waits for next time
            self._offset += end
            newly = []
            for line in data[:end].splitlines():
                record = _parse(line)
                if record is None:
                    continue
                user = record["user"]
                if record.get("forget"):
                    if user not in self.forgotten:
                        newly.append(user)
                    self.forgotten[user] = float(record.get("at", 0.0))
                elif isinstance(record.get("consent"), dict):
                    # Only the purposes the shopper spoke about (older lines name all).
                    self.consent[user] = {p: bool(v) for p, v in record["consent"].items()
                                          if p in PURPOSES}
            return newly

    def digest(self, user_id: str) -> str:
        return self.hasher.digest(user_id)

    def is_forgotten(self, user_id: str) -> bool:
        return bool(self.forgotten) and self.digest(user_id) in self.forgotten

    def allows(self, user_id: str, purpose: str) -> bool:
        """Whether what we know lets us use this shopper's data for `purpose`: not
        forgotten, and no consent withdrawn for it through the API. (Consent from the
        users file is the model's business: `RecommenderModel.is_opted_out`.)"""
        if self.empty:
            return True
        h = self.digest(user_id)
        if h in self.forgotten:
            return False
        return self.consent.get(h, {}).get(purpose, True)

    def consent_of(self, user_id: str) -> dict[str, bool] | None:
        """Consent per purpose as last set through the API, for the purposes ever
        stated (None: never set)."""
        return self.consent.get(self.digest(user_id))

    def forgotten_since(self) -> float | None:
        """When the latest forget was recorded (None: nobody forgotten)."""
        return max(self.forgotten.values()) if self.forgotten else None

    # -- writing ---------------------------------------------------------------------

    def forget(self, user_ids: list[str], at: float) -> list[str]:
        """Record that these shoppers are forgotten; returns their hashes."""
        hashes = [self.digest(u) for u in user_ids]
        self._append([{"user": h, "at": at, "forget": True} for h in hashes])
        return hashes

    def set_consent(self, user_id: str, consent: dict[str, bool], at: float) -> str:
        h = self.digest(user_id)
        self._append([{"user": h, "at": at, "consent": {p: bool(v) for p, v in
                                                        consent.items() if p in PURPOSES}}])
        return h

    def _append(self, records: list[dict[str, Any]]) -> None:
        data = b"".join(orjson.dumps(r) + b"\n" for r in records)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            start = os.fstat(fd).st_size
            torn = start > 0 and os.pread(fd, 1, start - 1) != b"\n"
            try:
                os.write(fd, b"\n" + data if torn else data)
                os.fsync(fd)
            except BaseException:
                os.ftruncate(fd, start)
                raise
        finally:
            os.close(fd)
        self.refresh()


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None  # a line torn by a crash mid-write: never acknowledged
    if not isinstance(record, dict) or not isinstance(record.get("user"), str):
        return None
    return record
