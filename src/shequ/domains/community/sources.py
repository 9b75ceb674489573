"""Read-only inputs from the content domain: creators, per-creator post figures, hub posts.

Post figures (posts, mean quality, views, attributed orders, GMV) come from
``content.service.creator_post_stats``. The content service offers no per-creator lookup
with customer ids and no keyset-paged or per-week reads of a hub's posts, so those are read
here over lightweight ``creators`` / ``posts`` / ``comments`` / ``post_scores`` table
constructs (as the membership domain does); nothing here writes to content tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Float, Integer, String, column, select, table
from sqlalchemy.orm import Session

from shequ.core.db import UTCDateTime
from shequ.core.errors import NotFound
from shequ.domains.content import service as content
from shequ.domains.content.schemas import CreatorPostStats

CREATORS = table("creators", column("id", Integer()), column("external_id", String()),
                 column("customer_id", Integer()), column("display_name", String()),
                 column("level", String()), column("hub_id", Integer()),
                 column("joined_at", UTCDateTime()))
POSTS = table("posts", column("id", Integer()), column("external_id", String()),
              column("customer_id", Integer()), column("hub_id", Integer()),
              column("content_type", String()), column("title", String()),
              column("brand_id", Integer()), column("created_at", UTCDateTime()),
              column("status", String()))
POST_SCORES = table("post_scores", column("post_id", Integer()), column("quality", Float()))
COMMENTS = table("comments", column("id", Integer()), column("post_id", Integer()),
                 column("created_at", UTCDateTime()))


@dataclass(frozen=True)
class CreatorRef:
    """A creator profile of the content domain, keyed by its customer id."""

    customer_id: int
    external_id: str
    display_name: str
    level: str
    hub_id: int | None
    joined_at: datetime


def _refs(session: Session, *where: object) -> list[CreatorRef]:
    c = CREATORS.c
    rows = session.execute(select(c.customer_id, c.external_id, c.display_name, c.level,
                                  c.hub_id, c.joined_at).where(*where)  # type: ignore[arg-type]
                           .order_by(c.customer_id))
    return [CreatorRef(*row) for row in rows]


def all_creators(session: Session) -> list[CreatorRef]:
    """Every creator profile, by customer id."""
    return _refs(session)


def creator_by_key(session: Session, external_id: str,
                   attr: str = "creator_external_id") -> CreatorRef:
    """The creator with ``external_id``; ``NotFound`` naming ``attr`` otherwise."""
    found = _refs(session, CREATORS.c.external_id == external_id)
    if not found:
        raise NotFound("creator_not_found", f"no creator {external_id!r}", attr)
    return found[0]


def creator_keys(session: Session, customer_ids: list[int]) -> dict[int, str]:
    """``customer id -> creator external id`` of those that are creators."""
    c = CREATORS.c
    return dict(session.execute(select(c.customer_id, c.external_id)
                                .where(c.customer_id.in_(sorted(set(customer_ids)))))
                .tuples().all())


def post_stats(session: Session, since: datetime, until: datetime
               ) -> dict[int, CreatorPostStats]:
    """``customer id -> post figures`` of everyone who posted in ``[since, until)``."""
    return {row.customer_id: row
            for row in content.creator_post_stats(session, since=since, until=until)}


def score(stats: CreatorPostStats | None) -> float:
    """The creator score: posts × mean post quality (0 without posts or scores)."""
    if stats is None or stats.mean_quality is None:
        return 0.0
    return stats.posts * stats.mean_quality
