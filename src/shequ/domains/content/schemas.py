"""Content contracts: the only content shapes other domains and entrypoints see.

``*In`` models are what the API and the importers accept (references by external id / SKU);
``*Row`` models are import rows, which must carry their own timestamp; ``*Out`` models are
what comes back, with the caller-visible references filled in.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

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

