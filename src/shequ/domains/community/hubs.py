"""Hub memberships (expert / brand / user, one per hub and customer, role changes
recorded), hub feeds with keyset paging and per-week hub figures.

Hubs are the content domain's; a partner sees only its brands' hubs (``content.list_hubs``)
and, inside them, only posts about its brands, and never which customer is behind a row.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shequ.core.clock import Clock, as_utc
from shequ.core.errors import NotFound, ValidationFailed
from shequ.core.permissions import CLI_PRINCIPAL, Principal
from shequ.domains.community.models import HUB_ROLES, HubMembership, HubRoleChange
from shequ.domains.community.schemas import (
    FeedItem,
    FeedOrder,
    FeedPage,
    HubMetrics,
    HubSummary,
    JoinIn,
    MemberOut,
    MemberPage,
    RoleIn,
    TopCreator,
    WeekFigures,
)
from shequ.domains.community.sources import COMMENTS, POST_SCORES, POSTS
from shequ.domains.content import service as content
from shequ.domains.content.schemas import HubOut
from shequ.domains.customers import service as customers

SHANGHAI = ZoneInfo("Asia/Shanghai")
TOP_CREATORS = 10


def visible_hub(session: Session, principal: Principal, key: str) -> HubOut:
    """The hub ``key`` if the caller may see it; ``NotFound`` otherwise."""
    for hub in content.list_hubs(session, principal):
        if hub.external_id == key:
            return hub
    raise NotFound("hub_not_found", f"no hub {key!r}", "hub")


def _customer_id(session: Session, key: str) -> int:
    found = customers.customer_ids_by_key(session, [key]).get(key)
    if found is None:
        raise NotFound("customer_not_found", f"no customer {key!r}", "customer_external_id")
    return found


def _shown_key(principal: Principal, key: str | None) -> str | None:
    # Partners hold no customers:read, so who is behind a row stays hidden from them.
    return key if principal.brand_ids is None else None


def _member_out(principal: Principal, hub_key: str, row: HubMembership, customer_key: str,
                *, created: bool = False) -> MemberOut:
    return MemberOut(hub_external_id=hub_key, customer_external_id=_shown_key(
        principal, customer_key), role=row.role, joined_at=row.joined_at,
        created=created)


def add_member(session: Session, hub_id: int, customer_id: int, role: str,
               joined_at: datetime) -> tuple[HubMembership, bool]:
    """Store a membership once: ``(row, True)`` when new (its join recorded in the role
    history), else the stored row and False (also after losing a race for the key)."""
    query = select(HubMembership).where(HubMembership.hub_id == hub_id,
                                        HubMembership.customer_id == customer_id)
    found = session.scalar(query)
    if found is not None:
        return found, False
    row = HubMembership(hub_id=hub_id, customer_id=customer_id, role=role,
                        joined_at=joined_at)
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
            session.add(HubRoleChange(membership_id=row.id, from_role=None, to_role=role,
                                      changed_at=joined_at))
            session.flush()
    except IntegrityError:
        stored = session.scalar(query)
        if stored is None:
            raise
        return stored, False
    return row, True


def join_hub(session: Session, clock: Clock, hub_key: str, data: JoinIn, *,
             principal: Principal = CLI_PRINCIPAL) -> MemberOut:
    """Make a customer a member of a hub. Joining again returns the stored membership
    unchanged (``created`` false); roles change only through :func:`set_role`."""
    hub = visible_hub(session, principal, hub_key)
    now = clock.now()
    when = data.joined_at or now
    if when > now:
        raise ValidationFailed("time_in_future", "joined_at lies in the future", "joined_at")
    if data.role == "brand" and hub.brand_id is None:
        raise ValidationFailed("hub_without_brand", f"hub {hub_key!r} has no brand, so it "
                               "has no brand members", "role")
    row, created = add_member(session, hub.id, _customer_id(session, data.customer_external_id),
                              data.role, when)
    return _member_out(principal, hub_key, row, data.customer_external_id, created=created)


def set_role(session: Session, clock: Clock, hub_key: str, customer_key: str, data: RoleIn,
             *, principal: Principal = CLI_PRINCIPAL) -> MemberOut:
    """Change a member's role and record the change (the same role again is a no-op)."""
    hub = visible_hub(session, principal, hub_key)
    customer_id = _customer_id(session, customer_key)
    row = session.scalar(select(HubMembership).where(HubMembership.hub_id == hub.id,
                                                     HubMembership.customer_id == customer_id)
                         .with_for_update())
    if row is None:
        raise NotFound("member_not_found", f"{customer_key!r} is not a member of {hub_key!r}",
                       "customer_external_id")
    if data.role == "brand" and hub.brand_id is None:
        raise ValidationFailed("hub_without_brand", f"hub {hub_key!r} has no brand, so it "
                               "has no brand members", "role")
    if row.role != data.role:
        session.add(HubRoleChange(membership_id=row.id, from_role=row.role, to_role=data.role,
                                  changed_at=clock.now()))
        row.role = data.role
        session.flush()
    return _member_out(principal, hub_key, row, customer_key)


