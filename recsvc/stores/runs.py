"""The nightly job's run summaries (`MODEL_ROOT/runs/<time>.json`, written by
`training.retrain`): one definition of where they are, and a reader for the service's
metrics and dashboard."""

from __future__ import annotations

import contextlib
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

RUNS_DIR = "runs"
# Exit codes of a run that did its job: promoted (0), or kept the current model because
# the candidate did not pass the gate (3). Anything else is a failure to look at.
HEALTHY_EXITS = (0, 3)


def latest_runs(model_root: Path, limit: int = 20) -> list[dict[str, Any]]:
    """The newest run summaries first (unreadable ones skipped)."""
    directory = Path(model_root) / RUNS_DIR
    if not directory.is_dir():
        return []
    out = []
    for path in sorted(directory.glob("*.json"), reverse=True)[:limit]:
        with contextlib.suppress(OSError, orjson.JSONDecodeError):
            summary = orjson.loads(path.read_bytes())
            if isinstance(summary, dict):
                out.append(summary)
    return out


def epoch(iso: str | None) -> float | None:
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return None
