"""Bulk import of hubs, creators, posts, comments and reviews from CSV or JSONL exports.

Every importer upserts by external id, names each bad row by line, field and reason
(unknown references included) and by default writes the whole file or nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel
from sqlalchemy.orm import Session

from shequ.core.importing import ImportReport, finish_import, read_rows, validate_rows
from shequ.domains.content import moderating, scoring
from shequ.domains.content.models import Comment, Creator, Hub, Post, Review
from shequ.domains.content.resolving import (
    Resolved,
    comment_values,
    creator_values,
    hub_values,
    post_values,
    report_problems,
    review_values,
)
from shequ.domains.content.schemas import CommentRow, CreatorRow, HubIn, PostRow, ReviewRow

Resolver = Callable[[Session, Sequence[Any]], Resolved]
Enricher = Callable[[list[dict[str, Any]]], None]


def _import(session: Session, kind: str, name: str, data: bytes, skip_invalid: bool,
            row_model: type[BaseModel], resolve: Resolver, table: type[Any],
            enrich: Enricher | None = None,
            after: Callable[[Session, list[str]], None] | None = None) -> ImportReport:
    report = ImportReport(kind=kind)
    good = validate_rows(read_rows(name, data), row_model, report)
    resolved = resolve(session, [row for _line, row in good])
    values = report_problems([line for line, _row in good], resolved, report)
    if enrich is not None and (skip_invalid or not report.rejected):
        enrich(values)
    report = finish_import(session, report, table, "external_id", values, skip_invalid, name)
    if after is not None and report.committed:
        after(session, [v["external_id"] for v in values])
    return report


def import_hubs(session: Session, name: str, data: bytes, *,
                skip_invalid: bool = False) -> ImportReport:
    """Import hubs; a named brand must exist."""
    return _import(session, "hubs", name, data, skip_invalid, HubIn, hub_values, Hub)


def import_creators(session: Session, name: str, data: bytes, *,
                    skip_invalid: bool = False) -> ImportReport:
    """Import creators; customers and hubs must exist, one profile per customer."""
    return _import(session, "creators", name, data, skip_invalid, CreatorRow, creator_values,
                   Creator)


def import_posts(session: Session, name: str, data: bytes, *,
                 skip_invalid: bool = False) -> ImportReport:
    """Import posts; a re-import leaves a moderated post's status alone. Missing content
    types are classified, sentiment scored and the posts indexed for originality."""
    return _import(session, "posts", name, data, skip_invalid, PostRow, post_values, Post,
                   scoring.enrich_posts, _index_and_moderate)


def _index_and_moderate(session: Session, keys: list[str]) -> None:
    scoring.index_by_keys(session, keys)
    moderating.moderate(session, "post", keys)


def import_comments(session: Session, name: str, data: bytes, *,
                    skip_invalid: bool = False) -> ImportReport:
    """Import comments; their posts must be imported first."""
    return _import(session, "comments", name, data, skip_invalid, CommentRow, comment_values,
                   Comment, after=moderating.after_import("comment"))


def import_reviews(session: Session, name: str, data: bytes, *,
                   skip_invalid: bool = False) -> ImportReport:
    """Import reviews; an order's review must be by its customer, once per product; their
    sentiment is scored."""
    return _import(session, "reviews", name, data, skip_invalid, ReviewRow, review_values,
                   Review, scoring.enrich_reviews, moderating.after_import("review"))


IMPORTERS = {"hubs": import_hubs, "creators": import_creators, "posts": import_posts,
             "comments": import_comments, "reviews": import_reviews}
