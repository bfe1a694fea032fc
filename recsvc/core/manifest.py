"""The typed contract between the trainer and everything that reads a model: the
manifest written with each version (`manifest.json`).

The trainer fills a `ModelCard` (how the model was made); the version writer adds what
describes the files (`Manifest`). The service, the jobs and the nightly job read it
through `Manifest.parse`, so a missing or unknown field is refused with its name rather
than read as a default. Models written by the first schema are upgraded on read
(`upgrade_v1`): every field they hold maps onto this one."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recsvc.core.errors import ModelError, first_problem
from recsvc.core.policy.events import EventChecks, EventWeights

FORMAT_NAME = "recsvc-model"
SCHEMA_VERSION = 2


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FileEntry(_Strict):
    bytes: int = Field(ge=0)
    dtype: str
    shape: list[int]
    sha256: str


class Counts(_Strict):
    users: int = Field(ge=0)
    items: int = Field(ge=0)
    interactions: int = Field(ge=0)


class AlgorithmEntry(_Strict):
    """One fitted algorithm: its arrays are `model.<name>.*`; `params` are its settings
    (validated by the algorithm itself when it loads)."""

    params: dict[str, Any]


class Blend(_Strict):
    weights: dict[str, float]
    exclude_seen: bool


class TrainingInfo(_Strict):
    reference_time: int = Field(description="the end of the training data, epoch seconds")
    half_life_days: float = Field(gt=0)
    repeat_purchase_rate: float = Field(ge=0, le=1)
    # The trainer's complete settings after tuning: `recsvc train --no-tune` with them
    # fits this model again (the nightly gate does). Validated by the trainer's own type.
    config: dict[str, Any]


class TuningSummary(_Strict):
    skipped: str | None
    seconds: float
    budget_s: float
    trials: list[dict[str, Any]]
    best: dict[str, Any]
    validation_metrics: dict[str, float]
    # For people reading the report (nothing is decided from them): the validation
    # protocol and why, and which candidate was chosen (tuned, defaults, popularity).
    protocol: dict[str, Any] = Field(default_factory=dict)
    choice: dict[str, Any] = Field(default_factory=dict)


class Metrics(_Strict):
    validation: dict[str, float]


class SavedEventWeights(EventWeights):
    """The event weighting a model was trained with: every field required (a default
    here would weight fresh events by guesswork)."""

    weights: dict[str, float]
    aliases: dict[str, str]
    rating_neutral: float
    quantity_scaling: Literal["log", "none"]
    checks: EventChecks


class ModelCard(_Strict):
    """What the trainer says about a model: how it was made, and what serving must know
    to treat fresh events as training did."""

    recsvc_version: str
    events: SavedEventWeights
    training: TrainingInfo
    tuning: TuningSummary
    metrics: Metrics
    inputs: dict[str, Any]
    data_quality: dict[str, Any]


class Layout(_Strict):
    """What a model's arrays hold, written beside them (`RecommenderModel.save`)."""

    counts: Counts
    algorithms: dict[str, AlgorithmEntry]
    blend: Blend
    user_attributes: list[str]


class Manifest(ModelCard, Layout):
    format: Literal["recsvc-model"]
    schema_version: Literal[2]
    version: str
    created_at: str
    files: dict[str, FileEntry]

    @classmethod
    def parse(cls, raw: Any, where: str) -> Manifest:
        """Validate a manifest read from disk; `where` names the version in errors."""
        if not isinstance(raw, dict) or raw.get("format") != FORMAT_NAME:
            raise ModelError(f"model {where}: not a recsvc model (foreign manifest)")
        schema = raw.get("schema_version")
        if schema == 1:
            raw = upgrade_v1(raw, where)
        elif schema != SCHEMA_VERSION:
            raise ModelError(f"model {where}: schema version {schema!r} is not supported by "
                             f"this recsvc (reads 1 and {SCHEMA_VERSION}); retrain or upgrade")
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise ModelError(f"model {where}: manifest field {first_problem(exc)}") from None

    def dump(self) -> dict[str, Any]:
        return self.model_dump()


# Schema 1 named algorithms by kind; these are the names the blend always used for them.
_V1_NAMES = {"factors": "cf", "item_knn": "item_knn", "ease": "ease", "content": "content",
             "popularity": "popularity", "trending": "trending", "history": "history"}
# Schema 1 kept tuned settings apart from the config; the config now holds them (flat
# keys of the first config layout, which the trainer still reads).
_V1_TUNED_MODEL_KEYS = ("factors", "regularization", "alpha", "iterations", "learning_rate")


def upgrade_v1(raw: dict[str, Any], where: str) -> dict[str, Any]:
    """A schema-1 manifest as schema 2. Every field maps; a model too old to say how its
    events were weighted is refused (serving it would weight fresh events by guesswork)."""
    def need(*path: str) -> Any:
        node: Any = raw
        for part in path:
            if not isinstance(node, dict) or part not in node:
                raise ModelError(f"model {where}: schema-1 manifest lacks "
                                 f"{'.'.join(path)}; retrain it")
            node = node[part]
        return node

    training = need("training")
    config = dict(need("training", "config"))
    events = dict(need("training", "config", "events"))
    events["quantity_scaling"] = training.get("quantity_scaling",
                                              events.get("quantity_scaling", "log"))
    events["checks"] = EventChecks().model_dump()  # schema 1 had none: today's defaults
    best = (raw.get("tuning") or {}).get("best") or {}
    model = dict(config.get("model", {}))
    for key in _V1_TUNED_MODEL_KEYS:
        if key in (best.get("cf") or {}):
            model[key] = best["cf"][key]
    if best.get("ease_regularization"):
        model["ease_regularization"] = best["ease_regularization"]
    config["model"] = model
    config["signals"] = {**config.get("signals", {}),
                         "half_life_days": training.get("half_life_days")}
    config["events"] = events
    config["blend"] = {"weights": dict(need("blend", "weights")),
                       "exclude_seen": need("blend", "exclude_seen")}
    algorithms = {}
    for name, spec in need("components").items():
        if _V1_NAMES.get(spec.get("kind")) != name:
            raise ModelError(f"model {where}: schema-1 algorithm {name!r} of kind "
                             f"{spec.get('kind')!r} is not one this recsvc knows")
        algorithms[name] = {"params": spec.get("params", {})}
    tuning = raw.get("tuning") or {}
    return {
        "format": FORMAT_NAME,
        "schema_version": SCHEMA_VERSION,
        "version": need("version"),
        "created_at": need("created_at"),
        "recsvc_version": raw.get("recsvc_version", "0.1.0"),
        "counts": need("counts"),
        "algorithms": algorithms,
        "blend": need("blend"),
        "user_attributes": raw.get("user_attributes", []),
        "events": events,
        "training": {"reference_time": need("training", "reference_time"),
                     "half_life_days": need("training", "half_life_days"),
                     "repeat_purchase_rate": training.get("repeat_purchase_rate", 0.0),
                     "config": config},
        "tuning": {"skipped": tuning.get("skipped"), "seconds": tuning.get("seconds", 0.0),
                   "budget_s": tuning.get("budget_s", 0.0), "trials": tuning.get("trials", []),
                   "best": best, "validation_metrics": tuning.get("validation_metrics", {})},
        "metrics": {"validation": (raw.get("metrics") or {}).get("validation", {})},
        "inputs": raw.get("inputs", {}),
        "data_quality": raw.get("data_quality", {}),
        "files": need("files"),
    }
