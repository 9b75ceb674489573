"""Referral links and two-level commissions (分销, docs/referrals.md).

* A promoter shares ``/r/<code>``. A customer arriving by it is *bound* to that promoter
  if they were bound to no one yet (first link wins, permanently: the referral tree and
  the promoter's own referrer come from bindings), and *attributed* to it for the rule's
  ``attribution_days`` (the latest arrival in force wins).
* When an order is paid inside an attribution, commission accrues: level 1 to the
  attributed promoter, level 2 to that promoter's own referrer (their binding), at the
  rule's rates — never a third level, and never on anything but a paid sale (a CHECK
  keeps ``level IN (1, 2)``). No one earns on their own order.
* Commission is ``pending`` until ``return_days`` after the order is completed; the
  settlement job then moves it to ``settled`` and credits the promoter's balance. A
  refund claws it back: pending commission is simply cancelled, settled commission
  becomes a negative entry on the balance.

Order transitions arrive through ``orders.service.on_transition`` inside the
transaction that moves the order. Every effect has a natural unique key (one commission
per order and level, one ledger entry per commission and kind) and state changes are
conditional on the current state under the commission's row lock, so the same
transition delivered twice changes nothing and racing refunds and settlements touch
the balance once.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shequ.core.clock import Clock, as_utc
from shequ.core.db import transaction
from shequ.core.errors import Conflict, NotFound, ValidationFailed
from shequ.core.permissions import CLI_PRINCIPAL, Principal
from shequ.core.web import Services
from shequ.domains.campaigns.referral_models import (
    ReferralAttribution,
    ReferralBinding,
    ReferralCommission,
    ReferralEntry,
    ReferralPromoter,
    ReferralRule,
)
from shequ.domains.campaigns.referral_schemas import (
    AttributionOut,
    ClickIn,
    CommissionOut,
    EntryOut,
    LinkOut,
    PromoterIn,
    PromoterRow,
    RuleIn,
    RuleOut,
    StatementOut,
    TreeNode,
    TreeOrder,
    TreeOut,
)
from shequ.domains.customers import service as customers
from shequ.domains.orders import service as orders
from shequ.domains.orders.service import OrderTransition

__all__ = [
    "DEFAULT_RULE", "LEVELS", "click", "commissions_of_order", "current_rule", "link",
    "list_promoters", "make_promoter", "put_rule", "settle_commissions",
    "statement", "tree",
]

LEVELS = 2
"""Commission goes two levels up and never further (docs/referrals.md, "Why two levels")."""
DEFAULT_RULE = RuleIn(level1_bp=1000, level2_bp=300, attribution_days=7, return_days=7)
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8
TREE_LIMIT = 200
STATEMENT_LIMIT = 200
ORDERS_SHOWN = 50


def _refuse_partners(principal: Principal) -> None:
    principal.refuse_if_partner("platform_wide_referrals", "referrals span every brand; "
                                "partners cannot read or change them")


def _insert(session: Session, row: object) -> bool:
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        return False
    return True


def _customer_id(session: Session, key: str, attr: str) -> int:
    found = customers.customer_ids_by_key(session, [key]).get(key)
    if found is None:
        raise NotFound("customer_not_found", f"no customer {key!r}", attr)
    return int(found)


def _key(session: Session, customer_id: int) -> str:
    return customers.customer_keys_by_id(session, [customer_id])[customer_id]


# --- rules ------------------------------------------------------------------------------


def _rule_row(session: Session) -> ReferralRule | None:
    return session.scalar(select(ReferralRule).order_by(ReferralRule.id.desc()).limit(1))


def current_rule(session: Session, *, principal: Principal = CLI_PRINCIPAL) -> RuleOut:
    """The terms in force (the defaults until staff set some)."""
    _refuse_partners(principal)
    row = _rule_row(session)
    if row is None:
        return RuleOut(**DEFAULT_RULE.model_dump(), id=None, created_at=None,
                       created_by="default")
    return RuleOut(id=row.id, level1_bp=row.level1_bp, level2_bp=row.level2_bp,
                   attribution_days=row.attribution_days, return_days=row.return_days,
                   created_at=row.created_at, created_by=row.created_by)


def put_rule(session: Session, clock: Clock, data: RuleIn, *,
             principal: Principal = CLI_PRINCIPAL) -> RuleOut:
    """New terms from now on; commission already accrued keeps the rates it used."""
    _refuse_partners(principal)
    if data.level2_bp > data.level1_bp:
        raise ValidationFailed("level2_above_level1", "the level-2 rate may not exceed the "
                               "level-1 rate", "level2_bp")
    session.add(ReferralRule(**data.model_dump(), created_at=clock.now(),
                             created_by=principal.actor))
    session.flush()
    return current_rule(session)


# --- promoters, links, clicks ------------------------------------------------------------


def _promoter_by_customer(session: Session, customer_id: int) -> ReferralPromoter | None:
    return session.scalar(select(ReferralPromoter)
                          .where(ReferralPromoter.customer_id == customer_id)
                          .execution_options(populate_existing=True))


def _promoter_row(session: Session, customer: str, attr: str = "customer") -> ReferralPromoter:
    row = _promoter_by_customer(session, _customer_id(session, customer, attr))
    if row is None:
        raise NotFound("promoter_not_found", f"{customer!r} is not a promoter", attr)
    return row


def _referrer_of(session: Session, customer_id: int) -> ReferralPromoter | None:
    """The promoter a customer is bound to (who brought them first)."""
    return session.scalar(select(ReferralPromoter).join(
        ReferralBinding, ReferralBinding.promoter_id == ReferralPromoter.id)
        .where(ReferralBinding.customer_id == customer_id))


def _link_out(session: Session, row: ReferralPromoter, *, created: bool = False) -> LinkOut:
    referrer = _referrer_of(session, row.customer_id)
    return LinkOut(customer=_key(session, row.customer_id), code=row.code,
                   path=f"/r/{row.code}",
                   referrer=None if referrer is None else _key(session, referrer.customer_id),
                   balance_fen=row.balance_fen, created_at=row.created_at, created=created)


def make_promoter(session: Session, clock: Clock, data: PromoterIn, *,
                  principal: Principal = CLI_PRINCIPAL) -> LinkOut:
    """Make a customer a promoter with a link code (``data.code`` or a random one);
    asking again returns the same link."""
    _refuse_partners(principal)
    customer_id = _customer_id(session, data.customer, "customer")
    existing = _promoter_by_customer(session, customer_id)
    if existing is None:
        for _attempt in range(5):
            code = data.code or "".join(secrets.choice(CODE_ALPHABET)
                                        for _ in range(CODE_LENGTH))
            row = ReferralPromoter(customer_id=customer_id, code=code, balance_fen=0,
                                   created_at=clock.now())
            if _insert(session, row):
                return _link_out(session, row, created=True)
            existing = _promoter_by_customer(session, customer_id)
            if existing is not None:
                break
            if data.code is not None:
                raise Conflict("code_taken", f"link code {data.code!r} is taken", "code")
        else:
            raise Conflict("code_taken", "no free link code found; try again", "code")
    assert existing is not None
    if data.code is not None and existing.code != data.code:
        raise Conflict("already_promoter", f"{data.customer!r} promotes with code "
                       f"{existing.code!r}", "code")
    return _link_out(session, existing)


def link(session: Session, customer: str, *, principal: Principal = CLI_PRINCIPAL) -> LinkOut:
    """A promoter's link and balance."""
    _refuse_partners(principal)
    return _link_out(session, _promoter_row(session, customer))


