"""Loyalty reads for the console and the shop app: ledger-wide totals with the
double-entry check, movements per month, reward figures, the largest balances, a
customer's statement with running balances, and redemptions with their code's state.

Nothing here writes. The movements themselves are ``service``'s; these queries only sum
and list them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel
from sqlalchemy import ColumnElement, case, func, or_, select
from sqlalchemy.orm import Session

from shequ.core.errors import NotFound, ValidationFailed
from shequ.core.permissions import CLI_PRINCIPAL, Principal
from shequ.domains.customers.service import customer_ids_by_key, customer_keys_by_id
from shequ.domains.loyalty import codes
from shequ.domains.loyalty.models import (
    PointsAccount,
    PointsEntry,
    PointsMovement,
    Redemption,
    Reward,
    StoreCode,
)
from shequ.domains.loyalty.schemas import MovementKind, RewardKind

__all__ = [
    "CodeInfo", "CodeState", "LedgerTotals", "MonthMovements", "RedemptionPage", "RedemptionRow",
    "RewardFigures", "StatementRow", "StatementView", "TopBalance", "customer_redemptions",
    "describe_code", "ledger_totals", "monthly_movements", "recent_redemptions", "reward_figures",
    "statement", "top_balances",
]

CodeState = Literal["none", "unused", "used", "void", "expired"]
MAX_MONTHS = 36


def _refuse_partners(principal: Principal) -> None:
    principal.refuse_if_partner("platform_wide_points", "points accounts span every brand; "
                                "partners cannot read or move them")


class LedgerTotals(BaseModel):
    """The whole ledger. ``issued``, ``redeemed`` and ``expired`` are the system accounts'
    balances (net: clawbacks and negative adjustments reduce ``issued``, refunds reduce
    ``redeemed``); ``outstanding`` is the sum of the customers' cached balances, the points
    the shop still owes. Balanced: every entry sums to zero, each movement's entries sum to
    zero and each cached balance equals its entries, so ``issued - redeemed - expired ==
    outstanding``."""

    issued: int
    redeemed: int
    expired: int
    outstanding: int
    customer_entries: int
    entries_total: int
    movements: int
    unbalanced_movements: int
    balance_mismatches: int
    accounts: int
    accounts_with_points: int

    @property
    def balanced(self) -> bool:
        return (self.entries_total == 0 and self.unbalanced_movements == 0
                and self.balance_mismatches == 0
                and self.issued - self.redeemed - self.expired == self.outstanding)


class MonthMovements(BaseModel):
    """What moved in one local calendar month, by kind (all counts positive points)."""

    month: date
    earned: int = 0
    adjusted_in: int = 0
    adjusted_out: int = 0
    redeemed: int = 0
    refunded: int = 0
    expired: int = 0
    movements: int = 0

    @property
    def net(self) -> int:
        """The change in what customers hold."""
        return (self.earned + self.adjusted_in + self.refunded
                - self.adjusted_out - self.redeemed - self.expired)


class RewardFigures(BaseModel):
    """A reward with its stock and what it was redeemed for (refunded ones apart)."""

    code: str
    name: str
    kind: RewardKind
    cost_points: int
    stock: int | None
    active: bool
    code_valid_days: int
    redemptions: int
    refunded: int
    points: int
    """Points spent on redemptions that were not refunded."""


class TopBalance(BaseModel):
    customer_external_id: str
    balance: int


class StatementRow(BaseModel):
    """One entry of a customer's account with the balance right after it."""

    id: int
    created_at: datetime
    kind: MovementKind
    idempotency_key: str
    reason: str
    points: int
    balance_after: int


class StatementView(BaseModel):
    """A page of a customer's entries, newest first. ``older``: the ``before`` cursor of
    the next page; ``newer``: the ``after`` cursor of the previous one (None at the ends)."""

    customer_external_id: str
    balance: int
    rows: list[StatementRow]
    older: int | None
    newer: int | None


class RedemptionRow(BaseModel):
    """A redemption as lists show it; the code text itself is on the redemption."""

    id: int
    idempotency_key: str
    customer_external_id: str
    reward: str
    reward_name: str
    reward_kind: RewardKind
    points: int
    state: Literal["done", "refunded"]
    created_at: datetime
    code_state: CodeState
    code_expires_at: datetime | None
    used_at: datetime | None
    store_id: str | None


