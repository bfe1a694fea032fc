"""What becomes of a model version: its recorded state, which versions are kept, and
which may be made current again.

    candidate  written, not (yet) made current: the nightly job's candidate before its gate
    promoted   made current (by `recsvc train`, or the nightly job after its gate), with when
    rejected   the gate refused it (with the gate's figures)
    failed     its run died or failed after writing it (with why)
    unknown    written before states were recorded

Each version's state is a small JSON file beside its manifest (`lifecycle.json`, replaced
atomically; not one of the checksummed files), with the history of its changes.

Pruning never removes `current` or the newest N promoted versions; rejected and failed
candidates go first and do not count towards N. Rollback goes to the promoted version
before the current one; a version never promoted only with `force`."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from recsvc.core.artifacts import (
    current_version,
    list_versions,
    open_version,
    publish,
    remove_stale_tmp,
    write_atomically,
)
from recsvc.core.errors import ModelError

STATE_FILE = "lifecycle.json"


class State(StrEnum):
    CANDIDATE = "candidate"
    PROMOTED = "promoted"
    REJECTED = "rejected"
    FAILED = "failed"
    UNKNOWN = "unknown"


# Versions that may be served again: promoted ones, and those older than states.
SERVABLE = (State.PROMOTED, State.UNKNOWN)


def record(model_root: str | Path, version: str) -> dict[str, Any]:
    """The version's state record: `state` and its `history` (oldest first)."""
    path = Path(model_root) / version / STATE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"state": State.UNKNOWN.value, "history": []}
    except (OSError, ValueError) as exc:
        raise ModelError(f"model {version}: unreadable {STATE_FILE} ({exc})") from None
    if not isinstance(data, dict) or data.get("state") not in set(State):
        raise ModelError(f"model {version}: {STATE_FILE} holds no known state")
    return data


def state_of(model_root: str | Path, version: str) -> State:
    return State(record(model_root, version)["state"])


def mark(model_root: str | Path, version: str, state: State, **detail: Any) -> None:
    """Record that `version` is now in `state` (with `detail`: the gate's figures, an
    error), atomically."""
    root = Path(model_root)
    data = record(root, version)
    entry = {"state": state.value, "at": datetime.now(UTC).isoformat(timespec="seconds"),
             **detail}
    data = {"state": state.value, "history": [*data["history"], entry]}
    write_atomically(root / version / STATE_FILE,
                     (json.dumps(data, indent=2, default=str) + "\n").encode("utf-8"))


def promote(model_root: str | Path, version: str, **detail: Any) -> None:
    """Make `version` current and record the promotion."""
    publish(model_root, version)
    mark(model_root, version, State.PROMOTED, **detail)


def promoted_at(model_root: str | Path, version: str) -> str | None:
    """When `version` was last promoted (None: never, as far as is recorded)."""
    times = [h["at"] for h in record(model_root, version)["history"]
             if h["state"] == State.PROMOTED]
    return times[-1] if times else None


def servable_versions(model_root: str | Path) -> list[str]:
    """Versions that may be served again (promoted, or older than states), oldest first."""
    return [v for v in list_versions(model_root) if state_of(model_root, v) in SERVABLE]


def fail_orphans(model_root: str | Path, why: str) -> list[str]:
    """Mark every candidate left by a run that is no longer running as failed (call it
    holding the nightly job's lock, so that no run of ours is writing one)."""
    root = Path(model_root)
    current = current_version(root)
    orphans = [v for v in list_versions(root)
               if v != current and state_of(root, v) is State.CANDIDATE]
    for version in orphans:
        mark(root, version, State.FAILED, error=why)
    return orphans


def prune(model_root: str | Path, keep: int) -> list[str]:
    """Delete rejected and failed versions, and promoted ones beyond the newest `keep`
    (never `current`, never a candidate in progress), and stale temporary directories.
    Returns the removed version ids."""
    root = Path(model_root)
    current = current_version(root)
    versions = list_versions(root)
    states = {v: state_of(root, v) for v in versions}
    servable = [v for v in versions if states[v] in SERVABLE]  # as servable_versions
    kept = {current, *servable[len(servable) - max(keep, 1):]}
    doomed = [v for v in versions if v not in kept and states[v] is not State.CANDIDATE]
    for version in doomed:
        shutil.rmtree(root / version, ignore_errors=True)
    remove_stale_tmp(root)
    return doomed


def retire(model_root: str | Path, versions: list[str]) -> list[str]:
    """Delete these versions (never `current`): they may not be served or rolled back
    to again, as when they hold rows of shoppers who asked to be forgotten."""
    root = Path(model_root)
    current = current_version(root)
    doomed = [v for v in versions if v != current and (root / v).is_dir()]
    for version in doomed:
        shutil.rmtree(root / version, ignore_errors=True)
    return doomed


def rollback(model_root: str | Path, version: str | None = None, force: bool = False) -> str:
    """Make `version` (default: the newest promoted version older than the current)
    current, after checking it loads; returns it. A version never promoted (a rejected
    or failed candidate) only with `force`. `recsvc rollback` and `POST /admin/rollback`
    use this."""
    root = Path(model_root)
    versions = list_versions(root)
    current = current_version(root)
    if version is None:
        older = [v for v in versions if (current is None or v < current)
                 and state_of(root, v) in SERVABLE]
        if not older:
            raise ModelError(f"no promoted version older than {current} under {root}")
        version = older[-1]
    if version not in versions:
        raise ModelError(f"no model version {version!r} under {root}")
    state = state_of(root, version)
    if state not in SERVABLE and not force:
        raise ModelError(f"model {version} was never promoted (it is {state.value}); "
                         "roll back to it only with --force")
    open_version(root, version)  # refuse a corrupt version before pointing at it
    promote(root, version, rollback_from=current, forced=state not in SERVABLE)
    return version


def describe_versions(model_root: str | Path) -> list[dict[str, Any]]:
    """Every version, oldest first: whether it is current, its state (and when it was
    last promoted, or why it was rejected or failed), its size and validation figures."""
    current = current_version(model_root)
    rows = []
    for version in list_versions(model_root):
        row: dict[str, Any] = {"version": version, "current": version == current,
                               "created_at": None, "users": None, "items": None,
                               "validation": {}}
        try:
            history = record(model_root, version)
            row.update(state=history["state"], promoted_at=promoted_at(model_root, version),
                       last_change=(history["history"] or [{}])[-1])
            m = open_version(model_root, version, verify=False).manifest
        except ModelError as exc:  # listed, not fatal: this is how an operator finds it
            row.setdefault("state", "unreadable")
            rows.append({**row, "error": str(exc)})
            continue
        rows.append({**row, "created_at": m.created_at, "users": m.counts.users,
                     "items": m.counts.items, "validation": m.metrics.validation})
    return rows
