"""The 360° customer view: one customer's identities, orders, behaviour, reviews and posts,
segments, tier, tags and stage, plus the growth trajectory — the customer's story over
time (first visit → sign-up → first order → tier changes → first post …)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import ibis
from sqlalchemy.orm import Session

from shequ.core.clock import as_utc
from shequ.core.money import format_fen
from shequ.core.permissions import Principal
from shequ.core.web import Services
from shequ.domains.content import service as content
from shequ.domains.content.schemas import PostPage, ReviewPage
from shequ.domains.customers import service as customers
from shequ.domains.customers.schemas import CustomerDetail
from shequ.domains.events.service import event_store
from shequ.domains.insight.schemas import Customer360, Milestone, TimelineEvent
from shequ.domains.insight.service import check_platform, customer_tags, get_profile
from shequ.domains.lifecycle import service as lifecycle
from shequ.domains.membership import service as membership
from shequ.domains.orders import service as orders
from shequ.domains.orders.schemas import OrderOut
from shequ.domains.segments import service as segments

TIMELINE_EVENTS = 100
LIST_LIMIT = 20
STAGE_NAMES = {"new": "新客", "active": "活跃", "paying": "付费", "loyal": "忠诚",
               "advocate": "传播者", "dormant": "沉睡"}
TIER_NAMES = {"silver": "银卡", "gold": "金卡", "black_gold": "黑金卡"}


def _person_events(services: Services, key: str) -> tuple[list[TimelineEvent], datetime | None]:
    """The latest events of the customer (theirs, and those of the anonymous visitor ids
    linked to them) and the time of the very first one."""
    store = event_store(services)
    events = store.table("events")
    links = store.table("identity_links")
    anonymous = links.filter(links.customer_id == key).select("anonymous_id")
    mine = events.filter((events.customer_id == key)
                         | events.anonymous_id.isin(anonymous.anonymous_id))
    latest = store.to_arrow(
        mine.order_by([ibis.desc(mine.ts), ibis.desc(mine.event_id)])
        .limit(TIMELINE_EVENTS)
        .select("ts", "name", "page", "channel", "properties"))
    first = store.to_arrow(mine.ts.min()).as_py()
    timeline = [
        TimelineEvent(at=as_utc(row["ts"]), name=row["name"], page=row["page"],
                      channel=row["channel"], detail=_detail(row["properties"]))
        for row in latest.to_pylist()
    ]
    return timeline, (as_utc(first) if first is not None else None)


def _detail(properties: str | None) -> str | None:
    """The one property worth showing in a timeline row (sku, query, amount …)."""
    if not properties:
        return None
    try:
        data = json.loads(properties)
    except ValueError:
        return None
    for key in ("sku", "query", "post_id", "element", "order_id"):
        if key in data:
            return f"{key}={data[key]}"
    return None


def _segments_of(services: Services, principal: Principal, key: str) -> list[dict[str, Any]]:
    """Saved segments whose stored members include the customer."""
    store = event_store(services)
    members = store.table("segment_members")
    found = set(store.to_arrow(members.filter(members.customer_id == key)
                               .select("segment"))["segment"].to_pylist())
    if not found:
        return []
    return [{"id": s.id, "key": s.key, "name": s.name, "size": s.size}
            for s in segments.list_segments(services, principal) if s.key in found]


def _milestones(session: Session, principal: Principal, key: str, detail: CustomerDetail,
                first_seen: datetime | None, order_rows: list[OrderOut],
                reviews: ReviewPage, posts: PostPage) -> list[Milestone]:
    """The customer's story in time order. ``reviews`` and ``posts`` are the newest-first
    pages the view shows; the oldest item is read separately only when they are partial."""
    customer_id = detail.id
    steps: list[Milestone] = []
    if first_seen is not None:
        steps.append(Milestone(at=first_seen, kind="first_visit", title="首次访问"))
    if detail.registered_at is not None:
        steps.append(Milestone(at=as_utc(detail.registered_at), kind="registered",
                               title="注册", detail=detail.acquisition_channel))
    if order_rows:
        first = order_rows[-1]
        amount = "" if first.total_fen is None else f" {format_fen(first.total_fen)}"
        steps.append(Milestone(at=as_utc(first.created_at), kind="first_order",
                               title="首单", detail=f"{first.external_id}{amount}"))
        paid = [(o.paid_at, o.external_id) for o in order_rows if o.paid_at is not None]
        if len(paid) >= 2:
            paid_at, external_id = paid[-2]
            steps.append(Milestone(at=as_utc(paid_at), kind="repeat_purchase",
                                   title="复购", detail=external_id))
    for change in membership.tier_history(session, customer_id):
        steps.append(Milestone(
            at=datetime.combine(change.day, datetime.min.time(), UTC), kind="tier_change",
            title=f"会员 {TIER_NAMES.get(change.from_tier or '', '非会员')} → "
                  f"{TIER_NAMES.get(change.to_tier or '', '非会员')}",
            detail=change.reason))
    for stage in lifecycle.history(session, customer_id):
        steps.append(Milestone(
            at=datetime.combine(stage.day, datetime.min.time(), UTC), kind="stage_change",
            title=f"生命周期 {STAGE_NAMES.get(stage.from_stage or '', '—')} → "
                  f"{STAGE_NAMES.get(stage.to_stage, stage.to_stage)}"))
    if reviews.total > len(reviews.items):
        reviews = content.list_reviews(session, principal, customer=key, limit=1,
                                       offset=reviews.total - 1)
    if reviews.items:
        first_review = reviews.items[-1]
        steps.append(Milestone(at=as_utc(first_review.created_at), kind="first_review",
                               title="首次评价", detail=first_review.sku))
    if posts.total > len(posts.items):
        posts = content.list_posts(session, principal, author=key, limit=1,
                                   offset=posts.total - 1)
    if posts.items:
        first_post = posts.items[-1]
        steps.append(Milestone(at=as_utc(first_post.created_at), kind="first_post",
                               title="首篇笔记", detail=first_post.title))
    creators = content.list_creators(session, principal, customer=key, limit=1)
    if creators.items:
        creator = creators.items[0]
        steps.append(Milestone(at=as_utc(creator.joined_at), kind="creator",
                               title="成为创作者", detail=creator.level))
    return sorted(steps, key=lambda m: (m.at, m.kind))


def customer_360(services: Services, session: Session, principal: Principal,
                 external_id: str) -> Customer360:
    """Everything about one customer; 404 when unknown, partners refused."""
    check_platform(principal)
    detail = customers.get_customer(session, external_id)
    customer_id = detail.id
    order_page = orders.list_orders(session, principal, customer=external_id, limit=500)
    timeline, first_seen = _person_events(services, external_id)
    reviews = content.list_reviews(session, principal, customer=external_id,
                                   limit=LIST_LIMIT)
    posts = content.list_posts(session, principal, author=external_id, limit=LIST_LIMIT)
    member = membership.member(session, customer_id, principal=principal)
    return Customer360(
        customer=detail.model_dump(exclude={"identities", "devices"}, mode="json"),
        identities=[i.model_dump(mode="json") for i in detail.identities],
        devices=[d.model_dump(mode="json") for d in detail.devices],
        profile=get_profile(session, principal, external_id),
        tags=customer_tags(session, principal, external_id),
        lifecycle_stage=lifecycle.stage_of(session, customer_id),
        member_tier=member.model_dump(mode="json"),
        segments=_segments_of(services, principal, external_id),
        orders=[o.model_dump(mode="json") for o in order_page.items[:LIST_LIMIT]],
        orders_total=order_page.total,
        reviews=[r.model_dump(mode="json") for r in reviews.items],
        posts=[p.model_dump(mode="json", exclude={"body"}) for p in posts.items],
        events=timeline,
        trajectory=_milestones(session, principal, external_id, detail, first_seen,
                               order_page.items, reviews, posts),
    )
