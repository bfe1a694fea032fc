"""The OpenAPI description, as FastAPI makes it, with what only the served model knows:
the event types `POST /events` accepts (its event weights and their aliases). Made again
when the model served changes."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi


def event_types(state: Any) -> list[str]:
    """The spellings the served model accepts (case and spaces aside)."""
    events = state.engine.events
    return sorted(set(events.weights) | {alias for alias, name in events.aliases.items()
                                         if name in events.weights})


def install(app: FastAPI) -> None:
    made: dict[str | None, dict[str, Any]] = {}

    def openapi() -> dict[str, Any]:
        state = getattr(app.state, "service", None)
        version = state.engine.version if state is not None and state.has_engine else None
        if version not in made:
            schema = get_openapi(title=app.title, version=app.version,
                                 description=app.description, routes=app.routes)
            if version is not None:
                field = schema["components"]["schemas"]["EventIn"]["properties"]["event_type"]
                field["enum"] = event_types(state)
            made.clear()
            made[version] = schema
        return made[version]

    app.openapi = openapi  # type: ignore[method-assign]
