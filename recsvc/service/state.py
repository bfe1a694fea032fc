"""The running service's state: the current engine (swapped whole on a new model), the
cache, the catalog overrides and the events log, and the watcher that notices a new
`current` model by itself."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import os
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import numpy as np

from recsvc.core.artifacts import current_version, write_atomically
from recsvc.core.engine import Engine, load_engine
from recsvc.core.errors import RecsvcError
from recsvc.core.lifecycle import rollback, servable_versions
from recsvc.core.policy.rules import RulesFile, load_rules, parse_rules, resolve
from recsvc.core.ranking import candidates
from recsvc.service import telemetry
from recsvc.service.auth import Gatekeeper
from recsvc.service.errors import Conflict, NoModel
from recsvc.settings import Settings
from recsvc.stores.cache import Cache, open_cache
from recsvc.stores.catalog import CatalogOverrides
from recsvc.stores.events_log import EventLog
from recsvc.stores.impressions import ImpressionLog
from recsvc.stores.runs import epoch, latest_runs

log = logging.getLogger("recsvc.state")
RUNS_EVERY_S = 10.0  # how often the nightly job's summaries are read for the metrics


def _stamp(path: Path | None) -> tuple[int, int] | None:
    """When the file last changed, and its size (None: no file)."""
    try:
        st = os.stat(path) if path is not None else None
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size) if st else None


class ServiceState:
    def __init__(self, settings: Settings, cache: Cache | None = None) -> None:
        self.settings = settings
        candidates.ABOVE = settings.candidates_above
        self.rules_file: RulesFile = load_rules(settings.rules_file)
        self._rules_stamp = self._rules_seen = _stamp(settings.rules_file)
        self._runs_checked = float("-inf")
        paths = settings.paths
        self.overrides = CatalogOverrides(paths.catalog_overrides)
        self.events = EventLog(paths.events_dir, settings.events_rotate_bytes,
                               settings.events_fsync)
        self.cache: Cache = cache or open_cache(
            settings.redis_url, timeout_ms=settings.redis_timeout_ms,
            breaker_failures=settings.breaker_failures,
            breaker_reset_s=settings.breaker_reset_s,
            local_entries=settings.local_cache_entries)
        self.impressions = (ImpressionLog(paths.impressions_dir, settings.events_rotate_bytes,
                                          settings.impressions_queue)
                            if settings.impressions else None)
        self.privacy = settings.privacy_ledger()
        self.gate = Gatekeeper(settings)
        self.subject = settings.key_subject()
        self.frequency = settings.frequency
        self._engine: Engine | None = None  # what is served: `_trained` + items created
        self._trained: Engine | None = None  # the loaded version as trained
        self._added: list[dict] = []  # the created items `_engine` holds
        self.load_error: str | None = None
        # Why the service is not serving `current` (None: it is, or there is none).
        self.problem: str | None = None
        self._swap = asyncio.Lock()
        self._background: set[asyncio.Task] = set()

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
        Requests already running finish on the engine they started with. Raises
        RecsvcError (and counts the failure) when it does not load; the engine being
        served stays."""
        root = Path(self.settings.model_root)
        async with self._swap:
            try:
                engine = await asyncio.to_thread(load_engine, root, version, self.rules_file)
                served = await asyncio.to_thread(self.overrides.with_added, engine,
                                                 self.rules_file, time.time())
            except RecsvcError:
                telemetry.LOAD_FAILURES.inc()
                raise
            self._trained, self._engine = engine, served
            candidates.path_for(served.model)  # a large catalog's index: built aside
            self._added = self.overrides.added_rows(engine.model)
            self.load_error = None
            # The model's Python objects live as long as it serves: keep them out of the
            # collector's way, so its full passes stay short under load.
            gc.collect()
            gc.freeze()
            manifest = engine.model.manifest
            telemetry.set_model(engine.version,
                                epoch(manifest.created_at) if manifest is not None else None)
            if engine.version == current_version(root):
                self._set_problem(None)
            log.info("serving model %s", engine.version)
            return engine.version

    def _set_problem(self, problem: str | None) -> None:
        self.problem = problem
        telemetry.MODEL_DEGRADED.set(0 if problem is None else 1)

    async def start(self) -> None:
        """Serve `current`; if it does not load, the newest promoted version that does
        (logged at ERROR, and reported by /readyz and the metrics until `current` loads)."""
        root = Path(self.settings.model_root)
        try:
            await self.load()
            return
        except RecsvcError as exc:
            self.load_error = str(exc)
            failed, error = current_version(root), exc
        log.error("current model %s could not be loaded: %s", failed, error)
        for version in reversed(servable_versions(root)):
            if version == failed:
                continue
            try:
                await self.load(version)
            except RecsvcError as exc:
                log.error("model %s could not be loaded either: %s", version, exc)
                continue
            self._set_problem(f"current model {failed} could not be loaded ({error}); "
                              f"serving {version}, the newest promoted version that loads")
            log.error("serving %s instead", version)
            return
        if failed is not None:
            self._set_problem(f"current model {failed} could not be loaded ({error}), "
                              "nor any promoted version")

    async def rollback(self, version: str | None, force: bool = False) -> str:
        """Make `version` (default: the promoted one before the current) current, and
        serve it; a never-promoted version only with `force`."""
        version = await asyncio.to_thread(rollback, Path(self.settings.model_root), version,
                                          force)
        return await self.load(version)

    async def follow(self) -> None:
        """Follow the model (`follow_current`) and the rules file (every
        `rules_reload_s`) until cancelled."""
        await asyncio.gather(self.follow_current(), self._follow_rules_file())

    async def _follow_rules_file(self) -> None:
        while True:
            await asyncio.sleep(self.settings.rules_reload_s)
            await self.follow_rules()
            await self.follow_catalog()

    async def follow_catalog(self) -> bool:
        """Serve the items created since the training (`PUT /items/{id}`, by any worker)
        once they change: the trained model with them added, swapped in whole. True
        when the served catalog changed."""
        trained = self._trained
        if trained is None:
            return False
        await asyncio.to_thread(self.overrides.refresh)
        rows = self.overrides.added_rows(trained.model)
        if rows == self._added:
            return False
        async with self._swap:
            if self._trained is not trained:
                return False  # a new model came meanwhile: it has them
            try:
                served = await asyncio.to_thread(self.overrides.with_added, trained,
                                                 self.rules_file, time.time())
            except Exception:  # noqa: BLE001 - the catalog served stays; said loudly
                log.exception("the created items could not be added; serving the "
                              "catalog as it was")
                self._added = rows  # not again until they change
                return False
            self._engine, self._added = served, rows
        log.info("serving %d items created since the training", len(rows))
        return True

    async def follow_current(self) -> None:
        """Follow `current` (every `reload_interval_s`), whoever moved it: the trainer,
        the nightly job, `recsvc rollback`, or another worker's admin request. A version
        that does not load is logged and reported; the service keeps serving the one it
        has, and tries again when `current` moves."""
        root = Path(self.settings.model_root)
        failed: str | None = None
        while True:
            await asyncio.sleep(self.settings.reload_interval_s)
            telemetry.set_cache(self.cache.status())
            await self.follow_privacy()
            if time.monotonic() >= self._runs_checked + RUNS_EVERY_S:
                self._runs_checked = time.monotonic()
                telemetry.set_nightly(await asyncio.to_thread(latest_runs, root))
            target = current_version(root)
            serving = self._engine.version if self._engine else None
            if target is not None and target == serving and self.problem is not None:
                self._set_problem(None)  # current moved back to what is served
            if target is None or target in (serving, failed):
                continue
            try:
                await self.load(target)
                failed = None
            except RecsvcError as exc:
                failed = target
                log.error("current model %s not loaded, still serving %s: %s",
                          target, serving, exc)
                self._set_problem(f"current model {target} could not be loaded ({exc}); "
                                  f"still serving {serving}")

    async def follow_rules(self) -> bool:
        """Apply the rules file again when it changed (variants started, stopped or
        re-weighted; boosts, burials, exclusions): the engine is swapped with the new
        rules resolved against its model. A file that does not load is logged and the
        rules served are kept. True when new rules were applied."""
        path = self.settings.rules_file
        stamp = _stamp(path)
        if path is None or stamp == self._rules_stamp:
            return False
        if stamp != self._rules_seen:
            # Changed since the last look: wait until it stays the same for one interval,
            # so that a file caught half-written by an editor is never applied.
            self._rules_seen = stamp
            return False
        self._rules_stamp = stamp
        try:
            rules = await asyncio.to_thread(load_rules, path)
            await self.apply_rules(rules)
        except RecsvcError as exc:
            log.error("rules not reloaded, still applying the previous ones: %s", exc)
            return False
        log.info("rules reloaded from %s", path)
        return True

    async def apply_rules(self, rules: RulesFile) -> None:
        """Serve with these rules from the next request on: resolved against the model
        served (InputError, and nothing changed, when they do not fit it)."""
        async with self._swap:
            engine, trained = self._engine, self._trained
            if engine is not None and trained is not None:
                resolved = await asyncio.to_thread(resolve, rules, engine.model)
                self._engine = dataclasses.replace(engine, rules=resolved)
                self._trained = (self._engine if trained is engine else dataclasses.replace(
                    trained, rules=await asyncio.to_thread(resolve, rules, trained.model)))
            self.rules_file = rules

    async def replace_rules(self, text: str) -> RulesFile:
        """An operator's new rules (TOML): checked against the model served, written to
        the rules file atomically (every worker applies it within `rules_reload_s`)
        and applied here at once."""
        path = self.settings.rules_file
        if path is None:
            raise Conflict("no rules file is configured (RECSVC_RULES_FILE)")
        rules = parse_rules(text, "rules")
        engine = self._engine
        if engine is not None:
            await asyncio.to_thread(resolve, rules, engine.model)  # fits the model?
        await asyncio.to_thread(write_atomically, Path(path), text.encode("utf-8"))
        await self.apply_rules(rules)
        self._rules_stamp = self._rules_seen = _stamp(path)
        return rules

    async def follow_privacy(self) -> int:
        """Read what the privacy ledger gained (from any worker or the forget command)
        and drop what this process still holds of newly forgotten shoppers; returns how
        many entries were dropped."""
        newly = set(await asyncio.to_thread(self.privacy.refresh))
        if not newly:
            return 0
        hashed = self.settings.id_hash_key is not None  # then keys carry the same hash
        digest = self.privacy.digest
        return await self.cache.purge(self.settings.cache_namespace,
                                      newly.__contains__ if hashed
                                      else lambda user: digest(user) in newly)

    def trained_item(self, item_id: str) -> bool:
        """Whether the model served was trained on this item."""
        trained = self._trained
        return trained is not None and trained.model.item_index([item_id])[0] >= 0

    def personal(self, user_id: str) -> bool:
        """Whether this shopper's behaviour may shape what they see and be recorded:
        known by id, not forgotten, consenting to personalization (the users file's
        consent, through the model, and changes made through the API)."""
        if not user_id or not self.privacy.allows(user_id, "personalization"):
            return False
        engine = self._engine
        return engine is None or not engine.model.is_opted_out(user_id)

    def impression(self, rid: str, user: str | None, variant: str, surface: str,
                   items: np.ndarray, explored: int = -1) -> None:
        """Log a list served (`stores.impressions`), off the request path; `explored`:
        the item number exploration showed (-1: none)."""
        log = self.impressions
        if log is not None:
            engine = self.engine
            if not log.record(rid, user, variant, engine.version, surface, items,
                              engine.model.item_ids, explored):
                telemetry.IMPRESSIONS_DROPPED.inc()

    def background(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run `work` after the answer; finished (not dropped) before the service stops."""
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self.impressions is not None:
            await asyncio.to_thread(self.impressions.close)
        await self.cache.close()
