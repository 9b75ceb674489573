"""Content contracts: the only content shapes other domains and entrypoints see.

``*In`` models are what the API and the importers accept (references by external id / SKU);
``*Row`` models are import rows, which must carry their own timestamp; ``*Out`` models are
what comes back, with the caller-visible references filled in.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from shequ.analytics.dwell import DwellGroup

Key = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")]
MAX_BODY = 20_000
MAX_COMMENT = 2_000
MAX_REVIEW = 5_000


class CreatorLevel(StrEnum):
    KOC = "KOC"
    KOL = "KOL"
    EXPERT = "expert"


class ContentType(StrEnum):
    """The content matrix (M2.2); a post without a type is unclassified."""

    KNOWLEDGE = "knowledge"  # 知识科普
    SCENARIO = "scenario"  # 场景种草
    REVIEW = "review"  # 产品测评
    STORY = "story"  # 用户故事


class PostStatus(StrEnum):
    PUBLISHED = "published"
    HELD = "held"
    BLOCKED = "blocked"


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class HubIn(_Input):
    external_id: Key
    name: Annotated[str, Field(min_length=1, max_length=128)]
    description: Annotated[str, Field(max_length=4000)] | None = None
    brand_external_id: Key | None = None


class HubOut(HubIn):
    id: int
    brand_id: int | None


class CreatorIn(_Input):
    external_id: Key
    customer_external_id: Key
    display_name: Annotated[str, Field(min_length=1, max_length=128)]
    level: CreatorLevel = CreatorLevel.KOC
    hub_external_id: Key | None = None
    joined_at: AwareDatetime | None = Field(default=None, description="Defaults to now")


class CreatorRow(CreatorIn):
    joined_at: AwareDatetime


class CreatorOut(CreatorIn):
    id: int
    customer_external_id: str | None  # type: ignore[assignment]
    joined_at: AwareDatetime


class PostIn(_Input):
    external_id: Key
    author_customer_external_id: Key
    hub_external_id: Key | None = None
    content_type: ContentType | None = None
    title: Annotated[str, Field(min_length=1, max_length=200)]
    body: Annotated[str, Field(min_length=1, max_length=MAX_BODY)]
    sku: Key | None = None
    created_at: AwareDatetime | None = Field(default=None, description="Defaults to now")


class PostRow(PostIn):
    created_at: AwareDatetime


class PostOut(PostIn):
    id: int
    author_customer_external_id: str | None  # type: ignore[assignment]
    brand_id: int | None
    created_at: AwareDatetime
    status: PostStatus
    comment_count: int
    sentiment: float | None = Field(default=None, description="-1 (negative) to 1 (positive)")
    originality: float | None = Field(default=None, description="0 (a copy) to 1 (original)")
    quality: float | None = Field(default=None, description="0-100, None until refreshed")


class CommentIn(_Input):
    """A comment posted under a post (the post comes from the URL)."""

    external_id: Key
    customer_external_id: Key
    text: Annotated[str, Field(min_length=1, max_length=MAX_COMMENT)]
    created_at: AwareDatetime | None = Field(default=None, description="Defaults to now")


class CommentRow(CommentIn):
    post_external_id: Key
    created_at: AwareDatetime


class CommentOut(CommentIn):
    id: int
    post_external_id: str
    customer_external_id: str | None  # type: ignore[assignment]
    created_at: AwareDatetime
    status: PostStatus = PostStatus.PUBLISHED


class PostDetail(PostOut):
    comments: list[CommentOut]


class ReviewIn(_Input):
    external_id: Key
    customer_external_id: Key
    order_external_id: Key | None = None
    sku: Key
    rating: Annotated[int, Field(ge=1, le=5)]
    text: Annotated[str, Field(max_length=MAX_REVIEW)] = ""
    created_at: AwareDatetime | None = Field(default=None, description="Defaults to now")

    @field_validator("text", mode="before")
    @classmethod
    def _no_text_is_empty(cls, value: Any) -> Any:
        # A rating without words is a valid review; CSV exports leave the cell empty.
        return "" if value is None else value


class ReviewRow(ReviewIn):
    created_at: AwareDatetime


class ReviewOut(ReviewIn):
    id: int
    customer_external_id: str | None  # type: ignore[assignment]
    order_external_id: str | None
    brand_id: int
    created_at: AwareDatetime
    status: PostStatus = PostStatus.PUBLISHED


class PostPage(BaseModel):
    """One page of posts, newest first."""

    total: int
    items: list[PostOut]


class ReviewPage(BaseModel):
    """One page of reviews, newest first."""

    total: int
    items: list[ReviewOut]


class CreatorPage(BaseModel):
    """One page of creators, by external id."""

    total: int
    items: list[CreatorOut]



# --- scoring (docs/content-quality.md) --------------------------------------------------


class SentimentBand(StrEnum):
    """Sentiment filter of the content library (thresholds in ``scoring``)."""

    POSITIVE = "pos"
    NEGATIVE = "neg"
    NEUTRAL = "neutral"


class PostSort(StrEnum):
    NEW = "new"  # newest first
    SCORE = "score"  # highest quality first, unscored last


class NearestSource(BaseModel):
    """An earlier post this one nearly duplicates, with the estimated Jaccard similarity."""

    post: str
    similarity: float


class ScoreWeights(_Input):
    """Weights of the quality components; they are divided by their sum."""

    originality: Annotated[float, Field(ge=0, le=100)] = 0.3
    reach: Annotated[float, Field(ge=0, le=100)] = 0.4
    conversion: Annotated[float, Field(ge=0, le=100)] = 0.3

    @model_validator(mode="after")
    def _some_weight(self) -> ScoreWeights:
        if self.originality + self.reach + self.conversion <= 0:
            raise ValueError("at least one weight must be positive")
        return self

    def normalised(self) -> dict[str, float]:
        """``component -> weight / sum of weights``."""
        total = self.originality + self.reach + self.conversion
        return {"originality": self.originality / total, "reach": self.reach / total,
                "conversion": self.conversion / total}


class ScoreRefreshIn(_Input):
    """How to recompute every post's scores."""

    weights: ScoreWeights = Field(default_factory=ScoreWeights)
    attribution_days: Annotated[int, Field(ge=1, le=90)] = 7
    live_days_cap: Annotated[int, Field(ge=1, le=365)] = 30