class RedemptionPage(BaseModel):
    """Redemptions newest first; ``next_before`` pages on."""

    items: list[RedemptionRow]
    next_before: int | None


# --- the ledger ---------------------------------------------------------------------------


def ledger_totals(session: Session, *, principal: Principal = CLI_PRINCIPAL) -> LedgerTotals:
    """The system accounts, the customers' balances and the double-entry checks."""
    _refuse_partners(principal)
    by_kind = dict(session.execute(
        select(PointsAccount.kind, func.coalesce(func.sum(PointsEntry.points), 0))
        .join(PointsEntry, PointsEntry.account_id == PointsAccount.id)
        .group_by(PointsAccount.kind)).tuples().all())
    cached = session.execute(
        select(func.coalesce(func.sum(PointsAccount.balance), 0), func.count(),
               func.count().filter(PointsAccount.balance > 0))
        .where(PointsAccount.kind == "customer")).one()
    per_movement = (select(PointsEntry.movement_id).group_by(PointsEntry.movement_id)
                    .having(or_(func.sum(PointsEntry.points) != 0, func.count() < 2))
                    .subquery())
    per_account = (select(PointsEntry.account_id.label("account_id"),
                          func.sum(PointsEntry.points).label("points"))
                   .group_by(PointsEntry.account_id).subquery())
    mismatched = session.scalar(
        select(func.count()).select_from(PointsAccount)
        .outerjoin(per_account, per_account.c.account_id == PointsAccount.id)
        .where(PointsAccount.kind == "customer",
               PointsAccount.balance != func.coalesce(per_account.c.points, 0)))
    # A movement without any entry is unbalanced too.
    bare = session.scalar(select(func.count()).select_from(PointsMovement).where(
        ~select(PointsEntry.id).where(PointsEntry.movement_id == PointsMovement.id).exists()))
    return LedgerTotals(
        issued=-int(by_kind.get("issued", 0)), redeemed=int(by_kind.get("redeemed", 0)),
        expired=int(by_kind.get("expired", 0)), outstanding=int(cached[0]),
        customer_entries=int(by_kind.get("customer", 0)),
        entries_total=int(sum(by_kind.values())),
        movements=int(session.scalar(select(func.count()).select_from(PointsMovement)) or 0),
        unbalanced_movements=int(session.scalar(select(func.count()).select_from(per_movement))
                                 or 0) + int(bare or 0),
        balance_mismatches=int(mismatched or 0), accounts=int(cached[1]),
        accounts_with_points=int(cached[2]))


