"""The running service's state: the current engine (swapped whole on a new model), the
cache, the catalog overrides and the events log, and the watcher that notices a new
`current` model by itself."""

from __future__ import annotations

import asyncio
import gc
import logging
from pathlib import Path

import numpy as np

from recsvc.core.artifacts import current_version
from recsvc.core.engine import Engine, load_engine
from recsvc.core.errors import RecsvcError
from recsvc.core.lifecycle import rollback
from recsvc.core.policy.rules import RulesFile, load_rules
from recsvc.service import telemetry
from recsvc.service.errors import NoModel
from recsvc.settings import Settings
from recsvc.stores.cache import Cache, open_cache
from recsvc.stores.catalog import CatalogOverrides
from recsvc.stores.events_log import EventLog

log = logging.getLogger("recsvc.state")


class ServiceState:
    def __init__(self, settings: Settings, cache: Cache | None = None) -> None:
        self.settings = settings
        self.rules_file: RulesFile = load_rules(settings.rules_file)
        paths = settings.paths
        self.overrides = CatalogOverrides(paths.catalog_overrides)
        self.events = EventLog(paths.events_dir, settings.events_rotate_bytes)
        self.cache: Cache = cache or open_cache(
            settings.redis_url, timeout_ms=settings.redis_timeout_ms,
            breaker_failures=settings.breaker_failures,
            breaker_reset_s=settings.breaker_reset_s,
            local_entries=settings.local_cache_entries)
        self._engine: Engine | None = None
        self.load_error: str | None = None
        self._swap = asyncio.Lock()

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise NoModel(self.load_error or f"no model under {self.settings.model_root}")
        return self._engine

    @property
    def has_engine(self) -> bool:
        return self._engine is not None

    def live(self) -> tuple[np.ndarray, np.ndarray]:
        """The live catalog over the current model's items: (in stock and listed, price),
        with the operators' overrides as of now."""
        self.overrides.refresh()
        return self.overrides.masks(self.engine.model)

    async def load(self, version: str | None = None) -> str:
        """Load `version` (default: current) off the event loop, then swap it in.
        Requests already running finish on the engine they started with."""
        async with self._swap:
            engine = await asyncio.to_thread(load_engine, Path(self.settings.model_root),
                                             version, self.rules_file)
            self._engine = engine
            self.load_error = None
            # The model's Python objects live as long as it serves: keep them out of the
            # collector's way, so its full passes stay short under load.
            gc.collect()
            gc.freeze()
            telemetry.set_model(engine.version)
            log.info("serving model %s", engine.version)
            return engine.version

    async def try_load(self) -> None:
        try:
            await self.load()
        except RecsvcError as exc:
            self.load_error = str(exc)
            log.warning("no model loaded: %s", exc)

    async def rollback(self, version: str | None, force: bool = False) -> str:
        """Make `version` (default: the promoted one before the current) current, and
        serve it; a never-promoted version only with `force`."""
        version = await asyncio.to_thread(rollback, Path(self.settings.model_root), version,
                                          force)
        return await self.load(version)

    async def watch(self) -> None:
        """Poll `current`; load a new model when it moves. A broken new version is
        logged and skipped: the service keeps serving the one it has."""
        interval = self.settings.reload_interval_s
        failed: str | None = None
        while interval > 0:
            await asyncio.sleep(interval)
            target = current_version(Path(self.settings.model_root))
            serving = self._engine.version if self._engine else None
            if target is None or target in (serving, failed):
                continue
            try:
                await self.load(target)
                failed = None
            except RecsvcError as exc:
                failed = target
                log.error("new model %s not loaded, still serving %s: %s",
                          target, serving, exc)

    async def close(self) -> None:
        await self.cache.close()
