"""Every `RECSVC_*` setting: defaults here, then environment variables (a `.env` file
too), then command-line options. The service, `warm-cache` and the nightly job read this
one class, so they agree on cache keys, TTLs, list sizes and where state lives.
Documented in docs/service.md."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from recsvc.stores.cache import MEMORY, REDIS_SCHEMES, scheme
from recsvc.stores.paths import StatePaths


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RECSVC_", env_file=".env", extra="ignore",
                                      protected_namespaces=("settings_",))

    model_root: Path = Path("models")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=1)
    api_key: str | None = Field(None, description="required by admin and catalog endpoints")

    # Where the service keeps what it learns between trainings: the events log it
    # appends to and the operators' catalog overrides. Default: MODEL_ROOT/../state.
    state_dir: Path | None = None
    rules_file: Path | None = Field(None, description="TOML: business rules and A/B variants")

    redis_url: str | None = Field(None, description="redis://...; default: in-process cache")
    cache_namespace: str = "recsvc"
    cache_ttl_s: int = Field(86_400, ge=1)
    cache_list_size: int = Field(100, ge=1, le=1000, description="items kept per cached list")
    local_cache_entries: int = Field(100_000, ge=1)
    redis_timeout_ms: float = Field(50.0, gt=0)
    breaker_failures: int = Field(3, ge=1, description="consecutive Redis errors to open")
    breaker_reset_s: float = Field(5.0, gt=0, description="how long an open breaker waits")
    fresh_events_ttl_s: int = Field(7 * 86_400, ge=1,
                                    description="how long events wait for the next training")
    fresh_events_per_user: int = Field(200, ge=1)
    event_ids_ttl_s: int = Field(86_400, ge=1,
                                 description="how long an event_id guards against a retry")

    reload_interval_s: float = Field(0.5, gt=0, le=60,
                                     description="how often each worker follows `current`")
    events_rotate_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    events_fsync: Literal["always", "os"] = Field(
        "always", description="always: fsync before answering; os: the OS flushes")
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    max_events_per_request: int = Field(1000, ge=1)
    new_arrival_days: float = Field(30.0, ge=0)
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    log_format: Literal["text", "json"] = Field("text", description="json: one object a line")

    @field_validator("redis_url")
    @classmethod
    def _cache_url(cls, url: str | None) -> str | None:
        if url is not None and url != MEMORY and scheme(url) not in REDIS_SCHEMES:
            raise ValueError(f"unknown scheme in {url!r} (redis://, rediss://, unix:// "
                             f"or {MEMORY})")
        return url

    @property
    def paths(self) -> StatePaths:
        return StatePaths.of(self.model_root, self.state_dir)