def click(session: Session, clock: Clock, data: ClickIn, *,
          principal: Principal = CLI_PRINCIPAL) -> AttributionOut:
    """A customer arrived by ``/r/<code>``: attribute them to its promoter for the rule's
    attribution window and bind them to it if they are bound to no one yet."""
    _refuse_partners(principal)
    now = clock.now()
    promoter = session.scalar(select(ReferralPromoter).where(ReferralPromoter.code == data.code))
    if promoter is None:
        raise NotFound("code_not_found", f"no referral link {data.code!r}", "code")
    customer_id = _customer_id(session, data.customer, "customer")
    if promoter.customer_id == customer_id:
        raise ValidationFailed("self_referral", "a promoter cannot arrive by their own link",
                               "customer")
    rule = current_rule(session)
    row = ReferralAttribution(customer_id=customer_id, promoter_id=promoter.id, clicked_at=now,
                              expires_at=now + timedelta(days=rule.attribution_days))
    session.add(row)
    if session.scalar(select(ReferralBinding.id)
                      .where(ReferralBinding.customer_id == customer_id)) is None:
        _insert(session, ReferralBinding(customer_id=customer_id, promoter_id=promoter.id,
                                         bound_at=now))
    session.flush()
    bound = _referrer_of(session, customer_id)
    assert bound is not None
    return AttributionOut(customer=data.customer, promoter=_key(session, promoter.customer_id),
                          code=promoter.code, clicked_at=row.clicked_at,
                          expires_at=row.expires_at,
                          bound_to=_key(session, bound.customer_id))


