"""Health, readiness, metrics, the model served, and loading or rolling back a model
(the last two with the operator key)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from recsvc.service import telemetry
from recsvc.service.deps import AdminDep, StateDep
from recsvc.service.routes import answers, json_response
from recsvc.service.schemas import Health, ModelInfo, ModelVersion, Readiness
from recsvc.service.usecases import operations

router = APIRouter(tags=["operations"])


@router.get("/model", response_model=ModelInfo, responses=answers(503))
async def model(state: StateDep) -> Response:
    return json_response(operations.model_info(state))


@router.get("/healthz", response_model=Health)
async def healthz() -> Response:
    return json_response({"status": "alive"})


@router.get("/readyz", response_model=Readiness,
            responses={503: {"model": Readiness, "description": "no model loaded yet"}})
async def readyz(state: StateDep) -> Response:
    status, body = operations.readiness(state)
    return json_response(body, status)


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                             "description": "Prometheus text format"}})
async def metrics() -> Response:
    body, content_type = telemetry.render()
    return Response(body, media_type=content_type)


@router.post("/admin/reload", dependencies=[AdminDep], response_model=ModelVersion,
             responses=answers(401, 409, 429))
async def reload(state: StateDep) -> Response:
    return json_response({"model_version": await operations.reload(state)})


@router.post("/admin/rollback", dependencies=[AdminDep], response_model=ModelVersion,
             responses=answers(401, 404, 422, 429))
async def rollback(
    state: StateDep, version: Annotated[str | None, Query(max_length=128)] = None,
    force: bool = False,
) -> Response:
    """Make `version` (default: the promoted version before the current) current and
    serve it; a version never promoted only with `force=true`."""
    return json_response({"model_version": await operations.rollback(state, version, force)})
