"""Content meets moderation: every post, comment and review is checked when it arrives
(one at a time through the API, in batches from imports and the demo load), and its
``status`` follows the verdict and, later, the moderator's decision:

=========  ===========
label      status
=========  ===========
pass       published
review     held
block      blocked
=========  ===========
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from shequ.domains.content import references as refs
from shequ.domains.content.models import Comment, Post, Review
from shequ.domains.content.scoring import post_text
from shequ.domains.moderation import service as moderation
from shequ.domains.moderation.schemas import SubjectIn, SubmitReport

STATUS = {"pass": "published", "review": "held", "block": "blocked"}
TABLES: dict[str, Any] = {"post": Post, "review": Review, "comment": Comment}
_CHUNK = 2_000
CUSTOMER = refs.CUSTOMERS.c


def _apply(kind: str) -> moderation.Handler:
    table = TABLES[kind]

    def apply(session: Session, by_label: dict[str, list[str]]) -> None:
        for label, ids in by_label.items():
            for start in range(0, len(ids), _CHUNK):
                session.execute(update(table)
                                .where(table.external_id.in_(ids[start:start + _CHUNK]))
                                .values(status=STATUS[label]))
    return apply


for _kind in TABLES:
    moderation.on_decision(_kind, _apply(_kind))


def subjects(session: Session, kind: str, keys: Sequence[str]) -> list[SubjectIn]:
    """What moderation needs to know of the given posts, comments or reviews."""
    table = TABLES[kind]
    items: list[SubjectIn] = []
    for start in range(0, len(keys), _CHUNK):
        part = list(keys[start:start + _CHUNK])
        if kind == "post":
            query = select(Post.external_id, Post.title, Post.body, Post.brand_id,
                           Post.created_at, CUSTOMER.external_id.label("author"))
        elif kind == "review":
            query = select(Review.external_id, Review.text.label("body"), Review.brand_id,
                           Review.created_at, CUSTOMER.external_id.label("author"))
        else:
            query = select(Comment.external_id, Comment.text.label("body"),
                           Post.brand_id, Comment.created_at,
                           CUSTOMER.external_id.label("author")).join(
                               Post, Post.id == Comment.post_id)
        query = query.join(refs.CUSTOMERS, CUSTOMER.id == table.customer_id).where(
            table.external_id.in_(part))
        for row in session.execute(query):
            text = post_text(row.title, row.body) if kind == "post" else row.body
            items.append(SubjectIn(subject_kind=kind,
                                   subject_id=row.external_id, text=text,
                                   brand_id=row.brand_id, author_id=row.author,
                                   submitted_at=row.created_at))
    return items


def moderate(session: Session, kind: str, keys: Sequence[str],
             now: datetime | None = None) -> SubmitReport:
    """Check the given subjects (those already checked are skipped) and set their status."""
    return moderation.submit_many(session, now, subjects(session, kind, keys))


def moderate_one(session: Session, kind: str, key: str, now: datetime) -> str:
    """Check one arriving subject; its status is set; returns the label."""
    found = subjects(session, kind, [key])
    return moderation.submit(session, now, found[0]).label


def after_import(kind: str) -> Any:
    """An importer's ``after`` hook that moderates the imported rows."""
    def after(session: Session, keys: list[str]) -> None:
        moderate(session, kind, keys)
    return after