def _month_starts(now: datetime, zone: ZoneInfo, months: int) -> list[date]:
    """The first days of the last ``months`` local months, oldest first (this one last)."""
    today = now.astimezone(zone).date()
    index = today.year * 12 + today.month - 1
    return [date(i // 12, i % 12 + 1, 1) for i in range(index - months + 1, index + 1)]


def monthly_movements(session: Session, now: datetime, zone: ZoneInfo, *, months: int = 12,
                      principal: Principal = CLI_PRINCIPAL) -> list[MonthMovements]:
    """Points moved per local calendar month over the last ``months`` months (this one
    included, up to ``now``), newest first; months without movements show zeros."""
    _refuse_partners(principal)
    months = max(1, min(months, MAX_MONTHS))
    starts = _month_starts(now, zone, months)
    bounds = [datetime.combine(day, datetime.min.time(), zone).astimezone(UTC)
              for day in starts]
    created = PointsMovement.created_at
    bucket = case(*[(created < bound, i) for i, bound in enumerate(bounds[1:])],
                  else_=len(bounds) - 1)
    rows = session.execute(
        select(bucket.label("bucket"), PointsMovement.kind, PointsMovement.credit,
               func.sum(PointsMovement.points), func.count())
        .where(created >= bounds[0], created <= now)
        .group_by(bucket, PointsMovement.kind, PointsMovement.credit)).tuples().all()
    found = [MonthMovements(month=day) for day in starts]
    for index, kind, credit, points, count in rows:
        month = found[int(index)]
        field = {"earn": "earned", "redeem": "redeemed", "refund": "refunded",
                 "expire": "expired"}.get(kind) or ("adjusted_in" if credit else "adjusted_out")
        setattr(month, field, getattr(month, field) + int(points))
        month.movements += int(count)
    return found[::-1]


def reward_figures(session: Session, *, principal: Principal = CLI_PRINCIPAL
                   ) -> list[RewardFigures]:
    """Every reward with its stock and redemptions, the most redeemed first."""
    _refuse_partners(principal)
    counts: dict[int, dict[str, tuple[int, int]]] = {}
    for reward_id, state, count, points in session.execute(
            select(Redemption.reward_id, Redemption.state, func.count(),
                   func.coalesce(func.sum(PointsMovement.points), 0))
            .join(PointsMovement, PointsMovement.id == Redemption.movement_id)
            .group_by(Redemption.reward_id, Redemption.state)).tuples():
        counts.setdefault(reward_id, {})[state] = (int(count), int(points))
    found = []
    for reward in session.scalars(select(Reward)):
        mine = counts.get(reward.id, {})
        done, spent = mine.get("done", (0, 0))
        found.append(RewardFigures(
            code=reward.code, name=reward.name, kind=reward.kind,
            cost_points=reward.cost_points, stock=reward.stock, active=reward.active,
            code_valid_days=reward.code_valid_days, redemptions=done,
            refunded=mine.get("refunded", (0, 0))[0], points=spent))
    return sorted(found, key=lambda r: (-r.redemptions, r.cost_points, r.code))


def top_balances(session: Session, *, limit: int = 10,
                 principal: Principal = CLI_PRINCIPAL) -> list[TopBalance]:
    """The customers holding the most points."""
    _refuse_partners(principal)
    rows = session.execute(
        select(PointsAccount.customer_id, PointsAccount.balance)
        .where(PointsAccount.kind == "customer", PointsAccount.balance > 0)
        .order_by(PointsAccount.balance.desc(), PointsAccount.customer_id)
        .limit(limit)).tuples().all()
    keys = customer_keys_by_id(session, [int(cid) for cid, _ in rows if cid is not None])
    return [TopBalance(customer_external_id=keys[int(cid)], balance=int(balance or 0))
            for cid, balance in rows if cid is not None]


# --- a customer -----------------------------------------------------------------------------


def _customer_id(session: Session, customer_external_id: str) -> int:
    found = customer_ids_by_key(session, [customer_external_id]).get(customer_external_id)
    if found is None:
        raise NotFound("customer_not_found", f"no customer {customer_external_id!r}",
                       "customer")
    return int(found)


def statement(session: Session, customer_external_id: str, *, before: int | None = None,
              after: int | None = None, limit: int = 20,
              principal: Principal = CLI_PRINCIPAL) -> StatementView:
    """A page of the customer's entries newest first with the balance after each, keyset
    paged by entry id: ``before`` (older than) or ``after`` (newer than), newest page when
    neither is given."""
    _refuse_partners(principal)
    customer_id = _customer_id(session, customer_external_id)
    account = session.scalar(select(PointsAccount)
                             .where(PointsAccount.customer_id == customer_id))
    if account is None:
        return StatementView(customer_external_id=customer_external_id, balance=0, rows=[],
                             older=None, newer=None)
    query = (select(PointsEntry, PointsMovement)
             .join(PointsMovement, PointsMovement.id == PointsEntry.movement_id)
             .where(PointsEntry.account_id == account.id))
    if after is not None:
        query = query.where(PointsEntry.id > after).order_by(PointsEntry.id)
    else:
        if before is not None:
            query = query.where(PointsEntry.id < before)
        query = query.order_by(PointsEntry.id.desc())
    got = session.execute(query.limit(limit + 1)).tuples().all()
    more = len(got) > limit
    page = got[:limit]
    if after is not None:
        page = page[::-1]
    rows = [StatementRow(id=entry.id, created_at=movement.created_at, kind=movement.kind,
                         idempotency_key=movement.idempotency_key, reason=movement.reason,
                         points=entry.points, balance_after=movement.balance_after)
            for entry, movement in page]
    if not rows:
        return StatementView(customer_external_id=customer_external_id,
                             balance=account.balance or 0, rows=[], older=None, newer=None)

    account_id = account.id

    def exists(condition: ColumnElement[bool]) -> bool:
        return session.scalar(select(PointsEntry.id).where(
            PointsEntry.account_id == account_id, condition).limit(1)) is not None

    older = rows[-1].id if (more if after is None else exists(PointsEntry.id < rows[-1].id)) \
        else None
    newer = rows[0].id if (more if after is not None else
                           before is not None and exists(PointsEntry.id > rows[0].id)) \
        else None
    return StatementView(customer_external_id=customer_external_id,
                         balance=account.balance or 0, rows=rows, older=older, newer=newer)


def _code_state(code: StoreCode | None, now: datetime) -> CodeState:
    if code is None:
        return "none"
    if code.used_at is not None:
        return "used"
    if code.voided_at is not None:
        return "void"
    return "expired" if code.expires_at <= now else "unused"


def _redemptions(session: Session, now: datetime, where: list[ColumnElement[bool]],
                 before: int | None, limit: int) -> RedemptionPage:
    query = (select(Redemption, PointsMovement, Reward, StoreCode)
             .join(PointsMovement, PointsMovement.id == Redemption.movement_id)
             .join(Reward, Reward.id == Redemption.reward_id)
             .outerjoin(StoreCode, StoreCode.redemption_id == Redemption.id)
             .order_by(Redemption.id.desc()).limit(limit + 1))
    if where:
        query = query.where(*where)
    if before is not None:
        query = query.where(Redemption.id < before)
    got = session.execute(query).tuples().all()
    page = got[:limit]
    keys = customer_keys_by_id(session, sorted({m.customer_id for _, m, _, _ in page}))
    items = [RedemptionRow(
        id=redemption.id, idempotency_key=movement.idempotency_key,
        customer_external_id=keys[movement.customer_id], reward=reward.code,
        reward_name=reward.name, reward_kind=reward.kind, points=movement.points,
        state=redemption.state, created_at=movement.created_at,
        code_state=_code_state(code, now),
        code_expires_at=None if code is None else code.expires_at,
        used_at=None if code is None else code.used_at,
        store_id=None if code is None else code.store_id)
        for redemption, movement, reward, code in page]
    return RedemptionPage(items=items,
                          next_before=items[-1].id if len(got) > limit else None)


def recent_redemptions(session: Session, now: datetime, *, before: int | None = None,
                       limit: int = 20, principal: Principal = CLI_PRINCIPAL
                       ) -> RedemptionPage:
    """Every customer's redemptions, newest first."""
    _refuse_partners(principal)
    return _redemptions(session, now, [], before, limit)


def customer_redemptions(session: Session, customer_external_id: str, now: datetime, *,
                         before: int | None = None, limit: int = 20,
                         principal: Principal = CLI_PRINCIPAL) -> RedemptionPage:
    """One customer's redemptions (the shop app's "my vouchers"), newest first."""
    _refuse_partners(principal)
    customer_id = _customer_id(session, customer_external_id)
    return _redemptions(session, now, [PointsMovement.customer_id == customer_id], before,
                        limit)


class CodeInfo(BaseModel):
    """What a genuine store code belongs to and where it stands."""

    redemption_key: str
    customer_external_id: str
    reward: str
    reward_name: str
    state: CodeState
    expires_at: datetime
    used_at: datetime | None
    store_id: str | None


def describe_code(session: Session, text: str, now: datetime, *, secret_key: str,
                  principal: Principal = CLI_PRINCIPAL) -> CodeInfo | None:
    """The redemption a genuinely signed code belongs to, or None for a malformed, forged
    or unknown code. Reads only: accepting a code is ``service.verify_code``."""
    _refuse_partners(principal)
    try:
        signed = codes.read(codes.code_key(secret_key), text)
    except ValidationFailed:
        return None
    found = session.execute(
        select(StoreCode, PointsMovement, Reward)
        .join(Redemption, Redemption.id == StoreCode.redemption_id)
        .join(PointsMovement, PointsMovement.id == Redemption.movement_id)
        .join(Reward, Reward.id == Redemption.reward_id)
        .where(StoreCode.nonce == signed.nonce)).tuples().first()
    if found is None:
        return None
    code, movement, reward = found
    key = customer_keys_by_id(session, [movement.customer_id])[movement.customer_id]
    return CodeInfo(redemption_key=movement.idempotency_key, customer_external_id=key,
                    reward=reward.code, reward_name=reward.name,
                    state=_code_state(code, now), expires_at=code.expires_at,
                    used_at=code.used_at, store_id=code.store_id)
