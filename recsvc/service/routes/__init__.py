"""One router per area: the storefront's, the catalog's (operators), shoppers' data
(operators) and operations."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import Response


def json_response(payload: Any, status_code: int = 200) -> Response:
    """A JSON answer serialized by orjson (FastAPI's own encoder costs several times as
    much on a list of items)."""
    return Response(orjson.dumps(payload), status_code=status_code,
                    media_type="application/json")
