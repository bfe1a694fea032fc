"""The HTTP service: `create_app` builds it from settings (dependencies injected, one
router per area, errors answered in one shape); the work behind each route is a plain
function in `recsvc.service.usecases`.

Run with `recsvc serve`, or `uvicorn --factory recsvc.service.app:create_app` (settings
from `RECSVC_*` environment variables)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from threadpoolctl import threadpool_limits

from recsvc import __version__
from recsvc.service import docs_pages, errors, logs, openapi, telemetry
from recsvc.service.fastpath import RecommendFastPath
from recsvc.service.routes import (
    catalog,
    dashboard,
    merchandising,
    operations,
    shoppers,
    storefront,
)
from recsvc.service.state import ServiceState
from recsvc.settings import Settings


def create_app(settings: Settings | None = None, state: ServiceState | None = None,
               configure_logs: bool = False) -> FastAPI:
    """The service. `configure_logs` (as `recsvc serve`'s workers do): set up logging
    from the settings in this process."""
    settings = settings or Settings()
    if configure_logs:
        logs.configure(settings.log_level, settings.log_format)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One BLAS thread: requests already run side by side (threads, workers), and
        # BLAS's idle threads spin on the cores that answer HTTP (measured on the
        # compute path: p99 22.4 -> 18.1 ms).
        blas = threadpool_limits(limits=1, user_api="blas")
        service = state or ServiceState(settings)
        app.state.service = service
        if not service.has_engine:
            await service.start()
        if service.impressions is not None:
            service.impressions.start()
        watcher = asyncio.create_task(service.follow())
        try:
            yield
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            await service.close()
            blas.restore_original_limits()

    app = FastAPI(title="recsvc", version=__version__, lifespan=lifespan,
                  description="Personalized product recommendations for online shops.",
                  docs_url=None, redoc_url=None)
    docs_pages.install(app)
    openapi.install(app)
    app.add_middleware(RecommendFastPath)
    app.add_middleware(telemetry.TelemetryMiddleware, max_body_bytes=settings.max_body_bytes,
                       max_header_bytes=settings.max_header_bytes)
    if settings.cors_origins:  # outermost: preflights answered, every answer marked
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=["GET", "POST"], max_age=600,
                           allow_headers=["Content-Type", "X-Shopper-Token", "X-Client-Key"])
    errors.install(app)
    for router in (storefront.router, catalog.router, shoppers.router, merchandising.router,
                   operations.router):
        app.include_router(router)
    dashboard.install(app)
    return app


def serving_app() -> FastAPI:
    """What `recsvc serve` runs in each worker: settings from the environment, and this
    process's logging set up from them."""
    return create_app(configure_logs=True)