# --- accrual, completion, refunds --------------------------------------------------------


def _attributed(session: Session, customer_id: int, at: datetime) -> ReferralPromoter | None:
    """The promoter of the customer's latest arrival whose window holds ``at``."""
    return session.scalar(
        select(ReferralPromoter).join(ReferralAttribution,
                                      ReferralAttribution.promoter_id == ReferralPromoter.id)
        .where(ReferralAttribution.customer_id == customer_id,
               ReferralAttribution.clicked_at <= at, ReferralAttribution.expires_at > at)
        .order_by(ReferralAttribution.clicked_at.desc(), ReferralAttribution.id.desc())
        .limit(1))


def _accrue(session: Session, moved: OrderTransition) -> None:
    at = as_utc(moved.at)
    if session.scalar(select(ReferralCommission.id)
                      .where(ReferralCommission.order_id == moved.order_id)) is not None:
        return  # this payment was heard before
    first = _attributed(session, moved.customer_id, at)
    if first is None or first.customer_id == moved.customer_id:
        return
    chain = [first]
    second = _referrer_of(session, first.customer_id)
    if second is not None and second.id != first.id \
            and second.customer_id != moved.customer_id:
        chain.append(second)
    rule = current_rule(session)
    rates = (rule.level1_bp, rule.level2_bp)
    for level, promoter in enumerate(chain[:LEVELS], start=1):
        amount = moved.total_fen * rates[level - 1] // 10_000
        if amount <= 0:
            continue
        _insert(session, ReferralCommission(
            order_id=moved.order_id, order_external_id=moved.external_id,
            buyer_id=moved.customer_id, promoter_id=promoter.id, level=level,
            base_fen=moved.total_fen, rate_bp=rates[level - 1], amount_fen=amount,
            return_days=rule.return_days, state="pending", accrued_at=at))


def _locking(session: Session, query: Any, where: Any) -> Any:
    """``query`` locking the commissions it reads: ``FOR UPDATE`` on PostgreSQL; on SQLite
    a no-op UPDATE of the same rows takes the database write lock before the read."""
    if session.get_bind().dialect.name == "postgresql":
        return query.with_for_update()
    session.execute(update(ReferralCommission).where(where)
                    .values(state=ReferralCommission.state)
                    .execution_options(synchronize_session=False))
    return query


def _locked_commissions(session: Session, order_id: int) -> Sequence[ReferralCommission]:
    where = ReferralCommission.order_id == order_id
    query = (select(ReferralCommission).where(where)
             .order_by(ReferralCommission.id).execution_options(populate_existing=True))
    return session.scalars(_locking(session, query, where)).all()


def _move_balance(session: Session, promoter_id: int, delta: int) -> int:
    """Add ``delta`` to the promoter's balance in one statement; the new balance."""
    after = session.execute(
        update(ReferralPromoter).where(ReferralPromoter.id == promoter_id)
        .values(balance_fen=ReferralPromoter.balance_fen + delta)
        .returning(ReferralPromoter.balance_fen)
        .execution_options(synchronize_session=False)).scalar_one()
    return int(after)