class ScoreComponent(BaseModel):
    """One component of the quality score: its raw inputs, its value in [0, 1], its share
    of the weights and its contribution (100 * weight * normalised) to the score."""

    inputs: dict[str, float | int | str | None]
    normalised: float
    weight: float
    contribution: float


class PostScoreOut(BaseModel):
    """A post's explained score; ``quality`` and ``components`` are None until refreshed."""

    post_external_id: str
    content_type: ContentType | None
    originality: float
    sources: list[NearestSource]
    views: int
    unique_viewers: int
    likes: int
    shares: int
    comments: int
    attributed_orders: int
    attributed_gmv_fen: int
    reach: float | None
    conversion: float | None
    quality: float | None
    components: dict[str, ScoreComponent] | None
    refreshed_at: AwareDatetime | None


class ScoreRefreshReport(BaseModel):
    """What a refresh did."""

    posts: int
    with_views: int
    attributed_orders: int
    attributed_gmv_fen: int
    near_duplicates: int
    weights: dict[str, float]
    attribution_days: int
    refreshed_at: AwareDatetime
    seconds: float


class CreatorPostStats(BaseModel):
    """One author's posts created in a period, with their scores' sums (creator fund)."""

    customer_id: int
    creator_external_id: str | None
    posts: int
    mean_quality: float | None
    views: int
    orders: int
    gmv_fen: int


class DwellByType(BaseModel):
    """Dwell on post views per content type (``unclassified`` for posts without one)."""

    since: AwareDatetime
    until: AwareDatetime
    groups: list[DwellGroup]
