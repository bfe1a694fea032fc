"""Request and response shapes of the HTTP API, as the OpenAPI page shows them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator


class RecommendParams(BaseModel):
    """The query of `GET /recommend`."""

    model_config = ConfigDict(extra="ignore")
    user_id: str | None = Field(None, min_length=1, max_length=256,
                                description="the shopper; absent: an anonymous session")
    n: int = Field(10, ge=1, le=100)
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

    @model_validator(mode="after")
    def _price_range(self) -> RecommendParams:
        if (self.min_price is not None and self.max_price is not None
                and self.min_price > self.max_price):
            raise ValueError("min_price is above max_price")
        return self


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
    items: list[Item]


class PopularResponse(BaseModel):
    model_version: str
    popular: list[Item]
    trending: list[Item]


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: str = Field(min_length=1, max_length=256)
    item_id: str = Field(min_length=1, max_length=256)
    event_type: str = Field(min_length=1, max_length=64, examples=["purchase"])
    timestamp: datetime | float | None = Field(None, description="default: now")
    value: float | None = Field(None, description="a rating, or a quantity")
    channel: str | None = Field(None, max_length=64)
    recommendation_id: str | None = Field(None, max_length=64)
    event_id: str | None = Field(None, min_length=1, max_length=128,
                                 description="the client's id for this event: a retry "
                                             "with the same id is recorded once")


class ItemUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    in_stock: bool | None = None
    delisted: bool | None = None
    price: float | None = Field(None, ge=0)


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
                                    "statement, consent assumed")
    forgotten: bool
