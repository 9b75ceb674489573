"""Content tables: hubs, creators, UGC posts, comments and product reviews.

Customers and orders belong to sibling domains; they are referenced by foreign-key strings
only, so this module imports no other domain's models.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from shequ.core.db import Base, UTCDateTime


class Hub(Base):
    """A vertical community hub (e.g. 科技评测局) co-run by experts, a brand and users."""

    __tablename__ = "hubs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    brand_id: Mapped[int | None] = mapped_column(ForeignKey("brands.id"), nullable=True,
                                                 index=True)


class Creator(Base):
    """A customer who creates content: one creator profile per customer."""

    __tablename__ = "creators"
    __table_args__ = (
        CheckConstraint("level IN ('KOC', 'KOL', 'expert')", name="level_known"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), unique=True)
    display_name: Mapped[str] = mapped_column(String(128))
    level: Mapped[str] = mapped_column(String(16))
    hub_id: Mapped[int | None] = mapped_column(ForeignKey("hubs.id"), nullable=True, index=True)
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Post(Base):
    """A UGC post; ``brand_id`` is the product's brand, copied for partner scoping."""

    __tablename__ = "posts"
    __table_args__ = (
        CheckConstraint("content_type IN ('knowledge', 'scenario', 'review', 'story')",
                        name="content_type_known"),
        CheckConstraint("status IN ('published', 'held', 'blocked')", name="status_known"),
        Index("ix_posts_brand_created", "brand_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    hub_id: Mapped[int | None] = mapped_column(ForeignKey("hubs.id"), nullable=True, index=True)
    content_type: Mapped[str | None] = mapped_column(String(16), nullable=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id"), nullable=True,
                                                   index=True)
    brand_id: Mapped[int | None] = mapped_column(ForeignKey("brands.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    status: Mapped[str] = mapped_column(String(16), default="published")
    # Sentiment of title + body, P(positive) in [0, 1] (``shequ.text.sentiment``), set on
    # arrival.
    sentiment: Mapped[float | None] = mapped_column(Float, nullable=True)


class Comment(Base):
    __tablename__ = "comments"
    __table_args__ = (
        CheckConstraint("status IN ('published', 'held', 'blocked')",
                        name="comment_status_known"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    # published / held (waiting for a moderator) / blocked: set by moderation on arrival.
    status: Mapped[str] = mapped_column(String(16), default="published",
                                        server_default="published")


class Review(Base):
    """A product review; ``brand_id`` is the product's brand, copied for partner scoping.

    A product is reviewed at most once per order (reviews without an order are not limited).
    """

    __tablename__ = "reviews"
    __table_args__ = (
        CheckConstraint("rating BETWEEN 1 AND 5", name="rating_in_range"),
        CheckConstraint("status IN ('published', 'held', 'blocked')",
                        name="review_status_known"),
        UniqueConstraint("order_id", "product_id", name="uq_reviews_order_product"),
        Index("ix_reviews_brand_created", "brand_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), nullable=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brands.id"))
    rating: Mapped[int] = mapped_column(SmallInteger)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    # Sentiment of the text (``shequ.text.sentiment``), None for a rating without words.
    sentiment: Mapped[float | None] = mapped_column(Float, nullable=True)
    # published / held (waiting for a moderator) / blocked: set by moderation on arrival.
    status: Mapped[str] = mapped_column(String(16), default="published",
                                        server_default="published")


class PostSignature(Base):
    """A post's MinHash signature of its title and body (docs/content-quality.md)."""

    __tablename__ = "post_signatures"

    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"),
                                         primary_key=True)
    signature: Mapped[bytes] = mapped_column(LargeBinary)


class PostLshBand(Base):
    """One LSH band bucket of a post: posts sharing a (band, bucket) are candidates."""

    __tablename__ = "post_lsh_bands"
    # WITHOUT ROWID on SQLite: one b-tree fewer to maintain (the demo writes 256k rows).
    __table_args__ = (Index("ix_post_lsh_bands_band_bucket", "band", "bucket"),
                      {"sqlite_with_rowid": False})

    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"),
                                         primary_key=True)
    band: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    bucket: Mapped[int] = mapped_column(BigInteger)


class PostScore(Base):
    """A post's originality (set on arrival) and its reach, conversion and quality
    (set by ``scoring.refresh_scores``), with the explanation of the quality score."""

    __tablename__ = "post_scores"
    __table_args__ = (
        CheckConstraint("originality BETWEEN 0 AND 1", name="originality_in_range"),
        CheckConstraint("quality IS NULL OR quality BETWEEN 0 AND 100",
                        name="quality_in_range"),
    )

    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"),
                                         primary_key=True)
    originality: Mapped[float] = mapped_column(Float, default=1.0)
    sources: Mapped[list[dict[str, object]]] = mapped_column(JSON, default=list)
    views: Mapped[int] = mapped_column(Integer, default=0)
    unique_viewers: Mapped[int] = mapped_column(Integer, default=0)
    likes: Mapped[int] = mapped_column(Integer, default=0)
    shares: Mapped[int] = mapped_column(Integer, default=0)
    comments: Mapped[int] = mapped_column(Integer, default=0)
    attributed_orders: Mapped[int] = mapped_column(Integer, default=0)
    attributed_gmv_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    reach: Mapped[float | None] = mapped_column(Float, nullable=True)
    conversion: Mapped[float | None] = mapped_column(Float, nullable=True)
    quality: Mapped[float | None] = mapped_column(Float, nullable=True, index=True)
    explanation: Mapped[dict[str, object] | None] = mapped_column(JSON, nullable=True)
    refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class NeedsReportRow(Base):
    """A computed needs report, kept while its inputs are unchanged: ``fingerprint`` digests
    the quarter's texts, the scope and the method, so a stored report is reused only for
    exactly the data it was computed from."""

    __tablename__ = "needs_reports"

    quarter: Mapped[str] = mapped_column(String(8), primary_key=True)
    scope: Mapped[str] = mapped_column(String(200), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    report: Mapped[dict[str, object]] = mapped_column(JSON)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime)