def role_history(session: Session, hub_key: str, customer_key: str, *,
                 principal: Principal = CLI_PRINCIPAL) -> list[tuple[str | None, str]]:
    """A member's ``(from role, to role)`` changes, oldest first (the join first)."""
    hub = visible_hub(session, principal, hub_key)
    rows = session.execute(select(HubRoleChange.from_role, HubRoleChange.to_role)
                           .join(HubMembership, HubMembership.id == HubRoleChange.membership_id)
                           .where(HubMembership.hub_id == hub.id,
                                  HubMembership.customer_id == _customer_id(session,
                                                                            customer_key))
                           .order_by(HubRoleChange.id)).tuples().all()
    return list(rows)


def list_members(session: Session, hub_key: str, *, role: str | None = None,
                 after: int | None = None, limit: int = 50,
                 principal: Principal = CLI_PRINCIPAL) -> MemberPage:
    """A hub's members in joining order (by membership id); page on with ``after``."""
    hub = visible_hub(session, principal, hub_key)
    query = (select(HubMembership).where(HubMembership.hub_id == hub.id)
             .order_by(HubMembership.id).limit(limit + 1))
    if role is not None:
        query = query.where(HubMembership.role == role)
    if after is not None:
        query = query.where(HubMembership.id > after)
    rows = list(session.scalars(query))
    keys = customers.customer_keys_by_id(session, [row.customer_id for row in rows])
    page = rows[:limit]
    return MemberPage(items=[_member_out(principal, hub_key, row, keys[row.customer_id])
                             for row in page],
                      next_after=page[-1].id if len(rows) > limit else None)


def _role_counts(session: Session, hub_ids: list[int]) -> dict[int, dict[str, int]]:
    counts: dict[int, dict[str, int]] = {hub_id: dict.fromkeys(HUB_ROLES, 0)
                                         for hub_id in hub_ids}
    for hub_id, role, members in session.execute(
            select(HubMembership.hub_id, HubMembership.role, func.count())
            .where(HubMembership.hub_id.in_(hub_ids))
            .group_by(HubMembership.hub_id, HubMembership.role)):
        counts[hub_id][role] = members
    return counts


def list_hub_summaries(session: Session, *,
                       principal: Principal = CLI_PRINCIPAL) -> list[HubSummary]:
    """The hubs the caller may see with their members per role."""
    hubs = content.list_hubs(session, principal)
    counts = _role_counts(session, [hub.id for hub in hubs])
    return [HubSummary(external_id=hub.external_id, name=hub.name, brand_id=hub.brand_id,
                       members=counts[hub.id]) for hub in hubs]


# --- feed --------------------------------------------------------------------------------


def _cursor(order: FeedOrder, raw: str | None) -> tuple[datetime | float, int] | None:
    if raw is None:
        return None
    head, _, tail = raw.rpartition("~")
    try:
        post_id = int(tail)
        first: datetime | float = (as_utc(datetime.fromisoformat(head)) if order == "newest"
                                   else float(head))
    except ValueError as exc:
        raise ValidationFailed("bad_cursor", f"{raw!r} is not a cursor of this feed: pass "
                               "next_cursor of the previous page unchanged", "cursor") from exc
    return first, post_id


