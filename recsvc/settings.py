"""Service settings: defaults here, then `RECSVC_*` environment variables (a `.env` file
too), then `recsvc serve` options. Documented in docs/service.md."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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

    redis_url: str | None = None
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

    reload_interval_s: float = Field(5.0, ge=0, description="0: only /admin/reload")
    events_rotate_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    max_events_per_request: int = Field(1000, ge=1)
    new_arrival_days: float = Field(30.0, ge=0)

    def resolved_state_dir(self) -> Path:
        if self.state_dir is not None:
            return self.state_dir
        return self.model_root.resolve().parent / "state"
