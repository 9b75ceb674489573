"""Loading a generated community's content at once (the demo), with chunked Core inserts.

Rows pass the same validation and reference rules as the API and the importers; only the
writing is different: plain INSERTs in chunks, one audit row per table, no upsert.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from shequ.core import audit
from shequ.core.errors import Conflict, ValidationFailed
from shequ.domains.content import moderating, scoring
from shequ.domains.content.models import Comment, Creator, Hub, Post, Review
from shequ.domains.content.resolving import (
    Resolved,
    comment_values,
    creator_values,
    hub_values,
    only_values,
    post_values,
    review_values,
)
from shequ.domains.content.schemas import CommentRow, CreatorRow, HubIn, PostRow, ReviewRow

CHUNK = 5_000
Resolver = Callable[[Session, Sequence[Any]], Resolved]
Enricher = Callable[[list[dict[str, Any]]], None]


def _validated(kind: str, model: type[BaseModel], items: list[dict[str, Any]]) -> list[Any]:
    rows = []
    for number, item in enumerate(items):
        try:
            rows.append(model.model_validate(item))
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "row"
            raise ValidationFailed("invalid_row", f"{kind}[{number}]: {err['msg']}",
                                   where) from None
    return rows


def _refuse_known_keys(session: Session, kind: str, table: type[Any], keys: list[str]) -> None:
    repeated = sorted(k for k, n in Counter(keys).items() if n > 1)
    if repeated:
        raise ValidationFailed("duplicate_key", f"{kind} repeat {repeated[:5]}", "external_id")
    for start in range(0, len(keys), CHUNK):
        known = session.scalars(select(table.external_id)
                                .where(table.external_id.in_(keys[start:start + CHUNK])))
        first = known.first()
        if first is not None:
            raise Conflict("already_loaded", f"{kind} {first!r} is loaded already",
                           "external_id")


def _load(session: Session, kind: str, table: type[Any], model: type[BaseModel],
          resolve: Resolver, items: list[dict[str, Any]],
          enrich: Enricher | None = None) -> int:
    rows = _validated(kind, model, items)
    _refuse_known_keys(session, kind, table, [row.external_id for row in rows])
    values = only_values(resolve(session, rows))
    if enrich is not None:
        enrich(values)
    for start in range(0, len(values), CHUNK):
        # The Table, not the mapped class: ORM bulk inserts split batches at every NULL.
        session.execute(insert(table.__table__), values[start:start + CHUNK])
    audit.record(session, action="bulk_load", entity=table.__tablename__, entity_id=kind,
                 after={"rows": len(values)})
    return len(values)


def bulk_load(session: Session, hubs: list[dict[str, Any]], creators: list[dict[str, Any]],
              posts: list[dict[str, Any]], comments: list[dict[str, Any]],
              reviews: list[dict[str, Any]]) -> dict[str, int]:
    """Insert a generated community's content into an empty content store; rows per kind.

    Items are shaped like the importers' rows (``HubIn``, ``CreatorRow``, ``PostRow``,
    ``CommentRow``, ``ReviewRow``); times must be aware. Customers, orders and products
    must be loaded first. The first bad item stops the load with its kind, index and field.
    Posts get their content type (when missing), sentiment and originality on the way in;
    reviews their sentiment; every post, comment and review is moderated (its status
    follows the verdict).
    """
    counts = {
        "hubs": _load(session, "hubs", Hub, HubIn, hub_values, hubs),
        "creators": _load(session, "creators", Creator, CreatorRow, creator_values, creators),
        "posts": _load_posts(session, posts),
        "comments": _load(session, "comments", Comment, CommentRow, comment_values, comments),
        "reviews": _load(session, "reviews", Review, ReviewRow, review_values, reviews,
                         scoring.enrich_reviews),
    }
    for kind, items in (("post", posts), ("comment", comments), ("review", reviews)):
        moderating.moderate(session, kind, [str(i["external_id"]) for i in items])
    return counts


def _load_posts(session: Session, posts: list[dict[str, Any]]) -> int:
    """Posts with their content types and sentiment filled in, then indexed for
    originality (one batch: earlier posts of the same load count as sources)."""
    count = _load(session, "posts", Post, PostRow, post_values, posts, scoring.enrich_posts)
    scoring.index_by_keys(session, [str(p["external_id"]) for p in posts], fresh=True)
    return count
