"""The model format on disk: versioned directories of .npy arrays plus a JSON manifest.

Layout::

    MODEL_ROOT/
        current -> 20261122T101500.123456Z-3fa2c1  (a symlink, swapped atomically)
        20261122T101500.123456Z-3fa2c1/
            manifest.json                     (schema, inputs, params, report, sha256 of files)
            *.npy                             (numpy arrays, no pickle, memory-mappable)

A version is written into a hidden temporary directory, flushed, and renamed into place;
only then is `current` repointed. A crash at any moment leaves the previous current
version intact: at worst a `.tmp-*` directory is left behind, which pruning removes.
What becomes of a version afterwards (candidate, promoted, rejected, failed) and which
versions are kept: `recsvc.core.lifecycle`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import scipy.sparse as sp

from recsvc.core.errors import ModelError
from recsvc.core.manifest import FORMAT_NAME, SCHEMA_VERSION, Layout, Manifest, ModelCard

MANIFEST = "manifest.json"
CURRENT = "current"
TMP_PREFIX = ".tmp-"
STALE_TMP_SECONDS = 24 * 3600
VERSION_NAME = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,63}")


def new_version_id(now: datetime | None = None) -> str:
    """Sortable by creation time (to the microsecond), unique across concurrent writers."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%S.%f}Z-{secrets.token_hex(3)}"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data`: readers see the old file or the new one, never a
    part, and the new one survives a crash once this returns."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


class VersionWriter:
    """Writes one model version atomically. Use as a context manager::

        with VersionWriter(root) as writer:
            writer.save_array("item_ids", ids)
            manifest = writer.commit(card, layout)

    Leaving the block without `commit` (an exception) removes the temporary directory.
    """

    def __init__(self, model_root: str | Path, version: str | None = None) -> None:
        self.model_root = Path(model_root)
        self.version = version or new_version_id()
        self.model_root.mkdir(parents=True, exist_ok=True)
        self.tmp_dir = self.model_root / f"{TMP_PREFIX}{self.version}"
        self.tmp_dir.mkdir()
        self._files: dict[str, dict[str, Any]] = {}
        # Checksums are computed in threads while later arrays are written (hashlib
        # releases the GIL): the write stage then costs little more than the writing.
        self._hasher = ThreadPoolExecutor(max_workers=2)
        self._digests: dict[str, Future[str]] = {}
        self._committed = False

    def save_array(self, name: str, array: np.ndarray) -> None:
        if not name.replace("_", "").replace(".", "").isalnum():
            raise ValueError(f"bad array name {name!r}")
        array = np.asarray(array)
        if array.dtype == object:
            raise TypeError(f"array {name!r} has dtype object, which would need pickle")
        filename = f"{name}.npy"
        if filename in self._files:
            raise ValueError(f"array {name!r} saved twice")
        path = self.tmp_dir / filename
        with open(path, "wb") as fh:
            np.save(fh, array, allow_pickle=False)
            fh.flush()
            os.fsync(fh.fileno())
        self._digests[filename] = self._hasher.submit(sha256_file, path)
        self._files[filename] = {
            "bytes": path.stat().st_size,
            "dtype": array.dtype.str,
            "shape": list(array.shape),
        }

    def save_csr(self, name: str, matrix: sp.spmatrix) -> None:
        """A sparse matrix as four arrays: `name.data`, `.indices`, `.indptr`, `.shape`."""
        matrix = sp.csr_matrix(matrix)
        self.save_array(f"{name}.data", matrix.data)
        self.save_array(f"{name}.indices", matrix.indices)
        self.save_array(f"{name}.indptr", matrix.indptr)
        self.save_array(f"{name}.shape", np.asarray(matrix.shape, dtype=np.int64))

    def commit(self, card: ModelCard, layout: Layout) -> Manifest:
        """Write the manifest, move the version into place and return the manifest.

        It does not make the version current: call `publish` for that.
        """
        for filename, digest in self._digests.items():
            self._files[filename]["sha256"] = digest.result()
        self._hasher.shutdown()
        manifest = Manifest.model_validate({
            **card.model_dump(), **layout.model_dump(),
            "format": FORMAT_NAME, "schema_version": SCHEMA_VERSION, "version": self.version,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "files": self._files})
        path = self.tmp_dir / MANIFEST
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(manifest.dump(), fh, indent=2, sort_keys=False, default=_json_default)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        fsync_dir(self.tmp_dir)
        os.rename(self.tmp_dir, self.model_root / self.version)
        fsync_dir(self.model_root)
        self._committed = True
        return manifest

    def __enter__(self) -> VersionWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._hasher.shutdown(wait=True)
        if not self._committed:
            shutil.rmtree(self.tmp_dir, ignore_errors=True)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to the manifest")


def publish(model_root: str | Path, version: str) -> None:
    """Atomically point `MODEL_ROOT/current` at `version` (`lifecycle.promote` also
    records the promotion)."""
    root = Path(model_root)
    check_version_name(version)
    if not (root / version / MANIFEST).is_file():
        raise ModelError(f"no model version {version!r} under {root}")
    tmp_link = root / f"{TMP_PREFIX}current-{secrets.token_hex(4)}"
    os.symlink(version, tmp_link)
    os.replace(tmp_link, root / CURRENT)
    fsync_dir(root)


def current_version(model_root: str | Path) -> str | None:
    link = Path(model_root) / CURRENT
    if not link.is_symlink():
        return None
    return os.readlink(link)


def check_version_name(version: str) -> str:
    """A version id is a directory name of safe characters (it goes into paths, cache
    keys and responses): refused otherwise."""
    if not VERSION_NAME.fullmatch(version):
        raise ModelError(f"{version!r} is not a version id (letters, digits, '.', '_', '-', "
                         "at most 64, starting with a letter or digit)")
    return version


def list_versions(model_root: str | Path) -> list[str]:
    """Committed versions, oldest first."""
    root = Path(model_root)
    if not root.is_dir():
        return []
    return sorted(
        p.name
        for p in root.iterdir()
        if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")
        and (p / MANIFEST).is_file()
    )


def remove_stale_tmp(model_root: str | Path) -> None:
    """Remove temporary directories (and links) left by crashed runs over a day ago."""
    cutoff = time.time() - STALE_TMP_SECONDS
    for p in Path(model_root).glob(f"{TMP_PREFIX}*"):
        try:
            if p.lstat().st_mtime < cutoff:
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)
        except FileNotFoundError:
            pass


@dataclass(frozen=True)
class StoredVersion:
    """A verified model version: its manifest and its arrays (memory-mapped)."""

    path: Path
    manifest: Manifest

    @property
    def version(self) -> str:
        return self.manifest.version

    def array(self, name: str, mmap: bool = True) -> np.ndarray:
        filename = f"{name}.npy"
        if filename not in self.manifest.files:
            raise ModelError(f"model {self.version} has no array {name!r}")
        array = np.load(self.path / filename, mmap_mode="r" if mmap else None,
                        allow_pickle=False)
        # A plain ndarray view of the mapping: the memmap subclass costs a Python call on
        # every slice, which the service pays per request.
        return np.asarray(array)

    def has_array(self, name: str) -> bool:
        return f"{name}.npy" in self.manifest.files

    def csr(self, name: str) -> sp.csr_matrix:
        """A sparse matrix saved by `VersionWriter.save_csr`."""
        shape = tuple(int(x) for x in self.array(f"{name}.shape", mmap=False))
        return sp.csr_matrix((self.array(f"{name}.data"), self.array(f"{name}.indices"),
                              self.array(f"{name}.indptr")), shape=shape)


def open_version(
    model_root: str | Path, version: str | None = None, verify: bool = True
) -> StoredVersion:
    """Open a version (default: current), checking its format, schema and checksums."""
    root = Path(model_root)
    if version is None:
        version = current_version(root)
        if version is None:
            raise ModelError(f"no current model under {root} (train one with `recsvc train`)")
    check_version_name(version)
    path = root / version
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise ModelError(f"no model version {version!r} under {root}")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"model {version}: unreadable manifest ({exc})") from exc
    manifest = Manifest.parse(manifest, version)
    if manifest.version != version:
        raise ModelError(f"model {version}: its manifest names version {manifest.version!r}")
    if verify:
        for filename, meta in manifest.files.items():
            file_path = path / filename
            if not file_path.is_file():
                raise ModelError(f"model {version}: file {filename} is missing")
            if sha256_file(file_path) != meta.sha256:
                raise ModelError(f"model {version}: checksum mismatch in {filename} (corrupt)")
    return StoredVersion(path=path, manifest=manifest)
