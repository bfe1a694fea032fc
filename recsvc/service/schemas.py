"""Request and response shapes of the HTTP API, as the OpenAPI page shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_LIST_ITEMS = 100  # ids in `exclude` or `recent_items`


class RecommendParams(BaseModel):
    """The query of `GET /recommend`."""

    model_config = ConfigDict(extra="ignore")
    user_id: str | None = Field(None, min_length=1, max_length=256,
                                description="the shopper; absent: an anonymous session")
    n: int = Field(10, ge=1, le=100)
    page: int | None = Field(None, ge=1, le=10,
                             description="the page of n items (from 1); the pages of one "
                                         "visit never repeat an item")
    exclude_seen: bool | None = Field(None, description="default: as learned in training")
    category: str | None = Field(None, max_length=512, description="this category and below")
    exclude: list[str] = Field(default_factory=list,
                               description="item ids, repeated or comma-separated")
    min_price: float | None = Field(None, ge=0)
    max_price: float | None = Field(None, ge=0)
    recent_items: list[str] = Field(default_factory=list,
                                    description="items of this session, most recent last")
    segment: str | None = Field(None, max_length=128, description="a stranger's segment")
    region: str | None = Field(None, max_length=128, description="a stranger's region")
    placement: str | None = Field(None, min_length=1, max_length=64,
                                  pattern=r"^[A-Za-z0-9_.:-]+$",
                                  description="where the list is shown (home, cart, email): "
                                              "reported as the surface; default recommend")

    @field_validator("exclude", "recent_items")
    @classmethod
    def _item_list(cls, values: list[str]) -> list[str]:
        """Repeated, or comma-separated: at most MAX_LIST_ITEMS ids of 256 characters."""
        ids = [v.strip() for value in values for v in value.split(",") if v.strip()]
        if len(ids) > MAX_LIST_ITEMS:
            raise ValueError(f"at most {MAX_LIST_ITEMS} item ids")
        if any(len(i) > 256 for i in ids):
            raise ValueError("an item id longer than 256 characters")
        return ids



class Reason(BaseModel):
    model_config = ConfigDict(extra="allow")
    code: str = Field(examples=["because_you_bought"])


class Item(BaseModel):
    item_id: str
    score: float
    reasons: list[Reason]


class RecommendResponse(BaseModel):
    user_id: str | None
    model_version: str
    variant: str
    recommendation_id: str
    items: list[Item]


class SimilarResponse(BaseModel):
    item_id: str
    model_version: str
    recommendation_id: str
    items: list[Item]


class PopularResponse(BaseModel):
    model_version: str
    recommendation_id: str
    popular: list[Item]
    trending: list[Item]


class EventIn(BaseModel):
    # An item, or (for a search) a query: said in the description too.
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "anyOf": [{"required": ["item_id"]}, {"required": ["query"]}]})
    user_id: str = Field(min_length=1, max_length=256)
    item_id: str | None = Field(None, min_length=1, max_length=256,
                                description="required, except for a search")
    event_type: str = Field(min_length=1, max_length=64, examples=["purchase"])
    query: str | None = Field(None, min_length=1, max_length=256,
                              description="a search's query: matched to items by the "
                                          "content model (the query itself is not kept)")
    timestamp: datetime | float | None = Field(None, description="default: now")
    value: float | None = Field(None, description="a rating, or a quantity")
    price: float | None = Field(None, ge=0, le=1e9,
                                description="unit price of a purchase, in the shop's currency")
    channel: str | None = Field(None, max_length=64)
    recommendation_id: str | None = Field(
        None, max_length=64, description="the list the shopper acted on (every list served "
                                         "carries one): attributes the event to it")
    event_id: str | None = Field(None, min_length=1, max_length=128,
                                 description="the client's id for this event: a retry "
                                             "with the same id is recorded once")


class ItemUpdate(BaseModel):
    """An item's live state; for an item created since the training, its catalog
    attributes too (it is recommendable at once)."""

    model_config = ConfigDict(extra="forbid")
    in_stock: bool | None = None
    delisted: bool | None = None
    price: float | None = Field(None, ge=0, le=1e9)
    stock: int | None = Field(None, ge=0, le=10**9,
                              description="units in stock (0: out of stock)")
    title: str | None = Field(None, max_length=1000)
    description: str | None = Field(None, max_length=20_000)
    category: str | None = Field(None, max_length=512, examples=["Home > Kitchen"])
    brand: str | None = Field(None, max_length=256)
    tags: list[str] | None = Field(None, max_length=100)


class ConsentIn(BaseModel):
    """Consent per purpose; a purpose left out keeps its current value."""

    model_config = ConfigDict(extra="forbid")
    personalization: bool | None = Field(None, description="lists shaped by their behaviour")
    email: bool | None = Field(None, description="use in email campaigns")
    sms: bool | None = Field(None, description="use in SMS campaigns")


class ConsentOut(BaseModel):
    user_id: str
    consent: dict[str, bool | None] = Field(description="per purpose; null: not known here")
    source: str = Field(description="api: last set through this API; users_file: from the "
                                    "users file the model was trained on; default: no "
                                    "statement (personalization assumed; campaigns "
                                    "unknown here)")
    forgotten: bool


class ErrorMessage(BaseModel):
    """The body of every error but 422."""

    detail: str


class Problem(BaseModel):
    model_config = ConfigDict(extra="allow")
    loc: list[str | int] = Field(description="where: body or query, then the field's path")
    msg: str
    type: str


class ValidationProblems(BaseModel):
    """The body of a 422: every problem found, each naming its field."""

    detail: list[Problem]


class EventsAccepted(BaseModel):
    accepted: int = Field(description="events recorded")
    duplicates: int = Field(description="retries of events already recorded")
    ignored: int = Field(description="events of forgotten or non-consenting shoppers: "
                                     "nothing of them kept")


class ItemState(BaseModel):
    model_config = ConfigDict(extra="allow")
    item_id: str


class ForgetReceipt(BaseModel):
    """What `DELETE /users/{user_id}` removed where, and what follows (docs/privacy.md)."""

    model_config = ConfigDict(extra="allow")
    forgotten_at: str
    users: int
    recorded: dict[str, Any]
    removed_now: dict[str, Any]
    from_now_on: str
    pending: dict[str, Any]


class ModelInfo(BaseModel):
    model_config = ConfigDict(extra="allow")
    version: str
    trained_at: str
    variants: list[str]


class Readiness(BaseModel):
    model_config = ConfigDict(extra="allow")
    status: str = Field(description="ready, degraded or no model")
    cache: str


class ModelVersion(BaseModel):
    model_version: str


class Health(BaseModel):
    status: str


class RulesApplied(BaseModel):
    """What `PUT /admin/rules` applied."""

    applied: bool
    pins: int
    boosts: int
    burials: int
    exclusions: int
    max_per_category: int | None
    variants: list[str]