def _entry(session: Session, now: datetime, row: ReferralCommission, kind: str,
           delta: int) -> None:
    after = _move_balance(session, row.promoter_id, delta)
    session.add(ReferralEntry(promoter_id=row.promoter_id, commission_id=row.id, kind=kind,
                              amount_fen=delta, balance_after=after, created_at=now))
    session.flush()


def _claw_back(session: Session, moved: OrderTransition) -> None:
    at = as_utc(moved.at)
    for row in _locked_commissions(session, moved.order_id):
        if row.state == "clawed_back":
            continue
        if row.state == "settled":
            _entry(session, at, row, "clawback", -row.amount_fen)
        row.state, row.clawed_back_at = "clawed_back", at
    session.flush()


def _completed(session: Session, moved: OrderTransition) -> None:
    at = as_utc(moved.at)
    for row in _locked_commissions(session, moved.order_id):
        if row.state == "pending" and row.settle_after is None:
            row.settle_after = at + timedelta(days=row.return_days)
    session.flush()


def _on_order(session: Session, clock: Clock, moved: OrderTransition) -> None:
    """Accrue on paid, start the return window on completed, claw back on refunded."""
    if moved.to_status == "paid":
        _accrue(session, moved)
    elif moved.to_status == "completed":
        _completed(session, moved)
    elif moved.to_status == "refunded":
        _claw_back(session, moved)


orders.on_transition("campaigns.referrals", _on_order)


# --- settlement -------------------------------------------------------------------------


def _settle_one(session: Session, now: datetime, commission_id: int) -> int:
    """Settle one commission if it is still pending and due; the fen credited."""
    where = ReferralCommission.id == commission_id
    query = (select(ReferralCommission).where(where)
             .execution_options(populate_existing=True))
    row = session.scalar(_locking(session, query, where))
    if row is None or row.state != "pending" or row.settle_after is None \
            or as_utc(row.settle_after) > now:
        return 0
    row.state, row.settled_at = "settled", now
    _entry(session, now, row, "settle", row.amount_fen)
    return int(row.amount_fen)


def _due(session: Session, now: datetime) -> list[int]:
    return list(session.scalars(
        select(ReferralCommission.id).where(ReferralCommission.state == "pending",
                                            ReferralCommission.settle_after <= now)
        .order_by(ReferralCommission.id)))


def settle_commissions(services: Services) -> dict[str, Any]:
    """The settlement job (also behind the API and console button): settle every pending
    commission whose return window has passed, each in its own short transaction. A
    refund locks its order's commissions, then the promoters' balances; a settlement
    holding one commission and one balance at a time cannot close a cycle with it (one
    transaction settling many could: it would hold balances while waiting for the
    commission a refund holds). Run again, it finds nothing new."""
    now = services.clock.now()
    with transaction(services.sessions) as session:
        due = _due(session, now)
    settled = amount = 0
    for commission_id in due:
        with transaction(services.sessions, actor="job:referrals") as session:
            got = _settle_one(session, now, commission_id)
        settled, amount = settled + (got > 0), amount + got
    return {"as_of": now.isoformat(), "settled": settled, "settled_fen": amount}


# --- reads ------------------------------------------------------------------------------


def _commission_out(row: ReferralCommission, keys: dict[int, str],
                    promoter_keys: dict[int, str]) -> CommissionOut:
    return CommissionOut(id=row.id, order_external_id=row.order_external_id,
                         buyer=keys[row.buyer_id], promoter=promoter_keys[row.promoter_id],
                         level=row.level, base_fen=row.base_fen, rate_bp=row.rate_bp,
                         amount_fen=row.amount_fen, state=row.state,
                         accrued_at=row.accrued_at, settle_after=row.settle_after,
                         settled_at=row.settled_at, clawed_back_at=row.clawed_back_at)


