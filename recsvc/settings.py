"""Every `RECSVC_*` setting: defaults here, then environment variables (a `.env` file
too), then command-line options. The service, `warm-cache` and the nightly job read this
one class, so they agree on cache keys, TTLs, list sizes and where state lives.
Documented in docs/service.md."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from recsvc.core.policy.frequency import FrequencyPolicy
from recsvc.core.policy.privacy import IdHasher
from recsvc.stores.cache import MEMORY, REDIS_SCHEMES, scheme
from recsvc.stores.paths import StatePaths
from recsvc.stores.privacy import PrivacyLedger, load_key


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RECSVC_", env_file=".env", extra="ignore",
                                      protected_namespaces=("settings_",))

    model_root: Path = Path("models")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=1)
    api_key: str | None = Field(None, description="required by admin and catalog endpoints")
    # Who may call the storefront's endpoints (docs/security.md). None of them set: anyone
    # who reaches the service, which must then not be reachable from the internet.
    client_key: SecretStr | None = Field(None, min_length=16,
                                         description="the storefront backend's key")
    shopper_token_secret: SecretStr | None = Field(
        None, min_length=16, description="signs shopper tokens, for calls from browsers")
    cors_origins: list[str] = Field(default_factory=list,
                                    description="origins whose pages may call the service")
    auth_failures_per_minute: int = Field(
        10, ge=1, description="wrong credentials from one address before 429 (per worker)")
    rate_limit_per_s: float | None = Field(
        None, gt=0, description="requests a second per browser or anonymous client")
    rate_limit_burst: int = Field(20, ge=1)
    max_header_bytes: int = Field(16 * 1024, ge=1024, description="larger headers: 431")
    open_reasons: Literal["full", "no_purchases", "none"] = Field(
        "full", description="reasons shown to calls without credentials")

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
    rules_reload_s: float = Field(0.25, gt=0, le=60,
                                  description="how often each worker looks at the rules file")
    events_rotate_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    events_fsync: Literal["always", "os"] = Field(
        "always", description="always: fsync before answering; os: the OS flushes")
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    max_events_per_request: int = Field(1000, ge=1)
    new_arrival_days: float = Field(30.0, ge=0)
    # What a shopper was shown lately (docs/service.md, "Frequency caps, pages and rotation").
    frequency_cap: int | None = Field(
        None, ge=1, description="impressions of an item without a click before it is hidden")
    frequency_cooldown_s: float = Field(86_400.0, gt=0, description="how long it is hidden")
    frequency_window_s: float = Field(
        7 * 86_400.0, gt=0, description="a longer gap between impressions restarts the count")
    page_memory_s: float = Field(
        1800.0, ge=0, description="pages of one visit never repeat items (0: plain slices)")
    rotation: float = Field(0.0, ge=0, le=0.5,
                            description="share of a list's places that rotate each period")
    rotation_period_s: float = Field(3600.0, gt=0)
    candidates_above: int = Field(
        200_000, ge=0, description="catalogs larger rank each shopper's candidates only "
        "(an approximate nearest-neighbour index; docs/scale.md)")
    impressions: bool = Field(True, description="log every list served (STATE_DIR/impressions)")
    impressions_queue: int = Field(100_000, ge=1,
                                   description="impressions waiting to be written; beyond: "
                                               "dropped and counted, never a slower answer")
    # Privacy (docs/privacy.md): the key of the keyed hash that stands for shoppers' ids
    # in cache keys and logs (when set) and in the privacy ledger (always; without it,
    # a random key kept in STATE_DIR/id_hash.key).
    id_hash_key: SecretStr | None = Field(None, min_length=16)
    retention_days: float = Field(
        400.0, gt=0, description="events files and run summaries older are deleted by "
                                 "the nightly job")
    forget_grace_days: float = Field(
        7.0, ge=0, description="days a forgotten shopper's rows may stay in old versions")
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    log_format: Literal["text", "json"] = Field("text", description="json: one object a line")

    @field_validator("redis_url")
    @classmethod
    def _cache_url(cls, url: str | None) -> str | None:
        if url is not None and url != MEMORY and scheme(url) not in REDIS_SCHEMES:
            raise ValueError(f"unknown scheme in {url!r} (redis://, rediss://, unix://, "
                             f"redis-cluster:// or {MEMORY})")
        return url

    @property
    def paths(self) -> StatePaths:
        return StatePaths.of(self.model_root, self.state_dir)

    @property
    def frequency(self) -> FrequencyPolicy:
        return FrequencyPolicy(self.frequency_cap, self.frequency_cooldown_s,
                               self.frequency_window_s, self.page_memory_s)

    def privacy_ledger(self) -> PrivacyLedger:
        paths = self.paths
        key = self.id_hash_key.get_secret_value() if self.id_hash_key else None
        return PrivacyLedger.open(paths.privacy_ledger,
                                  lambda: load_key(key, paths.id_hash_key))

    def key_subject(self) -> Callable[[str], str]:
        """What stands for a shopper in cache keys: their id, or its keyed hash when
        `id_hash_key` is set (Redis then holds no id)."""
        if self.id_hash_key is None:
            return str
        return IdHasher(self.id_hash_key.get_secret_value().encode()).digest
