"""Merchandisers' rules on the running service: read them, and replace them so that
they act on the next request of every worker (`docs/rules.md`)."""

from __future__ import annotations

from pathlib import Path

from recsvc.core.errors import InputError
from recsvc.service.errors import Conflict, Invalid
from recsvc.service.state import ServiceState


def rules_text(state: ServiceState) -> str:
    """The rules file as it stands ("" when there is none yet)."""
    path = state.settings.rules_file
    if path is None:
        raise Conflict("no rules file is configured (RECSVC_RULES_FILE)")
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""


async def replace_rules(state: ServiceState, text: str) -> dict[str, object]:
    """Check `text` (TOML) against the model served, write it as the rules file and
    apply it; Invalid naming the problem, and nothing changed, when it does not hold."""
    try:
        rules = await state.replace_rules(text)
    except InputError as exc:
        raise Invalid(str(exc), ("body",)) from None
    return {"applied": True, "pins": len(rules.pin.items), "boosts": len(rules.boost),
            "burials": len(rules.bury),
            "exclusions": len(rules.exclude.items) + len(rules.exclude.categories)
            + len(rules.exclude.tags),
            "max_per_category": rules.diversity.max_per_category,
            "variants": sorted(rules.variants)}
