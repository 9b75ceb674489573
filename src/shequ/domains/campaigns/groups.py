"""Group-buying use cases: offers, opening and joining groups, closing them, figures
(docs/group-buying.md).

The rules that keep money, stock and seats right:

* An offer takes its ``stock`` from the catalog when it is created; joins take units from
  the offer's ``stock_left`` (CHECK ``>= 0``), an expired group gives them back, and an
  ended offer with no open group gives what is left back to the catalog, once.
* A member pays the undiscounted price on joining (``paid_fen``). When the group succeeds
  every member gets a real order (``orders.service.create_order`` with the tier discount
  of the group's final size as ``discount_fen``, then moved to ``paid``) and the
  difference is refunded (``refunded_fen``). When it expires every member is refunded in
  full and the group moves on to ``refunded``.
* Every open and join runs under row locks taken in one order: the group (joins), then
  the offer, then the product row (orders). ``SELECT … FOR UPDATE`` on PostgreSQL; on
  SQLite a no-op UPDATE takes the database write lock first. The size check, the stock
  check and the per-customer limit are read under those locks, and CHECKs
  (``member_count <= max_size``, ``stock_left >= 0``) and the unique key
  ``(group_id, customer_id)`` back them up.
* Opens and joins are idempotent on the client's ``idempotency_key``: the same request
  again returns the first answer (``replayed``); another request under a used key is
  ``idempotency_key_used``; a second join of the same customer to the same group under
  another key is ``already_joined``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any, TypeVar

import numpy as np
from sqlalchemy import and_, exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shequ.core.clock import Clock, as_utc
from shequ.core.db import transaction
from shequ.core.errors import Conflict, NotFound, ShequError, ValidationFailed
from shequ.core.permissions import CLI_PRINCIPAL, Principal
from shequ.core.web import Services
from shequ.domains.campaigns.group_models import BuyingGroup, GroupMember, GroupOffer
from shequ.domains.campaigns.group_schemas import (
    ExpiryReport,
    GroupOut,
    JoinIn,
    JoinOut,
    MemberOut,
    OfferFigures,
    OfferIn,
    OfferOut,
    OfferStatus,
    OpenIn,
    TierIn,
    TierOut,
)
from shequ.domains.catalog.service import get_product, release_stock, reserve_stock
from shequ.domains.customers.service import customer_ids_by_key, customer_keys_by_id
from shequ.domains.orders.schemas import LineIn, OrderIn
from shequ.domains.orders.service import create_order, purchases, transition_order

__all__ = [
    "ORDER_CHANNEL", "all_figures", "create_offer", "expire_due", "expire_groups", "figures",
    "get_offer", "invariant_violations", "join_group", "list_groups", "list_offers",
    "open_group", "set_paused", "show_group", "validate_tiers",
]

ORDER_CHANNEL = "group_buying"
EXPIRY_BATCH = 100
HELD_STATES = ("open", "succeeded")


# --- tiers and offers ------------------------------------------------------------------------

def validate_tiers(tiers: Sequence[TierIn]) -> None:
    """Sizes strictly ascending from 2, discounts strictly ascending within (0, 100)."""
    if not tiers:
        raise ValidationFailed("no_tiers", "give at least one tier", "tiers")
    for tier in tiers:
        if tier.size < 2:
            raise ValidationFailed("tier_size_too_small", "a group has at least 2 members",
                                   "tiers")
        if not 0 < tier.percent_off < 100:
            raise ValidationFailed("tier_percent_out_of_range",
                                   "a discount is between 1 and 99 percent", "tiers")
    for before, after in pairwise(tiers):
        if after.size <= before.size:
            raise ValidationFailed("tier_sizes_not_ascending",
                                   "tier sizes must go up from one tier to the next", "tiers")
        if after.percent_off <= before.percent_off:
            raise ValidationFailed("tier_discounts_not_ascending",
                                   "a larger group must get a larger discount", "tiers")


def _tiers(offer: GroupOffer) -> list[TierOut]:
    return [TierOut(size=int(t["size"]), percent_off=int(t["percent_off"]))
            for t in offer.tiers]


def _tier_for(offer: GroupOffer, members: int) -> TierOut | None:
    """The largest tier ``members`` reach (None: not even the smallest)."""
    reached = [t for t in _tiers(offer) if t.size <= members]
    return reached[-1] if reached else None


def _next_tier(offer: GroupOffer, members: int) -> int | None:
    above = [t.size for t in _tiers(offer) if t.size > members]
    return above[0] if above else None


def _status(offer: GroupOffer, now: datetime) -> OfferStatus:
    if now >= as_utc(offer.ends_at):
        return "ended"
    if offer.state == "paused":
        return "paused"
    if now < as_utc(offer.starts_at):
        return "scheduled"
    return "running"


def _offer_out(offer: GroupOffer, now: datetime, *, created: bool = False) -> OfferOut:
    return OfferOut(
        code=offer.code, title=offer.title, sku=offer.sku,
        unit_price_fen=offer.unit_price_fen, tiers=_tiers(offer), min_size=offer.min_size,
        max_size=offer.max_size, hours=offer.hours, starts_at=as_utc(offer.starts_at),
        ends_at=as_utc(offer.ends_at), stock=offer.stock, stock_left=offer.stock_left,
        returned_units=offer.returned_units, per_customer_limit=offer.per_customer_limit,
        paused=offer.state == "paused", status=_status(offer, now),
        settled_at=as_utc(offer.settled_at) if offer.settled_at else None, created=created)


def _visible(principal: Principal, offer: GroupOffer) -> bool:
    return principal.sees_brand(offer.brand_id)


def _offer_row(session: Session, code: str, principal: Principal = CLI_PRINCIPAL,
               attr: str | None = "offer") -> GroupOffer:
    row = session.scalar(select(GroupOffer).where(GroupOffer.code == code)
                         .execution_options(populate_existing=True))
    if row is None or not _visible(principal, row):
        raise NotFound("offer_not_found", f"no group-buying offer {code!r}", attr)
    return row


def _same_offer(row: GroupOffer, data: OfferIn) -> bool:
    return (row.title == data.title and row.sku == data.sku
            and row.tiers == [t.model_dump() for t in data.tiers] and row.hours == data.hours
            and as_utc(row.starts_at) == data.starts_at and as_utc(row.ends_at) == data.ends_at
            and row.stock == data.stock and row.per_customer_limit == data.per_customer_limit)


def create_offer(session: Session, clock: Clock, data: OfferIn, *,
                 principal: Principal = CLI_PRINCIPAL) -> OfferOut:
    """File an offer and set its ``stock`` aside from the catalog (``insufficient_stock``
    when the product has fewer units). The same offer again (same code and content) is
    answered with the stored one (``created`` False) and takes no stock; other content
    under a used code is ``offer_exists``."""
    now = clock.now()
    validate_tiers(data.tiers)
    if data.ends_at <= data.starts_at:
        raise ValidationFailed("window_invalid", "the offer must end after it starts",
                               "ends_at")
    existing = session.scalar(select(GroupOffer).where(GroupOffer.code == data.code))
    if existing is not None:
        if _visible(principal, existing) and _same_offer(existing, data):
            return _offer_out(existing, now)
        raise Conflict("offer_exists", f"offer {data.code!r} exists with other content",
                       "code")
    product = get_product(session, principal, data.sku)  # another brand's: 404
    if not product.is_active:
        raise ValidationFailed("product_inactive", f"product {data.sku!r} is not on sale",
                               "sku")
    try:
        with session.begin_nested():
            try:
                reserve_stock(session, [(data.sku, data.stock)])
            except Conflict as exc:
                raise Conflict("insufficient_stock", f"the product has only {product.stock} "
                               "units in stock", "stock") from exc
            row = GroupOffer(
                code=data.code, title=data.title, sku=data.sku, product_id=product.id,
                brand_id=product.brand_id, unit_price_fen=product.price_fen,
                tiers=[t.model_dump() for t in data.tiers], min_size=data.tiers[0].size,
                max_size=data.tiers[-1].size, hours=data.hours, starts_at=data.starts_at,
                ends_at=data.ends_at, stock=data.stock, stock_left=data.stock,
                returned_units=0, per_customer_limit=data.per_customer_limit,
                state="active", created_at=now, updated_at=now)
            session.add(row)
            session.flush()
    except IntegrityError:  # a twin request filed the same code meanwhile
        if session.scalar(select(GroupOffer.id).where(GroupOffer.code == data.code)) is None:
            raise
        return create_offer(session, clock, data, principal=principal)
    return _offer_out(row, now, created=True)


def list_offers(session: Session, clock: Clock, *,
                principal: Principal = CLI_PRINCIPAL) -> list[OfferOut]:
    """Every offer the caller may see, newest window first."""
    now = clock.now()
    query = select(GroupOffer).order_by(GroupOffer.starts_at.desc(), GroupOffer.id.desc())
    if principal.brand_ids is not None:
        query = query.where(GroupOffer.brand_id.in_(sorted(principal.brand_ids)))
    return [_offer_out(row, now) for row in session.scalars(query)]


def get_offer(session: Session, clock: Clock, code: str, *,
              principal: Principal = CLI_PRINCIPAL) -> OfferOut:
    return _offer_out(_offer_row(session, code, principal), clock.now())


def set_paused(session: Session, clock: Clock, code: str, paused: bool, *,
               principal: Principal = CLI_PRINCIPAL) -> OfferOut:
    """Pause an offer (no group opened or joined until it resumes) or resume it. Groups
    already open keep their deadline."""
    _offer_row(session, code, principal)
    offer = _lock(session, GroupOffer, session.scalars(
        select(GroupOffer.id).where(GroupOffer.code == code)).one())
    now = clock.now()
    offer.state = "paused" if paused else "active"
    offer.updated_at = now
    session.flush()
    return _offer_out(offer, now)


# --- locks -----------------------------------------------------------------------------------

_Locked = TypeVar("_Locked", GroupOffer, BuyingGroup)


def _lock(session: Session, model: type[_Locked], row_id: int) -> _Locked:
    """The row, locked until the transaction ends and read fresh."""
    query = select(model).where(model.id == row_id).execution_options(populate_existing=True)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    else:  # SQLite: take the database write lock before reading
        session.execute(update(model).where(model.id == row_id).values(id=model.id)
                        .execution_options(synchronize_session=False))
    row = session.scalar(query)
    if row is None:
        raise NotFound("group_not_found" if model is BuyingGroup else "offer_not_found",
                       f"no such {'group' if model is BuyingGroup else 'offer'}", None)
    return row


# --- groups ----------------------------------------------------------------------------------

def _customer_id(session: Session, key: str) -> int:
    found = customer_ids_by_key(session, [key]).get(key)
    if found is None:
        raise NotFound("customer_not_found", f"no customer {key!r}", "customer_external_id")
    return int(found)


def _member_out(row: GroupMember, key: str) -> MemberOut:
    return MemberOut(customer_external_id=key, is_leader=row.is_leader, quantity=row.quantity,
                     paid_fen=row.paid_fen, discount_fen=row.discount_fen,
                     refunded_fen=row.refunded_fen, state=row.state,
                     joined_at=as_utc(row.joined_at), order_external_id=row.order_external_id)


def _group_outs(session: Session, now: datetime, groups: Sequence[BuyingGroup],
                offers: dict[int, GroupOffer], *, with_members: bool = True) -> list[GroupOut]:
    ids = [g.id for g in groups]
    members: dict[int, list[GroupMember]] = defaultdict(list)
    if with_members and ids:
        for row in session.scalars(select(GroupMember).where(GroupMember.group_id.in_(ids))
                                   .order_by(GroupMember.id)
                                   .execution_options(populate_existing=True)):
            members[row.group_id].append(row)
    wanted = {g.leader_customer_id for g in groups}
    wanted |= {m.customer_id for rows in members.values() for m in rows}
    keys = customer_keys_by_id(session, wanted)
    found: list[GroupOut] = []
    for group in groups:
        offer = offers[group.offer_id]
        if group.state == "open":
            tier = _tier_for(offer, group.member_count)
            tier_size, percent = (tier.size, tier.percent_off) if tier else (None, None)
            left = max(0, int((as_utc(group.deadline_at) - now).total_seconds()))
        else:
            tier_size, percent, left = group.tier_size, group.percent_off, 0
        found.append(GroupOut(
            id=group.id, offer=offer.code, state=group.state,
            leader_customer_external_id=keys[group.leader_customer_id],
            member_count=group.member_count, max_size=group.max_size, units=group.units,
            tier_size=tier_size, percent_off=percent,
            next_tier_size=_next_tier(offer, group.member_count) if group.state == "open"
            else None,
            opened_at=as_utc(group.opened_at), deadline_at=as_utc(group.deadline_at),
            closed_at=as_utc(group.closed_at) if group.closed_at else None,
            refunded_at=as_utc(group.refunded_at) if group.refunded_at else None,
            seconds_left=left,
            members=[_member_out(m, keys[m.customer_id]) for m in members[group.id]]))
    return found


def _answer(session: Session, now: datetime, member: GroupMember, *,
            replayed: bool) -> JoinOut:
    group = session.get(BuyingGroup, member.group_id, populate_existing=True)
    assert group is not None
    offer = session.get(GroupOffer, group.offer_id)
    assert offer is not None
    shown = _group_outs(session, now, [group], {offer.id: offer})[0]
    key = customer_keys_by_id(session, [member.customer_id])[member.customer_id]
    return JoinOut(group=shown, member=_member_out(member, key), replayed=replayed)


def _by_key(session: Session, key: str) -> GroupMember | None:
    return session.scalar(select(GroupMember).where(GroupMember.idempotency_key == key)
                          .execution_options(populate_existing=True))


def _offer_refusal(offer: GroupOffer, now: datetime) -> None:
    status = _status(offer, now)
    if status == "ended":
        raise Conflict("offer_ended", f"offer {offer.code!r} has ended", "offer")
    if status == "paused":
        raise Conflict("offer_paused", f"offer {offer.code!r} is paused", "offer")
    if status == "scheduled":
        raise Conflict("offer_not_started", f"offer {offer.code!r} has not started yet",
                       "offer")


def _take_units(session: Session, offer: GroupOffer, customer_id: int, quantity: int) -> None:
    """Check the per-customer limit and the stock (under the offer's lock) and take the
    units from the offer."""
    held = session.scalar(
        select(func.coalesce(func.sum(GroupMember.quantity), 0))
        .join(BuyingGroup, BuyingGroup.id == GroupMember.group_id)
        .where(GroupMember.offer_id == offer.id, GroupMember.customer_id == customer_id,
               BuyingGroup.state.in_(HELD_STATES))) or 0
    if held + quantity > offer.per_customer_limit:
        raise Conflict("limit_reached", f"at most {offer.per_customer_limit} units of this "
                       f"offer per customer ({held} held)", "quantity")
    if quantity > offer.stock_left:
        raise Conflict("offer_sold_out", f"offer {offer.code!r} has {offer.stock_left} "
                       "units left", "quantity")
    offer.stock_left -= quantity


def _insert_member(session: Session, member: GroupMember) -> bool:
    try:
        with session.begin_nested():
            session.add(member)
            session.flush()
    except IntegrityError:
        return False
    return True


def _replay(session: Session, now: datetime, key: str, *, customer_id: int,
            group_id: int | None = None, offer_id: int | None = None,
            leader: bool) -> JoinOut | None:
    """The stored answer to a request filed under ``key``; ``idempotency_key_used`` when
    ``key`` was used for another request."""
    found = _by_key(session, key)
    if found is None:
        return None
    same = (found.customer_id == customer_id and found.is_leader == leader
            and (group_id is None or found.group_id == group_id)
            and (offer_id is None or found.offer_id == offer_id))
    if not same:
        raise Conflict("idempotency_key_used", f"idempotency key {key!r} was used for "
                       "another request", "idempotency_key")
    return _answer(session, now, found, replayed=True)


def open_group(session: Session, clock: Clock, data: OpenIn) -> JoinOut:
    """Open a group on an offer: the customer is its leader and first member and pays the
    undiscounted price. Its deadline is ``hours`` later, or the offer's end if sooner."""
    now = clock.now()
    customer_id = _customer_id(session, data.customer_external_id)
    offer_id = _offer_row(session, data.offer).id
    known = _replay(session, now, data.idempotency_key, customer_id=customer_id,
                    offer_id=offer_id, leader=True)
    if known is not None:
        return known
    offer = _lock(session, GroupOffer, offer_id)
    known = _replay(session, now, data.idempotency_key, customer_id=customer_id,
                    offer_id=offer_id, leader=True)
    if known is not None:  # a twin request finished while we waited for the lock
        return known
    _offer_refusal(offer, now)
    _take_units(session, offer, customer_id, data.quantity)
    deadline = min(now + timedelta(hours=offer.hours), as_utc(offer.ends_at))
    group = BuyingGroup(offer_id=offer.id, leader_customer_id=customer_id, state="open",
                        max_size=offer.max_size, member_count=1, units=data.quantity,
                        opened_at=now, deadline_at=deadline)
    session.add(group)
    session.flush()
    member = GroupMember(group_id=group.id, offer_id=offer.id, customer_id=customer_id,
                         idempotency_key=data.idempotency_key, is_leader=True,
                         quantity=data.quantity, paid_fen=offer.unit_price_fen * data.quantity,
                         discount_fen=0, refunded_fen=0, state="paid", joined_at=now)
    if not _insert_member(session, member):  # the key was taken meanwhile elsewhere
        raise Conflict("idempotency_key_used", f"idempotency key {data.idempotency_key!r} "
                       "was used for another request", "idempotency_key")
    offer.updated_at = now
    session.flush()
    return _answer(session, now, member, replayed=False)


def join_group(session: Session, clock: Clock, data: JoinIn) -> JoinOut:
    """Join an open group and pay the undiscounted price. The member who fills the group
    closes it as succeeded in the same transaction (orders for everyone).

    Refusals: ``group_not_found``, ``group_closed`` (not open, or past its deadline),
    ``group_full``, ``already_joined``, ``offer_paused``, ``offer_not_started``,
    ``offer_ended``, ``limit_reached``, ``offer_sold_out``."""
    now = clock.now()
    customer_id = _customer_id(session, data.customer_external_id)
    known = _replay(session, now, data.idempotency_key, customer_id=customer_id,
                    group_id=data.group_id, leader=False)
    if known is not None:
        return known
    group = _lock(session, BuyingGroup, data.group_id)
    known = _replay(session, now, data.idempotency_key, customer_id=customer_id,
                    group_id=data.group_id, leader=False)
    if known is not None:
        return known
    there = session.scalar(select(GroupMember.id).where(
        GroupMember.group_id == group.id, GroupMember.customer_id == customer_id))
    if there is not None:
        raise Conflict("already_joined", "this customer is already in this group",
                       "customer_external_id")
    if group.member_count >= group.max_size:
        raise Conflict("group_full", f"group {group.id} is full", "group_id")
    if group.state != "open" or now >= as_utc(group.deadline_at):
        raise Conflict("group_closed", f"group {group.id} is no longer open", "group_id")
    offer = _lock(session, GroupOffer, group.offer_id)
    _offer_refusal(offer, now)
    _take_units(session, offer, customer_id, data.quantity)
    member = GroupMember(group_id=group.id, offer_id=offer.id, customer_id=customer_id,
                         idempotency_key=data.idempotency_key, is_leader=False,
                         quantity=data.quantity, paid_fen=offer.unit_price_fen * data.quantity,
                         discount_fen=0, refunded_fen=0, state="paid", joined_at=now)
    if not _insert_member(session, member):  # the key was taken meanwhile elsewhere
        raise Conflict("idempotency_key_used", f"idempotency key {data.idempotency_key!r} "
                       "was used for another request", "idempotency_key")
    group.member_count += 1
    group.units += data.quantity
    offer.updated_at = now
    session.flush()
    if group.member_count >= group.max_size:
        _succeed(session, clock, group, offer, now)
    return _answer(session, now, member, replayed=False)


def _succeed(session: Session, clock: Clock, group: BuyingGroup, offer: GroupOffer,
             now: datetime) -> None:
    """Close ``group`` as succeeded: each member's order at the final tier's discount,
    paid at once; the difference to what the member paid is refunded."""
    tier = _tier_for(offer, group.member_count)
    assert tier is not None
    members = list(session.scalars(select(GroupMember).where(GroupMember.group_id == group.id)
                                   .order_by(GroupMember.id)))
    keys = customer_keys_by_id(session, [m.customer_id for m in members])
    for member in members:
        final = member.paid_fen - member.paid_fen * tier.percent_off // 100
        # The offer's units go back to the catalog row and the order takes them again, in
        # this transaction under the product row's lock: no one else can take them.
        release_stock(session, [(offer.sku, member.quantity)])
        subtotal = get_product(session, CLI_PRINCIPAL, offer.sku).price_fen * member.quantity
        external_id = f"group-{group.id}-{member.id}"
        order, _ = create_order(session, clock, OrderIn(
            external_id=external_id, customer_external_id=keys[member.customer_id],
            lines=[LineIn(sku=offer.sku, quantity=member.quantity)], channel=ORDER_CHANNEL,
            discount_fen=max(0, subtotal - final), coupon_code=None))
        transition_order(session, clock, CLI_PRINCIPAL, external_id, "paid")
        total = order.total_fen if order.total_fen is not None else final
        member.state = "ordered"
        member.discount_fen = member.paid_fen - final
        member.refunded_fen = member.paid_fen - total
        member.order_external_id = external_id
        member.settled_at = now
    group.state = "succeeded"
    group.closed_at = now
    group.tier_size = tier.size
    group.percent_off = tier.percent_off
    session.flush()


def show_group(session: Session, clock: Clock, group_id: int, *,
               principal: Principal = CLI_PRINCIPAL) -> GroupOut:
    """A group with its members, the tier reached and the time left."""
    group = session.get(BuyingGroup, group_id, populate_existing=True)
    offer = session.get(GroupOffer, group.offer_id) if group is not None else None
    if group is None or offer is None or not _visible(principal, offer):
        raise NotFound("group_not_found", f"no group {group_id}", "group_id")
    return _group_outs(session, clock.now(), [group], {offer.id: offer})[0]


def list_groups(session: Session, clock: Clock, offer_code: str, *,
                state: str | None = None, limit: int = 100, offset: int = 0,
                with_members: bool = True,
                principal: Principal = CLI_PRINCIPAL) -> tuple[int, list[GroupOut]]:
    """``(total, page)`` of an offer's groups, newest first, optionally in one state."""
    offer = _offer_row(session, offer_code, principal)
    query = select(BuyingGroup).where(BuyingGroup.offer_id == offer.id)
    if state is not None:
        query = query.where(BuyingGroup.state == state)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = list(session.scalars(query.order_by(BuyingGroup.opened_at.desc(),
                                               BuyingGroup.id.desc())
                                .limit(limit).offset(offset)
                                .execution_options(populate_existing=True)))
    return int(total), _group_outs(session, clock.now(), rows, {offer.id: offer},
                                   with_members=with_members)


# --- closing groups --------------------------------------------------------------------------

def _close(session: Session, clock: Clock, group_id: int, now: datetime,
           report: ExpiryReport) -> None:
    group = _lock(session, BuyingGroup, group_id)
    if group.state != "open" or as_utc(group.deadline_at) > now:
        return  # someone closed it meanwhile
    offer = _lock(session, GroupOffer, group.offer_id)
    if group.member_count >= offer.min_size:
        _succeed(session, clock, group, offer, now)
        report.succeeded += 1
        return
    group.state = "expired"
    group.closed_at = now
    offer.stock_left += group.units
    offer.updated_at = now
    session.flush()
    report.expired += 1


def _refund(session: Session, group_id: int, now: datetime, report: ExpiryReport) -> None:
    group = _lock(session, BuyingGroup, group_id)
    if group.state != "expired":
        return
    for member in session.scalars(select(GroupMember).where(GroupMember.group_id == group_id)):
        member.state = "refunded"
        member.refunded_fen = member.paid_fen
        member.settled_at = now
    group.state = "refunded"
    group.refunded_at = now
    session.flush()
    report.refunded += 1


def _settle(session: Session, offer_id: int, now: datetime, report: ExpiryReport) -> None:
    offer = _lock(session, GroupOffer, offer_id)
    still_open = session.scalar(select(func.count()).select_from(BuyingGroup).where(
        BuyingGroup.offer_id == offer_id, BuyingGroup.state == "open")) or 0
    if offer.settled_at is not None or as_utc(offer.ends_at) > now or still_open:
        return
    if offer.stock_left:
        release_stock(session, [(offer.sku, offer.stock_left)])
    offer.returned_units += offer.stock_left
    offer.stock_left = 0
    offer.settled_at = now
    offer.updated_at = now
    session.flush()
    report.settled_offers += 1


def _each(session: Session, ids: Iterable[int], step: Any, report: ExpiryReport) -> None:
    """Run ``step(id)`` for each id in a savepoint; a refused one is counted and left for
    the next run."""
    for row_id in ids:
        try:
            with session.begin_nested():
                step(row_id)
        except ShequError:
            report.failed += 1


def _ended_offers(session: Session, now: datetime) -> list[int]:
    """Ended offers not settled yet with no open group left."""
    open_group_exists = exists().where(BuyingGroup.offer_id == GroupOffer.id,
                                       BuyingGroup.state == "open")
    return list(session.scalars(select(GroupOffer.id).where(
        GroupOffer.settled_at.is_(None), GroupOffer.ends_at <= now, ~open_group_exists)
        .order_by(GroupOffer.id)))


def expire_due(session: Session, clock: Clock, *, limit: int = EXPIRY_BATCH) -> ExpiryReport:
    """Close up to ``limit`` groups past their deadline (succeeded when they reached the
    smallest tier, else expired), refund up to ``limit`` expired groups, and give the
    leftover stock of ended offers without open groups back to the catalog.

    Idempotent and safe next to joins and other runs: each group is re-read under its lock
    and skipped when someone else closed it first. Everything happens in the caller's
    transaction, which holds the locks it took until it ends: for the API and tests; the
    worker runs :func:`expire_groups`."""
    now = clock.now()
    report = ExpiryReport()
    due = list(session.scalars(select(BuyingGroup.id).where(
        BuyingGroup.state == "open", BuyingGroup.deadline_at <= now)
        .order_by(BuyingGroup.deadline_at, BuyingGroup.id).limit(limit)))
    _each(session, due, lambda gid: _close(session, clock, gid, now, report), report)
    expired = list(session.scalars(select(BuyingGroup.id).where(BuyingGroup.state == "expired")
                                   .order_by(BuyingGroup.id).limit(limit)))
    _each(session, expired, lambda gid: _refund(session, gid, now, report), report)
    ended = _ended_offers(session, now)
    _each(session, ended, lambda oid: _settle(session, oid, now, report), report)
    return report


def expire_groups(services: Services, *, limit: int = 10_000) -> dict[str, int]:
    """The worker job: like :func:`expire_due`, but each group is closed, refunded or
    settled in a transaction of its own, so no run holds one offer's lock while it waits
    for another group's (joins lock the group first, then the offer)."""
    report = ExpiryReport()
    clock = services.clock

    def each(ids: list[int], step: Any) -> None:
        for row_id in ids:
            with transaction(services.sessions, actor="worker:group-expiry",
                             clock=clock) as session:
                _each(session, [row_id], lambda rid, s=session: step(s, rid), report)

    with transaction(services.sessions) as session:
        now = clock.now()
        due = list(session.scalars(select(BuyingGroup.id).where(
            BuyingGroup.state == "open", BuyingGroup.deadline_at <= now)
            .order_by(BuyingGroup.deadline_at, BuyingGroup.id).limit(limit)))
    each(due, lambda s, gid: _close(s, clock, gid, now, report))
    with transaction(services.sessions) as session:
        expired = list(session.scalars(select(BuyingGroup.id).where(
            BuyingGroup.state == "expired").order_by(BuyingGroup.id).limit(limit)))
    each(expired, lambda s, gid: _refund(s, gid, now, report))
    with transaction(services.sessions) as session:
        ended = _ended_offers(session, now)
    each(ended, lambda s, oid: _settle(s, oid, now, report))
    return report.model_dump()


# --- figures and checks ----------------------------------------------------------------------

def _naive(value: datetime) -> np.datetime64:
    return np.datetime64(as_utc(value).astimezone(UTC).replace(tzinfo=None), "us")


def _first_payments(session: Session, now: datetime) -> dict[int, np.datetime64]:
    """Each customer's first paid (still paid) order before ``now``."""
    paid = purchases(session, until=now)
    if not len(paid):
        return {}
    ids, first = np.unique(paid.customer_ids, return_index=True)
    return {int(c): paid.paid_at[i] for c, i in zip(ids, first, strict=True)}


def all_figures(session: Session, clock: Clock, *, codes: Iterable[str] | None = None,
                principal: Principal = CLI_PRINCIPAL) -> dict[str, OfferFigures]:
    """The figures of every offer the caller sees (or of ``codes``), with one pass over
    the paid orders for the new-customer count."""
    now = clock.now()
    query = select(GroupOffer.id, GroupOffer.code)
    if principal.brand_ids is not None:
        query = query.where(GroupOffer.brand_id.in_(sorted(principal.brand_ids)))
    if codes is not None:
        query = query.where(GroupOffer.code.in_(sorted(set(codes))))
    offers = dict(session.execute(query).tuples().all())
    if not offers:
        return {}
    ids = sorted(offers)
    states: dict[int, Counter[str]] = defaultdict(Counter)
    for offer_id, state, count in session.execute(
            select(BuyingGroup.offer_id, BuyingGroup.state, func.count())
            .where(BuyingGroup.offer_id.in_(ids))
            .group_by(BuyingGroup.offer_id, BuyingGroup.state)):
        states[offer_id][state] = int(count)
    members: dict[int, Counter[str]] = defaultdict(Counter)
    joined: dict[int, dict[int, np.datetime64]] = defaultdict(dict)
    formed: dict[int, list[datetime]] = defaultdict(list)  # succeeded groups' join times
    group_facts: dict[int, tuple[int, datetime, int, int]] = {}
    for row in session.execute(
            select(GroupMember.offer_id, GroupMember.group_id, GroupMember.customer_id,
                   GroupMember.joined_at, GroupMember.state, GroupMember.quantity,
                   GroupMember.paid_fen, GroupMember.refunded_fen, GroupMember.discount_fen,
                   BuyingGroup.state.label("group_state"), BuyingGroup.opened_at,
                   BuyingGroup.member_count, BuyingGroup.max_size)
            .join(BuyingGroup, BuyingGroup.id == GroupMember.group_id)
            .where(GroupMember.offer_id.in_(ids))):
        tally = members[row.offer_id]
        tally["members"] += 1
        at = _naive(row.joined_at)
        earliest = joined[row.offer_id].get(row.customer_id)
        if earliest is None or at < earliest:
            joined[row.offer_id][row.customer_id] = at
        if row.group_state == "succeeded":
            formed[row.group_id].append(as_utc(row.joined_at))
            group_facts[row.group_id] = (row.offer_id, as_utc(row.opened_at),
                                         row.member_count, row.max_size)
        if row.state == "ordered":
            tally["orders"] += 1
            tally["units"] += row.quantity
            tally["gmv"] += row.paid_fen - row.refunded_fen
            tally["discount"] += row.discount_fen
    mins = dict(session.execute(select(GroupOffer.id, GroupOffer.min_size)
                                .where(GroupOffer.id.in_(ids))).tuples().all())
    fill: dict[int, list[float]] = defaultdict(list)
    for group_id, (offer_id, opened, count, size) in group_facts.items():
        times = sorted(formed[group_id])
        fill[offer_id].append((times[mins[offer_id] - 1] - opened).total_seconds())
        if count >= size:
            members[offer_id]["filled"] += 1
    first = _first_payments(session, now)
    found: dict[str, OfferFigures] = {}
    for offer_id in ids:
        count, tally = states[offer_id], members[offer_id]
        closed = count["succeeded"] + count["expired"] + count["refunded"]
        new = sum(1 for customer, at in joined[offer_id].items()
                  if customer not in first or first[customer] >= at)
        orders = tally["orders"]
        found[offers[offer_id]] = OfferFigures(
            offer=offers[offer_id], groups_opened=sum(count.values()),
            groups_open=count["open"], groups_succeeded=count["succeeded"],
            groups_filled=tally["filled"],
            groups_expired=count["expired"] + count["refunded"],
            success_rate=count["succeeded"] / closed if closed else None,
            members=tally["members"], successful_members=orders, new_customers=new,
            orders=orders, gmv_fen=tally["gmv"], discount_fen=tally["discount"],
            avg_units=tally["units"] / orders if orders else None,
            avg_order_fen=tally["gmv"] / orders if orders else None,
            avg_fill_seconds=(sum(fill[offer_id]) / len(fill[offer_id])
                              if fill[offer_id] else None))
    return found


def figures(session: Session, clock: Clock, code: str, *,
            principal: Principal = CLI_PRINCIPAL) -> OfferFigures:
    """One offer's figures (see :class:`OfferFigures`)."""
    _offer_row(session, code, principal)
    return all_figures(session, clock, codes=[code], principal=principal)[code]


def invariant_violations(session: Session) -> dict[str, int]:
    """An independent check of the stored rows, every count 0 when all is well:

    * ``over_full_groups``: more members than the group's size;
    * ``member_count_mismatch``: a group's ``member_count`` or ``units`` differ from its
      member rows;
    * ``double_joins``: a customer in the same group twice;
    * ``negative_stock``: an offer with ``stock_left`` below zero;
    * ``stock_mismatch``: ``stock != stock_left + returned_units + units held by members
      of open or succeeded groups``;
    * ``refund_mismatch``: members of refunded groups not refunded in full, members of
      succeeded groups without an order, members of open groups already settled;
    * ``succeeded_below_tier``: a succeeded group smaller than its offer's smallest tier.
    """
    counted = (select(GroupMember.group_id, func.count().label("n"),
                      func.sum(GroupMember.quantity).label("units"))
               .group_by(GroupMember.group_id).subquery())
    mismatch = session.scalar(
        select(func.count()).select_from(BuyingGroup)
        .outerjoin(counted, counted.c.group_id == BuyingGroup.id)
        .where((func.coalesce(counted.c.n, 0) != BuyingGroup.member_count)
               | (func.coalesce(counted.c.units, 0) != BuyingGroup.units))) or 0
    over = session.scalar(
        select(func.count()).select_from(BuyingGroup)
        .outerjoin(counted, counted.c.group_id == BuyingGroup.id)
        .where((BuyingGroup.member_count > BuyingGroup.max_size)
               | (func.coalesce(counted.c.n, 0) > BuyingGroup.max_size))) or 0
    twice = select(GroupMember.group_id).group_by(
        GroupMember.group_id, GroupMember.customer_id).having(func.count() > 1).subquery()
    double = session.scalar(select(func.count()).select_from(twice)) or 0
    negative = session.scalar(select(func.count()).select_from(GroupOffer)
                              .where(GroupOffer.stock_left < 0)) or 0
    held = (select(GroupMember.offer_id, func.sum(GroupMember.quantity).label("units"))
            .join(BuyingGroup, BuyingGroup.id == GroupMember.group_id)
            .where(BuyingGroup.state.in_(HELD_STATES))
            .group_by(GroupMember.offer_id).subquery())
    stock = session.scalar(
        select(func.count()).select_from(GroupOffer)
        .outerjoin(held, held.c.offer_id == GroupOffer.id)
        .where(GroupOffer.stock != GroupOffer.stock_left + GroupOffer.returned_units
               + func.coalesce(held.c.units, 0))) or 0
    bad_refund = session.scalar(
        select(func.count()).select_from(GroupMember)
        .join(BuyingGroup, BuyingGroup.id == GroupMember.group_id)
        .where(and_(BuyingGroup.state == "refunded",
                    (GroupMember.state != "refunded")
                    | (GroupMember.refunded_fen != GroupMember.paid_fen))
               | and_(BuyingGroup.state == "succeeded",
                      (GroupMember.state != "ordered")
                      | GroupMember.order_external_id.is_(None))
               | and_(BuyingGroup.state.in_(("open", "expired")),
                      GroupMember.state != "paid"))) or 0
    below = session.scalar(
        select(func.count()).select_from(BuyingGroup)
        .join(GroupOffer, GroupOffer.id == BuyingGroup.offer_id)
        .where(BuyingGroup.state == "succeeded",
               BuyingGroup.member_count < GroupOffer.min_size)) or 0
    return {"over_full_groups": int(over), "member_count_mismatch": int(mismatch),
            "double_joins": int(double), "negative_stock": int(negative),
            "stock_mismatch": int(stock), "refund_mismatch": int(bad_refund),
            "succeeded_below_tier": int(below)}