def _promoter_keys(session: Session, ids: set[int]) -> dict[int, str]:
    rows = session.execute(select(ReferralPromoter.id, ReferralPromoter.customer_id)
                           .where(ReferralPromoter.id.in_(sorted(ids)))).tuples().all()
    keys = customers.customer_keys_by_id(session, [c for _, c in rows])
    return {p: keys[c] for p, c in rows}


def commissions_of_order(session: Session, order_external_id: str, *,
                         principal: Principal = CLI_PRINCIPAL) -> list[CommissionOut]:
    """The commission an order earned, level 1 first."""
    _refuse_partners(principal)
    rows = list(session.scalars(select(ReferralCommission)
                                .where(ReferralCommission.order_external_id == order_external_id)
                                .order_by(ReferralCommission.level)))
    keys = customers.customer_keys_by_id(session, [r.buyer_id for r in rows])
    promoters = _promoter_keys(session, {r.promoter_id for r in rows})
    return [_commission_out(r, keys, promoters) for r in rows]


def _sums(session: Session, promoter_id: int, buyer_ids: list[int] | None = None
          ) -> dict[str, int]:
    query = (select(ReferralCommission.state, func.coalesce(func.sum(
        ReferralCommission.amount_fen), 0)).where(ReferralCommission.promoter_id == promoter_id)
        .group_by(ReferralCommission.state))
    if buyer_ids is not None:
        query = query.where(ReferralCommission.buyer_id.in_(buyer_ids))
    found = {state: int(total) for state, total in session.execute(query).tuples()}
    return {state: found.get(state, 0) for state in ("pending", "settled", "clawed_back")}


def statement(session: Session, customer: str, *, principal: Principal = CLI_PRINCIPAL
              ) -> StatementOut:
    """A promoter's balance, pending commission, ledger entries and commissions."""
    _refuse_partners(principal)
    promoter = _promoter_row(session, customer)
    entries = session.execute(
        select(ReferralEntry, ReferralCommission)
        .join(ReferralCommission, ReferralCommission.id == ReferralEntry.commission_id)
        .where(ReferralEntry.promoter_id == promoter.id)
        .order_by(ReferralEntry.id.desc()).limit(STATEMENT_LIMIT)).tuples().all()
    rows = list(session.scalars(select(ReferralCommission)
                                .where(ReferralCommission.promoter_id == promoter.id)
                                .order_by(ReferralCommission.id.desc())
                                .limit(STATEMENT_LIMIT)))
    keys = customers.customer_keys_by_id(session, [r.buyer_id for r in rows])
    sums = _sums(session, promoter.id)
    return StatementOut(
        promoter=customer, code=promoter.code, balance_fen=promoter.balance_fen,
        pending_fen=sums["pending"], settled_fen=sums["settled"],
        clawed_back_fen=sums["clawed_back"],
        entries=[EntryOut(id=e.id, kind=e.kind, amount_fen=e.amount_fen,
                          balance_after=e.balance_after, order_external_id=c.order_external_id,
                          level=c.level, created_at=e.created_at) for e, c in entries],
        commissions=[_commission_out(r, keys, {promoter.id: customer}) for r in rows])


def _node(session: Session, root_id: int, customer_id: int, key: str, level: int,
          bound_at: datetime, children: list[TreeNode]) -> TreeNode:
    page = orders.list_orders(session, CLI_PRINCIPAL, customer=key, limit=ORDERS_SHOWN)
    earned = {r.order_id: r for r in session.scalars(
        select(ReferralCommission).where(ReferralCommission.promoter_id == root_id,
                                         ReferralCommission.buyer_id == customer_id))}
    shown = [TreeOrder(order_external_id=o.external_id, status=o.status,
                       total_fen=o.total_fen or 0, paid_at=o.paid_at,
                       commission_fen=earned[o.id].amount_fen if o.id in earned else 0,
                       commission_state=earned[o.id].state if o.id in earned else None)
             for o in page.items]
    sums = _sums(session, root_id, [customer_id])
    return TreeNode(
        customer=key, level=level, bound_at=bound_at,
        is_promoter=_promoter_by_customer(session, customer_id) is not None,
        orders=shown, paid_fen=sum(o.total_fen for o in shown
                                   if o.status in ("paid", "shipped", "completed")),
        commission_pending_fen=sums["pending"], commission_settled_fen=sums["settled"],
        commission_clawed_back_fen=sums["clawed_back"], children=children)


