"""The documentation shows what the code does: its configuration example is a valid
config, and it names every setting of every algorithm at its default value."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from recsvc.core.algorithms import REGISTRY
from training.config import TrainConfig

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _example() -> dict:
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    block = re.search(r"```toml\n(.*?)```", text, re.S)
    assert block is not None
    return tomllib.loads(block.group(1))


def test_the_documented_configuration_is_a_valid_config() -> None:
    config = TrainConfig.model_validate(_example())
    assert config.tuning.shrink_users == TrainConfig().tuning.shrink_users


def test_every_algorithm_setting_is_documented_at_its_default() -> None:
    documented = _example()["model"]
    for name, cls in REGISTRY.items():
        # An unset default (None: learned from the data) is shown commented out.
        defaults = {k: v for k, v in cls.Params().model_dump().items() if v is not None}
        if not cls.Params.model_fields:
            continue
        assert name in documented, f"[model.{name}] is missing from docs/configuration.md"
        assert documented[name] == defaults, f"[model.{name}] differs from its defaults"


def test_the_documented_rules_file_is_valid_and_shows_the_defaults() -> None:
    from recsvc.core.policy.rules import NewArrivals, parse_rules

    text = (DOCS / "rules.md").read_text(encoding="utf-8")
    block = re.search(r"```toml\n(.*?)```", text, re.S)
    assert block is not None
    rules = parse_rules(block.group(1), "docs/rules.md")
    assert rules.pin.items and rules.boost and rules.bury and rules.variants
    assert rules.new_arrivals == NewArrivals()  # documented at its defaults