def hub_feed(session: Session, hub_key: str, *, order: FeedOrder = "newest",
             cursor: str | None = None, limit: int = 20,
             principal: Principal = CLI_PRINCIPAL) -> FeedPage:
    """A hub's published posts, newest first or best quality first (unscored posts last),
    keyset-paged: pass ``next_cursor`` back as ``cursor``."""
    hub = visible_hub(session, principal, hub_key)
    p = POSTS.c
    quality = func.coalesce(POST_SCORES.c.quality, -1.0)
    comments = (select(COMMENTS.c.post_id, func.count().label("n"))
                .group_by(COMMENTS.c.post_id).subquery())
    query = (select(p.id, p.external_id, p.title, p.customer_id, p.content_type,
                    p.created_at, func.coalesce(comments.c.n, 0), POST_SCORES.c.quality)
             .outerjoin(POST_SCORES, POST_SCORES.c.post_id == p.id)
             .outerjoin(comments, comments.c.post_id == p.id)
             .where(p.hub_id == hub.id, p.status == "published"))
    if principal.brand_ids is not None:
        query = query.where(p.brand_id.in_(principal.brand_ids))
    after = _cursor(order, cursor)
    key = p.created_at if order == "newest" else quality
    if after is not None:
        query = query.where(or_(key < after[0], and_(key == after[0], p.id < after[1])))
    rows = session.execute(query.order_by(key.desc(), p.id.desc()).limit(limit + 1)).all()
    page = rows[:limit]
    authors = customers.customer_keys_by_id(session, [row[3] for row in page])
    items = [FeedItem(external_id=row[1], title=row[2],
                      author_customer_external_id=_shown_key(principal, authors.get(row[3])),
                      content_type=row[4], created_at=row[5], comments=row[6],
                      quality=row[7]) for row in page]
    next_cursor = None
    if len(rows) > limit:
        last = page[-1]
        head = last[5].isoformat() if order == "newest" else repr(
            -1.0 if last[7] is None else float(last[7]))
        next_cursor = f"{head}~{last[0]}"
    return FeedPage(order=order, items=items, next_cursor=next_cursor)


# --- figures -----------------------------------------------------------------------------


def _monday(moment: datetime, zone: ZoneInfo) -> date:
    local = moment.astimezone(zone).date()
    return local - timedelta(days=local.weekday())


def hub_metrics(session: Session, clock: Clock, hub_key: str, *, weeks: int = 8,
                zone: ZoneInfo = SHANGHAI,
                principal: Principal = CLI_PRINCIPAL) -> HubMetrics:
    """A hub's members per role, and per week (Monday to Sunday in ``zone``, the last
    ``weeks`` weeks up to the current one) new members, published posts and comments on
    them; the top creators of those weeks by posts in the hub."""
    if not 1 <= weeks <= 104:
        raise ValidationFailed("weeks_out_of_range", "weeks must be between 1 and 104",
                               "weeks")
    hub = visible_hub(session, principal, hub_key)
    first = _monday(clock.now(), zone) - timedelta(weeks=weeks - 1)
    since = datetime.combine(first, datetime.min.time(), zone).astimezone(UTC)
    p = POSTS.c
    scoped = [p.hub_id == hub.id, p.status == "published"]
    if principal.brand_ids is not None:
        scoped.append(p.brand_id.in_(principal.brand_ids))
    joined = session.scalars(select(HubMembership.joined_at).where(
        HubMembership.hub_id == hub.id, HubMembership.joined_at >= since))
    posts = session.execute(select(p.customer_id, p.created_at).where(
        *scoped, p.created_at >= since)).all()
    comments = session.execute(select(p.customer_id, COMMENTS.c.created_at)
                               .join(COMMENTS, COMMENTS.c.post_id == p.id)
                               .where(*scoped, COMMENTS.c.created_at >= since)).all()
    per_week: dict[str, Counter[date]] = {"members": Counter(_monday(at, zone) for at in joined),
                                          "posts": Counter(_monday(r[1], zone) for r in posts),
                                          "comments": Counter(_monday(r[1], zone)
                                                              for r in comments)}
    post_counts = Counter(row[0] for row in posts)
    received = Counter(row[0] for row in comments)
    top = sorted(post_counts, key=lambda who: (-post_counts[who], -received[who], who))
    top = top[:TOP_CREATORS]
    keys = customers.customer_keys_by_id(session, top)
    days = [first + timedelta(weeks=n) for n in range(weeks)]
    return HubMetrics(
        hub_external_id=hub.external_id,
        members=_role_counts(session, [hub.id])[hub.id],
        weeks=[WeekFigures(week=day, new_members=per_week["members"][day],
                           posts=per_week["posts"][day], comments=per_week["comments"][day])
               for day in days],
        top_creators=[TopCreator(customer_external_id=_shown_key(principal, keys.get(who)),
                                 posts=post_counts[who], comments_received=received[who])
                      for who in top])
