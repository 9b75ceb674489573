"""Contracts of the needs insight (SPEC M1.2): what the API returns and the white paper
renders. Shares are fractions (0.37 = 37 %), sentiment is a mean P(positive) in [0, 1]."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel


class AspectNeed(BaseModel):
    """One aspect in a quarter: how many texts mention it, how they feel about it, and how
    that compares with the previous quarter."""

    aspect: str
    name: str
    texts: int
    share: float
    sentiment: float | None
    negative_share: float | None
    previous_texts: int
    previous_share: float | None
    change_pp: float | None
    change_z: float | None
    previous_sentiment: float | None


class IngredientMinded(BaseModel):
    """成分党: authors with at least one text mentioning ingredients, among all authors."""

    authors: int
    ingredient_authors: int
    share: float | None
    previous_authors: int
    previous_ingredient_authors: int
    previous_share: float | None


class TopicSeries(BaseModel):
    """A topic's texts and share per week."""

    topic: str
    name: str
    kind: Literal["aspect", "keyword"]
    counts: list[int]
    shares: list[float]


class WeeklyShares(BaseModel):
    """Weeks (Monday, local) of the quarter, texts per week and each topic's share."""

    weeks: list[date]
    totals: list[int]
    series: list[TopicSeries]


class RisingTopicOut(BaseModel):
    """A topic whose share in the recent weeks is significantly above the baseline's."""

    topic: str
    name: str
    kind: Literal["aspect", "keyword"]
    count: int
    share: float
    baseline_count: int
    baseline_share: float
    lift: float
    z: float
    p_value: float
    q_value: float


class RisingWindow(BaseModel):
    """The recent weeks tested against everything before them (this and last quarter)."""

    recent_from: date
    recent_to: date
    recent_texts: int
    baseline_from: date
    baseline_texts: int
    min_count: int
    min_share: float
    max_q: float


class SentimentCell(BaseModel):
    """Mean sentiment of the texts of a top-level category that mention an aspect."""

    category: str
    aspect: str
    texts: int
    sentiment: float
    negative_share: float


class CategorySentiment(BaseModel):
    """Sentiment by top-level category × aspect (categories by texts, most first)."""

    categories: list[str]
    aspects: list[str]
    cells: list[SentimentCell]


class Quote(BaseModel):
    """A short clause that speaks for an aspect, with where it came from."""

    aspect: str
    polarity: Literal["positive", "negative"]
    text: str
    score: float
    source: Literal["review", "post"]
    rating: int | None
    sku: str | None
    product: str | None
    brand: str | None
    day: date


class NeedsCounts(BaseModel):
    """What the report was computed from."""

    reviews: int
    posts: int
    texts: int
    authors: int
    texts_with_aspect: int
    mentions: int
    mean_rating: float | None
    previous_reviews: int
    previous_posts: int


class NeedsReport(BaseModel):
    """The needs insight of one quarter (the quarterly Needs White Paper's data)."""

    quarter: str
    previous_quarter: str
    start: date
    end: date
    timezone: str
    brands: list[str] | None
    counts: NeedsCounts
    top_needs: list[AspectNeed]
    ingredient_minded: IngredientMinded
    weekly: WeeklyShares
    rising: list[RisingTopicOut]
    rising_window: RisingWindow | None
    category_sentiment: CategorySentiment
    quotes: list[Quote]
    method: list[str]
