"""Prometheus metrics, and the ASGI middleware that times requests and refuses
oversized bodies before any route reads them.

With several workers, each process writes its samples to `PROMETHEUS_MULTIPROC_DIR`
(`recsvc serve` sets one up) and `/metrics` merges them."""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.exceptions import HTTPException

from recsvc.service.errors import error_body
from recsvc.stores.runs import HEALTHY_EXITS, epoch

REQUEST_SECONDS = Histogram(
    "recsvc_request_seconds", "Request latency by endpoint", ["endpoint"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))
CACHE = Counter("recsvc_cache_total", "Top-N cache lookups", ["result"])
# Bound once: a label lookup per request is measurable on the cache-hit path.
CACHE_HIT, CACHE_MISS, CACHE_SKIP = (CACHE.labels(result=r) for r in ("hit", "miss", "skip"))
FALLBACKS = Counter("recsvc_fallbacks_total", "Lists served by a fallback", ["kind"])
EXPLORED = Counter("recsvc_explored_total",
                   "Lists whose last place showed a new arrival to explore")
ERRORS = Counter("recsvc_errors_total", "Responses with status >= 500", ["endpoint"])
RECOMMENDATIONS = Counter("recsvc_recommendations_total", "Lists served", ["variant"])
EVENTS = Counter("recsvc_events_total", "Events accepted", ["event_type"])
IMPRESSIONS_DROPPED = Counter("recsvc_impressions_dropped_total",
                              "Impressions not logged: the queue was full, or the disk")
EVENTS_IGNORED = Counter("recsvc_events_ignored_total",
                         "Events of forgotten or non-consenting shoppers: not recorded")
MODEL_INFO = Gauge("recsvc_model_info", "The version a worker serves (1; 0 once replaced)",
                   ["version"], multiprocess_mode="liveall")
# Labelled, so that nothing is exported until a worker with Redis sets it.
REDIS_UP = Gauge("recsvc_redis_up", "1 when Redis answers, 0 while the breaker is open",
                 ["cache"], multiprocess_mode="liveall")
MODEL_TRAINED = Gauge("recsvc_model_trained_timestamp_seconds",
                      "When the model served was trained (the oldest across workers)",
                      multiprocess_mode="min")
NIGHTLY_LAST_RUN = Gauge("recsvc_nightly_last_run_timestamp_seconds",
                         "When the nightly job last finished a run", multiprocess_mode="max")
NIGHTLY_LAST_OK = Gauge("recsvc_nightly_last_success_timestamp_seconds",
                        "When the nightly job last finished a run that did its job "
                        "(promoted, or kept the current model at the gate)",
                        multiprocess_mode="max")
NIGHTLY_FAILED = Gauge("recsvc_nightly_last_run_failed",
                       "1 when the nightly job's last run failed", multiprocess_mode="max")
MODEL_DEGRADED = Gauge("recsvc_model_degraded",
                       "1 while a worker serves another version than `current`",
                       multiprocess_mode="liveall")
LOAD_FAILURES = Counter("recsvc_model_load_failures_total", "Model versions that failed to load")

# Path prefixes of parameterized routes, so labels stay few.
TEMPLATES = (("/similar/", "/similar/{item_id}"), ("/items/", "/items/{item_id}"))
KNOWN = {"/recommend", "/popular", "/events", "/model", "/healthz", "/readyz", "/metrics",
         "/admin/reload", "/admin/rollback", "/docs", "/openapi.json"}


_TIMERS: dict[str, Any] = {}


def request_timer(label: str) -> Any:
    """The latency histogram's child for an endpoint, looked up once."""
    timer = _TIMERS.get(label)
    if timer is None:
        timer = _TIMERS[label] = REQUEST_SECONDS.labels(endpoint=label)
    return timer


_VARIANTS: dict[str, Any] = {}


def count_recommendation(variant: str) -> None:
    counter = _VARIANTS.get(variant)
    if counter is None:
        counter = _VARIANTS[variant] = RECOMMENDATIONS.labels(variant=variant)
    counter.inc()


def endpoint_label(path: str) -> str:
    if path in KNOWN:
        return path
    for prefix, template in TEMPLATES:
        if path.startswith(prefix):
            return template
    return "other"


_SERVING: list[str] = []


def set_model(version: str, trained_at: float | None = None) -> None:
    """This worker now serves `version`: 1 for it, 0 for the one it replaced (with
    several workers a cleared sample would stay in the shared files at its last value)."""
    for old in _SERVING:
        if old != version:
            MODEL_INFO.labels(version=old).set(0)
    _SERVING[:] = [version]
    MODEL_INFO.labels(version=version).set(1)
    if trained_at is not None:
        MODEL_TRAINED.set(trained_at)


def set_nightly(runs: list[dict[str, Any]]) -> None:
    """The nightly job's health from its run summaries (newest first)."""
    if not runs:
        return
    last = runs[0]
    finished = epoch(last.get("finished_at"))
    if finished is not None:
        NIGHTLY_LAST_RUN.set(finished)
    NIGHTLY_FAILED.set(0 if last.get("exit_code") in HEALTHY_EXITS else 1)
    for run in runs:
        if run.get("exit_code") in HEALTHY_EXITS and epoch(run.get("finished_at")):
            NIGHTLY_LAST_OK.set(epoch(run.get("finished_at")) or 0.0)
            break


def set_cache(status: str) -> None:
    """Record the cache's health (`Cache.status()`): Redis up or not; nothing for the
    in-process cache, which cannot be down."""
    if status != "embedded":
        REDIS_UP.labels(cache="redis").set(0 if status == "degraded" else 1)


def render() -> tuple[bytes, str]:
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class TelemetryMiddleware:
    """Pure ASGI (no per-request task or body copy): times each request, counts 5xx,
    answers 413 to a body over `max_body_bytes`, declared or streamed, and 431 to
    headers over `max_header_bytes`."""

    def __init__(self, app: Callable, max_body_bytes: int, max_header_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        label = endpoint_label(scope["path"])
        start = time.perf_counter()
        status = {"code": 500}
        limit = self.max_body_bytes
        header_bytes = 0
        for name, value in scope.get("headers", ()):
            header_bytes += len(name) + len(value)
            if name == b"content-length":
                try:
                    too_big = int(value) > limit
                except ValueError:
                    too_big = True
                if too_big:
                    await _refuse(send, 413, f"request body larger than {limit} bytes")
                    return
        if header_bytes > self.max_header_bytes:
            await _refuse(send, 431, f"request headers larger than {self.max_header_bytes} "
                                     "bytes")
            return

        received = {"bytes": 0}

        async def limited_receive() -> dict[str, Any]:
            message = await receive()
            if message["type"] == "http.request":
                received["bytes"] += len(message.get("body", b""))
                if received["bytes"] > limit:
                    raise _BodyTooLarge(limit)
            return message

        async def tracking_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            await _refuse(send, 413, f"request body larger than {limit} bytes")
            status["code"] = 413
        finally:
            request_timer(label).observe(time.perf_counter() - start)
            if status["code"] >= 500:
                ERRORS.labels(endpoint=label).inc()


class _BodyTooLarge(HTTPException):
    """Raised from inside the body's reading: an HTTPException, so that the framework,
    which turns any other error while reading a body into a 400, answers it as a 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")


async def _refuse(send: Send, status: int, message: str) -> None:
    body = error_body(message)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
