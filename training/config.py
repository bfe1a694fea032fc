"""Trainer settings: defaults here, overridable by a TOML file and then by the command line.

Every section and key is documented in docs/configuration.md."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from recsvc.core.algorithms import REGISTRY, algorithm
from recsvc.core.errors import InputError, first_problem
from recsvc.core.policy.events import EventWeights


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InputConfig(Section):
    interactions: Path | None = None
    items: Path | None = None
    users: Path | None = None
    window_days: float | None = Field(None, gt=0, description="train on the last N days only")


class CleaningConfig(Section):
    """Robots are judged by how they browse (`training.robots.robots`), never by how much
    a customer has done over the years."""

    browse_events: list[str] = Field(default_factory=lambda: ["view", "click"])
    max_views_per_minute: int = Field(60, ge=1, description="in any 60 s; above: a robot")
    max_views_per_day: int = Field(1000, ge=1, description="in one day; above: a robot")

    @model_validator(mode="before")
    @classmethod
    def _volume_rule_retired(cls, data: Any) -> Any:
        # The first rule (events per active day) judged volume, and dropped heavy
        # customers; configs and models that still name it are read without it.
        if isinstance(data, dict) and "max_events_per_day" in data:
            data = {k: v for k, v in data.items() if k != "max_events_per_day"}
        return data
    max_invalid_share: float = Field(0.05, ge=0, le=1,
                                     description="bad rows a file may have; more: exit 2")


class SignalConfig(Section):
    half_life_days: float = Field(90.0, gt=0)


# The first config layout named algorithms' settings flat; they are read still (and from
# models that saved such a config), each under its algorithm's section.
LEGACY_MODEL_KEYS = {
    "cf_algorithm": ("cf", "algorithm"), "factors": ("cf", "factors"),
    "regularization": ("cf", "regularization"), "alpha": ("cf", "alpha"),
    "iterations": ("cf", "iterations"), "learning_rate": ("cf", "learning_rate"),
    "random_state": ("cf", "random_state"),
    "item_knn_measure": ("item_knn", "measure"),
    "item_knn_neighbours": ("item_knn", "neighbours"),
    "ease_regularization": ("ease", "regularization"), "ease_max_items": ("ease", "max_items"),
    "trending_window_days": ("trending", "window_days"),
    "trending_half_life_days": ("trending", "half_life_days"),
    "popularity_attributes": ("popularity", "attributes"),
}


class ModelConfig(Section):
    """`[model]`: which algorithms to fit (`algorithms`, default: every registered one)
    and, in a `[model.<name>]` table, each one's settings (validated by the algorithm's
    own `Params`)."""

    model_config = ConfigDict(extra="allow")
    algorithms: list[str] | None = None

    @model_validator(mode="before")
    @classmethod
    def _legacy_layout(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
        for name in [k for k, v in data.items() if isinstance(v, bool)]:  # `ease = false`
            if not data.pop(name):
                enabled = data.get("algorithms") or list(REGISTRY)
                data["algorithms"] = [a for a in enabled if a != name]
        for key, (name, param) in LEGACY_MODEL_KEYS.items():
            if key in data:
                data.setdefault(name, {})[param] = data.pop(key)
        return data

    @model_validator(mode="after")
    def _known_algorithms(self) -> ModelConfig:
        for name in self.algorithms or []:
            algorithm(name)  # a ValueError naming the known ones
        extra = self.__pydantic_extra__ or {}
        for name, params in extra.items():
            if not isinstance(params, dict):
                raise ValueError(f"{name}: expected a table of {name}'s settings")
            extra[name] = algorithm(name).parse_params(params, name).model_dump()
        return self

    def enabled(self) -> list[str]:
        """The algorithms to fit, in the registry's order."""
        wanted = set(self.algorithms) if self.algorithms is not None else set(REGISTRY)
        return [name for name in REGISTRY if name in wanted]

    def params(self, name: str) -> dict[str, Any]:
        """The settings given for `name` (its defaults fill the rest)."""
        return dict((self.__pydantic_extra__ or {}).get(name, {}))

    def set(self, name: str, **params: Any) -> None:
        """Change some of `name`'s settings (validated)."""
        merged = {**self.params(name), **params}
        extra = self.__pydantic_extra__
        assert extra is not None
        extra[name] = algorithm(name).parse_params(merged, name).model_dump()


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
                                  description="held-out folds (time: windows back from the end)")
    split: Literal["time", "leave-last", "random", "auto"] = Field(
        "time", description="the protocol folds follow (training.folds)")
    target_events: list[str] = Field(default_factory=lambda: ["purchase"])
    metric: Literal["ndcg", "precision", "recall", "map"] = "ndcg"
    k: int = Field(10, ge=1)
    min_validation_users: int = Field(20, ge=1)
    max_validation_users: int = Field(2000, ge=1)
    # The defaults count as if validated on this many shoppers: tuned blend weights move
    # from them by n / (n + this) of the way, n the validation shoppers (few: little).
    shrink_users: float = Field(200.0, ge=0)
    seed: int = 0


class OutputConfig(Section):
    model_root: Path | None = None
    keep_versions: int = Field(5, ge=1)


class SparkConfig(Section):
    """The Spark engine (`recsvc train --engine spark`; docs/scale.md)."""

    master: str = Field("local[*]", description="where Spark runs (--spark-master)")
    buckets: int = Field(0, ge=0, description="groups of shoppers cleaned and weighed "
                         "one at a time by an executor; 0: four per core")
    tune_events: int = Field(2_000_000, ge=1000, description="events of a sample of whole "
                             "shoppers the driver tunes on")
    driver_memory: str = "4g"
    conf: dict[str, str] = Field(default_factory=dict, description="more spark.* settings")


class TrainConfig(Section):
    input: InputConfig = Field(default_factory=InputConfig)
    events: EventWeights = Field(default_factory=EventWeights)
    cleaning: CleaningConfig = Field(default_factory=CleaningConfig)
    signals: SignalConfig = Field(default_factory=SignalConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    blend: BlendConfig = Field(default_factory=BlendConfig)
    tuning: TuningConfig = Field(default_factory=TuningConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    spark: SparkConfig = Field(default_factory=SparkConfig)


def apply_tuning_options(config: TrainConfig, no_tune: bool, budget_s: float | None,
                         split: str | None = None) -> None:
    """`--no-tune`, `--tune-budget` and `--tune-split`, as every training command reads
    them."""
    if no_tune:
        config.tuning.enabled = False
    if split is not None:
        config.tuning.split = split  # type checked by argparse's choices
    if budget_s is not None:
        if budget_s <= 0:
            raise InputError("--tune-budget must be positive")
        config.tuning.time_budget_s = budget_s


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
        raise InputError(f"config file {path}: {first_problem(exc)}") from None
    # Relative paths in a config file are relative to the file, as a reader expects.
    base = Path(path).parent
    for section, key in (("input", "interactions"), ("input", "items"), ("input", "users"),
                         ("output", "model_root")):
        value = getattr(getattr(config, section), key)
        if value is not None and not value.is_absolute():
            setattr(getattr(config, section), key, base / value)
    return config
