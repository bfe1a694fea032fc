"""Trainer settings: defaults here, overridable by a TOML file and then by the command line.

Every section and key is documented in docs/configuration.md."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recsvc.errors import InputError


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InputConfig(Section):
    interactions: Path | None = None
    items: Path | None = None
    users: Path | None = None
    window_days: float | None = Field(None, gt=0, description="train on the last N days only")


class EventConfig(Section):
    """Weight of one event of each type. A rating weighs `rating * (value - rating_neutral)`;
    purchases and refunds weigh `1 + ln(quantity)` times their weight when `value` holds a
    quantity. A refund is negative: it cancels the purchase it refunds."""

    weights: dict[str, float] = Field(default_factory=lambda: {
        "view": 1.0, "click": 2.0, "add_to_cart": 4.0, "purchase": 10.0,
        "rating": 2.0, "review": 3.0, "refund": -10.0,
    })
    aliases: dict[str, str] = Field(default_factory=lambda: {
        "cart": "add_to_cart", "addtocart": "add_to_cart", "add-to-cart": "add_to_cart",
        "transaction": "purchase", "order": "purchase", "buy": "purchase",
        "return": "refund", "cancellation": "refund",
    })
    rating_neutral: float = 2.5
    quantity_scaling: Literal["log", "none"] = "log"


class CleaningConfig(Section):
    max_events_per_day: float = Field(500.0, gt=0, description="above: a bot-like user")


class SignalConfig(Section):
    half_life_days: float = Field(90.0, gt=0)


class ModelConfig(Section):
    cf_algorithm: Literal["als", "bpr"] = "als"
    factors: int = Field(64, ge=1)
    regularization: float = Field(0.05, ge=0)
    alpha: float = Field(2.0, gt=0)
    iterations: int = Field(15, ge=1)
    learning_rate: float = Field(0.01, gt=0)
    item_knn_measure: Literal["cosine", "bm25"] = "cosine"
    item_knn_neighbours: int = Field(100, ge=1)
    content: bool = True
    ease: bool = True
    ease_regularization: float = Field(16.0, gt=0, description="times the mean item count")
    ease_max_items: int = Field(10_000, ge=0, description="dense items x items above: off")
    trending_window_days: float = Field(14.0, gt=0)
    trending_half_life_days: float = Field(3.0, gt=0)
    popularity_attributes: list[str] = Field(default_factory=lambda: ["segment", "region", "tier"])
    random_state: int = 42


class BlendConfig(Section):
    """Used as is with --no-tune; otherwise tuning starts from them. Unset keys of
    `weights` and an unset `exclude_seen` are set from the data (repeat-buying rate)."""

    weights: dict[str, float] = Field(default_factory=dict)
    exclude_seen: bool | None = None


class TuningConfig(Section):
    enabled: bool = True
    time_budget_s: float = Field(300.0, gt=0)
    max_trials: int = Field(30, ge=1)
    validation_fraction: float = Field(0.1, gt=0, lt=0.5,
                                       description="each fold's share of the time span")
    validation_folds: int = Field(3, ge=1, le=6,
                                  description="consecutive held-out windows, back from the end")
    target_events: list[str] = Field(default_factory=lambda: ["purchase"])
    metric: Literal["ndcg", "precision", "recall", "map"] = "ndcg"
    k: int = Field(10, ge=1)
    min_validation_users: int = Field(20, ge=1)
    max_validation_users: int = Field(2000, ge=1)
    seed: int = 0


class OutputConfig(Section):
    model_root: Path | None = None
    keep_versions: int = Field(5, ge=1)


class TrainConfig(Section):
    input: InputConfig = Field(default_factory=InputConfig)
    events: EventConfig = Field(default_factory=EventConfig)
    cleaning: CleaningConfig = Field(default_factory=CleaningConfig)
    signals: SignalConfig = Field(default_factory=SignalConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    blend: BlendConfig = Field(default_factory=BlendConfig)
    tuning: TuningConfig = Field(default_factory=TuningConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)


def apply_tuning_options(config: TrainConfig, no_tune: bool, budget_s: float | None) -> None:
    """`--no-tune` and `--tune-budget`, as every training command reads them."""
    if no_tune:
        config.tuning.enabled = False
    if budget_s is not None:
        if budget_s <= 0:
            raise InputError("--tune-budget must be positive")
        config.tuning.time_budget_s = budget_s


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}"


def load_config(path: Path | None) -> TrainConfig:
    """Read a TOML file into a validated config; None gives the defaults."""
    if path is None:
        return TrainConfig()
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"config file {path}: not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"config file {path}: unreadable ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"config file {path}: not valid TOML ({exc})") from None
    try:
        config = TrainConfig.model_validate(raw)
    except ValidationError as exc:
        raise InputError(f"config file {path}: {_first_error(exc)}") from None
    # Relative paths in a config file are relative to the file, as a reader expects.
    base = Path(path).parent
    for section, key in (("input", "interactions"), ("input", "items"), ("input", "users"),
                         ("output", "model_root")):
        value = getattr(getattr(config, section), key)
        if value is not None and not value.is_absolute():
            setattr(getattr(config, section), key, base / value)
    return config
