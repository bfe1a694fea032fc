"""What operators ask the running service: the model it serves, whether it is ready,
and to load or roll back a model now."""

from __future__ import annotations

from typing import Any

from recsvc.core.errors import ModelError
from recsvc.core.ranking import candidates
from recsvc.service import telemetry
from recsvc.service.errors import Conflict, NotFound
from recsvc.service.state import ServiceState


def model_info(state: ServiceState) -> dict[str, Any]:
    engine = state.engine
    manifest = engine.model.manifest
    assert manifest is not None  # a served model was loaded from disk
    return {"version": engine.version, "trained_at": manifest.created_at,
            "metrics": manifest.metrics.model_dump(), "counts": manifest.counts.model_dump(),
            "blend": manifest.blend.model_dump(), "algorithms": sorted(manifest.algorithms),
            "variants": engine.rules.variant_names}


def readiness(state: ServiceState) -> tuple[int, dict[str, Any]]:
    """(status code, body): 503 until a model is loaded; then 200, `ready`, or
    `degraded` with the reasons (Redis unreachable; `current` not the version served)."""
    cache = state.cache.status()
    telemetry.set_cache(cache)
    if not state.has_engine:
        return 503, {"status": "no model", "detail": state.load_error, "cache": cache,
                     "degraded": [state.problem] if state.problem else []}
    reasons = [r for r in (state.problem, "cache: Redis unreachable, lists are computed"
                           if cache == "degraded" else None) if r]
    return 200, {"status": "degraded" if reasons else "ready",
                 "model_version": state.engine.version, "cache": cache, "degraded": reasons,
                 "ranking": candidates.status(state.engine.model)}


async def reload(state: ServiceState) -> str:
    try:
        return await state.load()
    except ModelError as exc:
        raise Conflict(f"reload failed, still serving the previous model: {exc}") from None


async def rollback(state: ServiceState, version: str | None, force: bool = False) -> str:
    try:
        return await state.rollback(version, force)
    except ModelError as exc:
        raise NotFound(str(exc)) from None
