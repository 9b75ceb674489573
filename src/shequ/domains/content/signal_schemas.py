"""Content contracts of the sentiment signal other domains watch (crisis detection)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

TextKind = Literal["review", "post"]


class NegativeText(BaseModel):
    """A negative review or published post, with the product and brand it is about."""

    kind: TextKind
    external_id: str
    product_id: int | None
    brand_id: int | None
    sku: str | None
    product_name: str | None
    brand_external_id: str | None
    brand_name: str | None
    text: str
    sentiment: float | None
    rating: int | None
    created_at: datetime


class SentimentSignal(BaseModel):
    """Negative texts of ``[since, until)`` and the hourly volume of every text of each
    kind (index 0 is the UTC hour starting at ``since``, which is whole-hour aligned)."""

    since: datetime
    until: datetime
    review_hours: list[int]
    post_hours: list[int]
    negative: list[NegativeText]