def _bound_to(session: Session, promoter_id: int) -> list[tuple[int, datetime]]:
    return list(session.execute(
        select(ReferralBinding.customer_id, ReferralBinding.bound_at)
        .where(ReferralBinding.promoter_id == promoter_id)
        .order_by(ReferralBinding.bound_at, ReferralBinding.id).limit(TREE_LIMIT)).tuples())


def tree(session: Session, customer: str, *, principal: Principal = CLI_PRINCIPAL) -> TreeOut:
    """The promoter's referral tree two levels down: the customers bound to them and,
    for those who promote too, the customers bound to those; each with their orders and
    the commission they earned this promoter."""
    _refuse_partners(principal)
    root = _promoter_row(session, customer)
    first = _bound_to(session, root.id)
    keys = customers.customer_keys_by_id(session, [c for c, _ in first])
    nodes: list[TreeNode] = []
    level2 = 0
    for customer_id, bound_at in first:
        children: list[TreeNode] = []
        own = _promoter_by_customer(session, customer_id)
        if own is not None:
            second = _bound_to(session, own.id)
            second_keys = customers.customer_keys_by_id(session, [c for c, _ in second])
            children = [_node(session, root.id, c, second_keys[c], 2, at, [])
                        for c, at in second]
            level2 += len(children)
        nodes.append(_node(session, root.id, customer_id, keys[customer_id], 1, bound_at,
                           children))
    referrer = _referrer_of(session, root.customer_id)
    sums = _sums(session, root.id)
    return TreeOut(promoter=customer, code=root.code,
                   referrer=None if referrer is None else _key(session, referrer.customer_id),
                   level1=len(nodes), level2=level2, commission_pending_fen=sums["pending"],
                   commission_settled_fen=sums["settled"],
                   commission_clawed_back_fen=sums["clawed_back"], nodes=nodes)


def list_promoters(session: Session, *, principal: Principal = CLI_PRINCIPAL,
                   limit: int = 200) -> list[PromoterRow]:
    """Promoters, highest balance first, with how many customers they bound."""
    _refuse_partners(principal)
    bound = (select(ReferralBinding.promoter_id, func.count(ReferralBinding.id).label("n"))
             .group_by(ReferralBinding.promoter_id).subquery())
    pending = (select(ReferralCommission.promoter_id,
                      func.sum(ReferralCommission.amount_fen).label("fen"))
               .where(ReferralCommission.state == "pending")
               .group_by(ReferralCommission.promoter_id).subquery())
    rows = session.execute(
        select(ReferralPromoter, func.coalesce(bound.c.n, 0), func.coalesce(pending.c.fen, 0))
        .outerjoin(bound, bound.c.promoter_id == ReferralPromoter.id)
        .outerjoin(pending, pending.c.promoter_id == ReferralPromoter.id)
        .order_by(ReferralPromoter.balance_fen.desc(), ReferralPromoter.id)
        .limit(limit)).tuples().all()
    keys = customers.customer_keys_by_id(session, [p.customer_id for p, _, _ in rows])
    parents = dict(session.execute(
        select(ReferralBinding.customer_id, ReferralPromoter.customer_id)
        .join(ReferralPromoter, ReferralPromoter.id == ReferralBinding.promoter_id)
        .where(ReferralBinding.customer_id.in_([p.customer_id for p, _, _ in rows])))
        .tuples().all())
    parent_keys = customers.customer_keys_by_id(session, parents.values())
    return [PromoterRow(customer=keys[p.customer_id], code=p.code,
                        referrer=parent_keys.get(parents[p.customer_id])
                        if p.customer_id in parents else None,
                        bound=int(n), balance_fen=p.balance_fen, pending_fen=int(fen))
            for p, n, fen in rows]
