"""Loyalty use cases: earn, sign in, adjust, redeem, refund, expire, store codes.

Every movement of points (docs/points.md):

* is written once under its idempotency key (unique in ``points_movements``); the same
  request again returns the stored movement (``replayed``), another request under a used
  key is refused with ``idempotency_key_used``;
* is double entry: one entry on the customer's account and the opposite entry on a system
  account (``issued`` for earnings and adjustments, ``redeemed``, ``expired``);
* runs under the customer account's row lock (``SELECT … FOR UPDATE`` on PostgreSQL, the
  write lock taken by a no-op UPDATE on SQLite), which orders every movement of one
  customer, so a balance check and the debit that follows it cannot interleave with
  another debit; the cached balance is updated in the same transaction and a CHECK keeps
  it from going below zero.

Orders earn by themselves: an order moved to ``paid`` earns its points (key
``order:<order>``, the same key as an earn request for it, so a shop that also posts the
earn gets a replay), and a refund takes them back (key ``order-refund:<order>``) as far as
the balance allows; points already spent stay spent and the movement's reason says how
many could not be taken back.

Points live in lots (one per credit) that expire ``POINTS_VALID_DAYS`` after they were
earned. A debit takes points from the lots that expire soonest first, after expiring the
account's lots that are due, so points past their expiry are never spent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shequ.core.clock import Clock
from shequ.core.errors import Conflict, NotFound, ValidationFailed
from shequ.core.permissions import CLI_PRINCIPAL, Principal
from shequ.domains.customers.service import customer_ids_by_key, customer_keys_by_id
from shequ.domains.loyalty import codes
from shequ.domains.loyalty.models import (
    LotUse,
    PointsAccount,
    PointsEntry,
    PointsLot,
    PointsMovement,
    Redemption,
    Reward,
    StoreCode,
)
from shequ.domains.loyalty.schemas import (
    AdjustIn,
    BalanceOut,
    EarnIn,
    EntryOut,
    ExpiryReport,
    LotOut,
    MovementOut,
    RedeemIn,
    RedemptionOut,
    RefundIn,
    RewardIn,
    RewardOut,
    SignInIn,
    StatementPage,
    StoreCodeOut,
    VerifyIn,
    VerifyOut,
)
from shequ.domains.orders.service import OrderTransition, get_order, on_transition

__all__ = [
    "EARN_RULES", "POINTS_VALID_DAYS", "adjust", "balance", "earn", "expire", "ledger_total",
    "list_rewards",
    "put_reward", "redeem", "refund", "show_redemption", "sign_in", "statement",
    "verify_code",
]


@dataclass(frozen=True)
class EarnRule:
    """Points for a deed: fixed ``points``, or one point per ``fen_per_point`` paid."""

    reason: str
    points: int = 0
    fen_per_point: int = 0


#: The earn rules: an order earns 1 point per ¥1 paid (total fen // 100), a review 20, a
#: UGC post 10, a daily sign-in 5 (once per local day).
EARN_RULES: dict[str, EarnRule] = {
    "order": EarnRule("order paid", fen_per_point=100),
    "review": EarnRule("review written", points=20),
    "ugc": EarnRule("post published", points=10),
    "signin": EarnRule("daily sign-in", points=5),
}
POINTS_VALID_DAYS = 365
PAID_STATUSES = frozenset({"paid", "shipped", "completed"})
SHANGHAI = ZoneInfo("Asia/Shanghai")


def _refuse_partners(principal: Principal) -> None:
    principal.refuse_if_partner("platform_wide_points", "points accounts span every brand; "
                                "partners cannot read or move them")


# --- accounts and the ledger ------------------------------------------------------------


def _customer_id(session: Session, external_id: str,
                 attr: str = "customer_external_id") -> int:
    found = customer_ids_by_key(session, [external_id]).get(external_id)
    if found is None:
        raise NotFound("customer_not_found", f"no customer {external_id!r}", attr)
    return int(found)


def _insert(session: Session, row: object) -> bool:
    """Add ``row`` in a savepoint; False when a unique key already holds it."""
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        return False
    return True


SYSTEM_ACCOUNTS = ("issued", "redeemed", "expired")


def _system_accounts(session: Session, now: datetime) -> dict[str, int]:
    """``kind -> account id`` of the system accounts, created when missing.

    Called before any customer account is locked: a transaction that waits for another's
    uncommitted system account then holds no customer lock, so the two cannot deadlock.
    """
    cached: dict[str, int] | None = session.info.get("loyalty_system_accounts")
    if cached is not None:
        return cached
    query = select(PointsAccount.code, PointsAccount.id).where(
        PointsAccount.code.in_(SYSTEM_ACCOUNTS))
    found = dict(session.execute(query).tuples().all())
    for kind in SYSTEM_ACCOUNTS:
        if kind not in found:
            _insert(session, PointsAccount(code=kind, kind=kind, customer_id=None,
                                           balance=None, created_at=now, updated_at=now))
    found = dict(session.execute(query).tuples().all())
    assert set(found) == set(SYSTEM_ACCOUNTS)
    session.info["loyalty_system_accounts"] = found
    return found


def _lock_account(session: Session, customer_id: int, now: datetime) -> PointsAccount:
    """The customer's account, created if new, locked until the transaction ends."""
    _system_accounts(session, now)
    where = PointsAccount.customer_id == customer_id
    if session.scalar(select(PointsAccount.id).where(where)) is None:
        _insert(session, PointsAccount(code=f"customer:{customer_id}", kind="customer",
                                       customer_id=customer_id, balance=0, created_at=now,
                                       updated_at=now))
    query = select(PointsAccount).where(where).execution_options(populate_existing=True)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    else:  # SQLite: take the database write lock now, before reading the balance
        session.execute(update(PointsAccount).where(where)
                        .values(balance=PointsAccount.balance)
                        .execution_options(synchronize_session=False))
    row = session.scalar(query)
    assert row is not None
    return row


def _movement(session: Session, key: str) -> PointsMovement | None:
    return session.scalar(select(PointsMovement).where(PointsMovement.idempotency_key == key)
                          .execution_options(populate_existing=True))


def _movement_out(row: PointsMovement, customer_key: str, *,
                  replayed: bool = False) -> MovementOut:
    return MovementOut(idempotency_key=row.idempotency_key, kind=row.kind,
                       customer_external_id=customer_key,
                       points=row.points if row.credit else -row.points,
                       balance_after=row.balance_after, reason=row.reason,
                       created_at=row.created_at, replayed=replayed)


def _same_or_refuse(row: PointsMovement, kind: str, customer_id: int, *,
                    delta: int | None = None, reason: str | None = None) -> None:
    """Refuse a key stored for another movement: another kind or customer, or (when given)
    other points or another reason."""
    stored = row.points if row.credit else -row.points
    if (row.kind != kind or row.customer_id != customer_id
            or (delta is not None and stored != delta)
            or (reason is not None and row.reason != reason)):
        raise Conflict("idempotency_key_used", f"idempotency key {row.idempotency_key!r} "
                       "was used for another movement", "idempotency_key")


def _write(session: Session, now: datetime, account: PointsAccount, *, kind: str, key: str,
           delta: int, system: str, reason: str) -> PointsMovement:
    """The movement and its two entries (``delta`` on the customer, ``-delta`` on the
    system account); the cached balance follows in the same transaction."""
    assert delta != 0
    assert account.customer_id is not None
    assert account.balance is not None
    after = account.balance + delta
    if after < 0:
        raise Conflict("insufficient_points", f"the balance is {account.balance} points, "
                       f"{-delta} are needed", "points")
    row = PointsMovement(idempotency_key=key, kind=kind, customer_id=account.customer_id,
                         points=abs(delta), credit=delta > 0, balance_after=after,
                         reason=reason, created_at=now)
    if not _insert(session, row):  # a concurrent request of another customer took the key
        raise Conflict("idempotency_key_used", f"idempotency key {key!r} was used for "
                       "another movement", "idempotency_key")
    session.add_all([
        PointsEntry(movement_id=row.id, account_id=account.id, points=delta, created_at=now),
        PointsEntry(movement_id=row.id, account_id=_system_accounts(session, now)[system],
                    points=-delta, created_at=now)])
    account.balance, account.updated_at = after, now
    session.flush()
    return row


def _credit(session: Session, now: datetime, account: PointsAccount, *, kind: str, key: str,
            lots: Sequence[tuple[int, datetime]], system: str, reason: str
            ) -> PointsMovement:
    """Credit ``(points, expires at)`` lots to the account in one movement."""
    row = _write(session, now, account, kind=kind, key=key,
                 delta=sum(points for points, _ in lots), system=system, reason=reason)
    session.add_all(PointsLot(account_id=account.id, movement_id=row.id, points=points,
                              remaining=points, expires_at=expires_at)
                    for points, expires_at in lots)
    session.flush()
    return row


def _expire_due(session: Session, now: datetime, account: PointsAccount) -> tuple[int, int]:
    """Expire the account's lots due at ``now`` (one movement per lot, key
    ``expire:lot:<id>``); (lots, points). The account must be locked."""
    due = list(session.scalars(
        select(PointsLot).where(PointsLot.account_id == account.id, PointsLot.remaining > 0,
                                PointsLot.expires_at <= now)
        .order_by(PointsLot.expires_at, PointsLot.id)
        .execution_options(populate_existing=True)))
    points = 0
    for lot in due:
        movement = _write(session, now, account, kind="expire", key=f"expire:lot:{lot.id}",
                          delta=-lot.remaining, system="expired",
                          reason=f"points earned by movement {lot.movement_id} expired")
        session.add(LotUse(movement_id=movement.id, lot_id=lot.id, points=lot.remaining))
        points += lot.remaining
        lot.remaining, lot.expired_at = 0, now
    session.flush()
    return len(due), points


def _debit(session: Session, now: datetime, account: PointsAccount, *, kind: str, key: str,
           points: int, system: str, reason: str, attr: str) -> PointsMovement:
    """Take ``points`` from the lots that expire soonest (due lots expired first)."""
    _expire_due(session, now, account)
    assert account.balance is not None
    if account.balance < points:
        raise Conflict("insufficient_points", f"the balance is {account.balance} points, "
                       f"{points} are needed", attr)
    row = _write(session, now, account, kind=kind, key=key, delta=-points, system=system,
                 reason=reason)
    need = points
    lots = session.scalars(
        select(PointsLot).where(PointsLot.account_id == account.id, PointsLot.remaining > 0)
        .order_by(PointsLot.expires_at, PointsLot.id)
        .execution_options(populate_existing=True))
    for lot in lots:
        take = min(need, lot.remaining)
        lot.remaining -= take
        session.add(LotUse(movement_id=row.id, lot_id=lot.id, points=take))
        need -= take
        if need == 0:
            break
    if need:  # the lots disagree with the cached balance: never commit that
        raise RuntimeError(f"points account {account.id}: lots hold {points - need} points, "
                           f"the balance says {account.balance + points}")
    session.flush()
    return row


def _earn(session: Session, now: datetime, customer_key: str, *, kind: str, key: str,
          points: int, reason: str) -> MovementOut:
    customer_id = _customer_id(session, customer_key)
    existing = _movement(session, key)
    if existing is None:
        account = _lock_account(session, customer_id, now)
        existing = _movement(session, key)  # a twin may have committed while we waited
        if existing is None:
            expires = now + timedelta(days=POINTS_VALID_DAYS)
            row = _credit(session, now, account, kind=kind, key=key,
                          lots=[(points, expires)], system="issued", reason=reason)
            return _movement_out(row, customer_key)
    _same_or_refuse(existing, kind, customer_id)
    return _movement_out(existing, customer_key, replayed=True)


# --- earning ----------------------------------------------------------------------------


def earn(session: Session, clock: Clock, data: EarnIn, *,
         principal: Principal = CLI_PRINCIPAL) -> MovementOut:
    """Points for a paid order, a review or a UGC post, once per ``<rule>:<reference>``."""
    _refuse_partners(principal)
    rule = EARN_RULES[data.rule]
    key = f"{data.rule}:{data.reference}"
    if data.rule == "order":
        order = get_order(session, principal, data.reference)
        if order.status not in PAID_STATUSES or order.total_fen is None:
            raise ValidationFailed("order_not_paid", f"order {data.reference!r} is "
                                   f"{order.status}: only paid orders earn points", "reference")
        if data.customer_external_id not in (None, order.customer_external_id):
            raise ValidationFailed("customer_mismatch", f"order {data.reference!r} belongs "
                                   "to another customer", "customer_external_id")
        customer_key = order.customer_external_id
        points = order.total_fen // rule.fen_per_point
        if points == 0:
            raise ValidationFailed("no_points", "the order's paid total is under ¥1",
                                   "reference")
    else:
        if data.customer_external_id is None:
            raise ValidationFailed("customer_required", "name the customer who earned the "
                                   "points", "customer_external_id")
        customer_key, points = data.customer_external_id, rule.points
    return _earn(session, clock.now(), customer_key, kind="earn", key=key, points=points,
                 reason=f"{rule.reason}: {data.reference}")


def _on_order(session: Session, clock: Clock, moved: OrderTransition) -> None:
    """Earn when an order is paid; take the points back when it is refunded."""
    if moved.to_status == "paid":
        points = moved.total_fen // EARN_RULES["order"].fen_per_point
        if points > 0:
            customer_key = customer_keys_by_id(session, [moved.customer_id])[moved.customer_id]
            _earn(session, moved.at, customer_key, kind="earn", key=f"order:{moved.external_id}",
                  points=points, reason=f"{EARN_RULES['order'].reason}: {moved.external_id}")
    elif moved.to_status == "refunded":
        _claw_back(session, moved)


def _claw_back(session: Session, moved: OrderTransition) -> None:
    earned = _movement(session, f"order:{moved.external_id}")
    key = f"order-refund:{moved.external_id}"
    if earned is None or _movement(session, key) is not None:
        return
    account = _lock_account(session, moved.customer_id, moved.at)
    if _movement(session, key) is not None:
        return
    _expire_due(session, moved.at, account)
    assert account.balance is not None
    take = min(earned.points, account.balance)
    if take == 0:
        return
    short = earned.points - take
    reason = f"order refunded: {moved.external_id}" + (
        f" ({short} of its {earned.points} points were already spent)" if short else "")
    _debit(session, moved.at, account, kind="adjust", key=key, points=take, system="issued",
           reason=reason, attr="points")


on_transition("loyalty.points", _on_order)


def sign_in(session: Session, clock: Clock, data: SignInIn, *, zone: ZoneInfo = SHANGHAI,
            principal: Principal = CLI_PRINCIPAL) -> MovementOut:
    """The daily sign-in: 5 points once per local day; again that day replays."""
    _refuse_partners(principal)
    now = clock.now()
    day = now.astimezone(zone).date().isoformat()
    rule = EARN_RULES["signin"]
    return _earn(session, now, data.customer_external_id, kind="earn",
                 key=f"signin:{data.customer_external_id}:{day}", points=rule.points,
                 reason=f"{rule.reason}: {day}")


def adjust(session: Session, clock: Clock, data: AdjustIn, *,
           principal: Principal = CLI_PRINCIPAL) -> MovementOut:
    """A manual correction against the ``issued`` account; a debit never goes below 0."""
    _refuse_partners(principal)
    if data.points == 0:
        raise ValidationFailed("points_zero", "an adjustment moves at least one point",
                               "points")
    if data.points > 0:
        return _earn(session, clock.now(), data.customer_external_id, kind="adjust",
                     key=data.idempotency_key, points=data.points, reason=data.reason)
    now = clock.now()
    customer_id = _customer_id(session, data.customer_external_id)
    existing = _movement(session, data.idempotency_key)
    if existing is None:
        account = _lock_account(session, customer_id, now)
        existing = _movement(session, data.idempotency_key)
        if existing is None:
            with session.begin_nested():  # a refusal leaves nothing written
                row = _debit(session, now, account, kind="adjust", key=data.idempotency_key,
                             points=-data.points, system="issued", reason=data.reason,
                             attr="points")
            return _movement_out(row, data.customer_external_id)
    _same_or_refuse(existing, "adjust", customer_id, delta=data.points, reason=data.reason)
    return _movement_out(existing, data.customer_external_id, replayed=True)


# --- rewards ----------------------------------------------------------------------------


def _reward_out(row: Reward, *, created: bool = False) -> RewardOut:
    return RewardOut(code=row.code, name=row.name, kind=row.kind,
                     cost_points=row.cost_points, stock=row.stock, active=row.active,
                     code_valid_days=row.code_valid_days, updated_at=row.updated_at,
                     created=created)


def put_reward(session: Session, clock: Clock, data: RewardIn, *,
               principal: Principal = CLI_PRINCIPAL) -> RewardOut:
    """Create the reward ``data.code`` or replace its terms (stock included)."""
    _refuse_partners(principal)
    now = clock.now()
    values = data.model_dump() | {"updated_at": now}
    if session.scalar(select(Reward.id).where(Reward.code == data.code)) is None \
            and _insert(session, Reward(**values)):
        row = session.scalar(select(Reward).where(Reward.code == data.code))
        assert row is not None
        return _reward_out(row, created=True)
    session.execute(update(Reward).where(Reward.code == data.code).values(**values)
                    .execution_options(synchronize_session=False))
    row = session.scalar(select(Reward).where(Reward.code == data.code)
                         .execution_options(populate_existing=True))
    assert row is not None
    return _reward_out(row)


def list_rewards(session: Session, *, active_only: bool = False,
                 principal: Principal = CLI_PRINCIPAL) -> list[RewardOut]:
    """The catalogue, cheapest first."""
    _refuse_partners(principal)
    query = select(Reward).order_by(Reward.cost_points, Reward.code)
    if active_only:
        query = query.where(Reward.active.is_(True))
    return [_reward_out(row) for row in session.scalars(query)]


# --- redemption -------------------------------------------------------------------------


def _code_out(row: StoreCode, key: bytes) -> StoreCodeOut:
    return StoreCodeOut(code=codes.sign(key, row.nonce, row.expires_at),
                        expires_at=row.expires_at, used_at=row.used_at,
                        store_id=row.store_id, voided=row.voided_at is not None)


def _redemption_out(session: Session, movement: PointsMovement, secret_key: str, *,
                    replayed: bool = False) -> RedemptionOut:
    redemption = session.scalar(select(Redemption).where(Redemption.movement_id == movement.id)
                                .execution_options(populate_existing=True))
    assert redemption is not None
    reward = session.get(Reward, redemption.reward_id)
    assert reward is not None
    code = session.scalar(select(StoreCode).where(StoreCode.redemption_id == redemption.id)
                          .execution_options(populate_existing=True))
    customer_key = customer_keys_by_id(session, [movement.customer_id])[movement.customer_id]
    given_back = (None if redemption.refund_movement_id is None
                  else session.get(PointsMovement, redemption.refund_movement_id))
    return RedemptionOut(
        movement=_movement_out(movement, customer_key), reward=reward.code,
        reward_kind=reward.kind, state=redemption.state,
        store_code=None if code is None else _code_out(code, codes.code_key(secret_key)),
        refund=None if given_back is None else _movement_out(given_back, customer_key),
        replayed=replayed)


def redeem(session: Session, clock: Clock, data: RedeemIn, *, secret_key: str,
           principal: Principal = CLI_PRINCIPAL) -> RedemptionOut:
    """Spend points on a reward, once per idempotency key: stock (when counted) is taken
    under the reward's row lock and never below zero; an offline reward gets a store code
    valid for the reward's ``code_valid_days``."""
    _refuse_partners(principal)
    now = clock.now()
    customer_id = _customer_id(session, data.customer_external_id)
    reward = session.scalar(select(Reward).where(Reward.code == data.reward))
    if reward is None:
        raise NotFound("reward_not_found", f"no reward {data.reward!r}", "reward")
    existing = _movement(session, data.idempotency_key)
    if existing is None:
        account = _lock_account(session, customer_id, now)
        existing = _movement(session, data.idempotency_key)
        if existing is None:
            with session.begin_nested():  # a refusal leaves nothing written
                return _new_redemption(session, now, account, reward, data, secret_key)
    _same_or_refuse(existing, "redeem", customer_id)
    redemption = session.scalar(select(Redemption).where(Redemption.movement_id == existing.id))
    if redemption is None or redemption.reward_id != reward.id:
        raise Conflict("idempotency_key_used", f"idempotency key {data.idempotency_key!r} "
                       "redeemed another reward", "idempotency_key")
    return _redemption_out(session, existing, secret_key, replayed=True)


def _new_redemption(session: Session, now: datetime, account: PointsAccount, reward: Reward,
                    data: RedeemIn, secret_key: str) -> RedemptionOut:
    if not reward.active:
        raise Conflict("reward_inactive", f"reward {reward.code!r} is not offered now",
                       "reward")
    if reward.stock is not None:
        taken = session.execute(update(Reward)
                                .where(Reward.id == reward.id, Reward.stock > 0)
                                .values(stock=Reward.stock - 1)
                                .execution_options(synchronize_session=False))
        if taken.rowcount == 0:  # type: ignore[attr-defined]
            raise Conflict("out_of_stock", f"reward {reward.code!r} is out of stock", "reward")
    movement = _debit(session, now, account, kind="redeem", key=data.idempotency_key,
                      points=reward.cost_points, system="redeemed",
                      reason=f"redeemed {reward.code}", attr="reward")
    redemption = Redemption(movement_id=movement.id, reward_id=reward.id, state="done")
    session.add(redemption)
    session.flush()
    if reward.kind == "offline":
        expires = (now + timedelta(days=reward.code_valid_days)).replace(microsecond=0)
        session.add(StoreCode(redemption_id=redemption.id, nonce=codes.new_nonce(),
                              expires_at=expires))
        session.flush()
    return _redemption_out(session, movement, secret_key)


def show_redemption(session: Session, key: str, *, secret_key: str,
                    principal: Principal = CLI_PRINCIPAL) -> RedemptionOut:
    """A redemption by its idempotency key, with its store code."""
    _refuse_partners(principal)
    movement = _movement(session, key)
    if movement is None or movement.kind != "redeem":
        raise NotFound("redemption_not_found", f"no redemption {key!r}", "redemption_key")
    return _redemption_out(session, movement, secret_key)


def refund(session: Session, clock: Clock, data: RefundIn, *, secret_key: str,
           principal: Principal = CLI_PRINCIPAL) -> RedemptionOut:
    """Give a redemption's points back, once: into new lots with the expiry of the lots
    they came from; stock returns and the store code is voided. A redemption whose store
    code was used is not refunded (``code_used``)."""
    _refuse_partners(principal)
    now = clock.now()
    spent = _movement(session, data.redemption_key)
    if spent is None or spent.kind != "redeem":
        raise NotFound("redemption_not_found", f"no redemption {data.redemption_key!r}",
                       "redemption_key")
    existing = _movement(session, data.idempotency_key)
    if existing is None:
        account = _lock_account(session, spent.customer_id, now)
        existing = _movement(session, data.idempotency_key)
        if existing is None:
            with session.begin_nested():  # a refusal leaves nothing written
                _refund(session, now, account, spent, data)
            return _redemption_out(session, spent, secret_key)
    redemption = session.scalar(select(Redemption).where(Redemption.movement_id == spent.id))
    if existing.kind != "refund" or redemption is None \
            or redemption.refund_movement_id != existing.id:
        raise Conflict("idempotency_key_used", f"idempotency key {data.idempotency_key!r} "
                       "was used for another movement", "idempotency_key")
    return _redemption_out(session, spent, secret_key, replayed=True)


def _refund(session: Session, now: datetime, account: PointsAccount, spent: PointsMovement,
            data: RefundIn) -> None:
    redemption = session.scalar(select(Redemption).where(Redemption.movement_id == spent.id)
                                .execution_options(populate_existing=True))
    assert redemption is not None
    if redemption.state == "refunded":
        raise Conflict("already_refunded", f"redemption {data.redemption_key!r} was refunded "
                       "under another idempotency key", "redemption_key")
    code = session.scalar(select(StoreCode).where(StoreCode.redemption_id == redemption.id)
                          .execution_options(populate_existing=True))
    if code is not None:
        voided = session.execute(update(StoreCode)
                                 .where(StoreCode.id == code.id, StoreCode.used_at.is_(None))
                                 .values(voided_at=now)
                                 .execution_options(synchronize_session=False))
        if voided.rowcount == 0:  # type: ignore[attr-defined]
            raise Conflict("code_used", "the store code of this redemption was used: the "
                           "benefit was handed over", "redemption_key")
    session.execute(update(Reward).where(Reward.id == redemption.reward_id,
                                         Reward.stock.is_not(None))
                    .values(stock=Reward.stock + 1)
                    .execution_options(synchronize_session=False))
    uses = session.execute(select(LotUse.points, PointsLot.expires_at)
                           .join(PointsLot, PointsLot.id == LotUse.lot_id)
                           .where(LotUse.movement_id == spent.id)
                           .order_by(LotUse.id)).tuples().all()
    movement = _credit(session, now, account, kind="refund", key=data.idempotency_key,
                       lots=[(points, expires) for points, expires in uses],
                       system="redeemed", reason=f"refund of {data.redemption_key}")
    redemption.state, redemption.refund_movement_id = "refunded", movement.id
    session.flush()


# --- expiry -----------------------------------------------------------------------------


def expire(session: Session, clock: Clock, *,
           principal: Principal = CLI_PRINCIPAL) -> ExpiryReport:
    """Expire every lot due now, account by account (each under its lock, in id order);
    running it again finds nothing left to expire."""
    _refuse_partners(principal)
    now = clock.now()
    due = session.scalars(select(PointsAccount.customer_id).join(
        PointsLot, PointsLot.account_id == PointsAccount.id)
        .where(PointsLot.remaining > 0, PointsLot.expires_at <= now)
        .group_by(PointsAccount.customer_id).order_by(PointsAccount.customer_id)).all()
    lots = points = customers = 0
    for customer_id in due:
        assert customer_id is not None
        account = _lock_account(session, customer_id, now)
        got_lots, got_points = _expire_due(session, now, account)
        lots, points, customers = lots + got_lots, points + got_points, customers + (got_lots > 0)
    return ExpiryReport(as_of=now, lots=lots, points=points, customers=customers)


# --- reads ------------------------------------------------------------------------------


def balance(session: Session, customer_external_id: str, *,
            principal: Principal = CLI_PRINCIPAL) -> BalanceOut:
    """The cached balance and the lots holding points, soonest to expire first."""
    _refuse_partners(principal)
    customer_id = _customer_id(session, customer_external_id, "customer")
    account = session.scalar(select(PointsAccount)
                             .where(PointsAccount.customer_id == customer_id))
    if account is None:
        return BalanceOut(customer_external_id=customer_external_id, balance=0, lots=[])
    lots = session.scalars(select(PointsLot).where(PointsLot.account_id == account.id,
                                                   PointsLot.remaining > 0)
                           .order_by(PointsLot.expires_at, PointsLot.id))
    return BalanceOut(customer_external_id=customer_external_id, balance=account.balance or 0,
                      lots=[LotOut(points=lot.points, remaining=lot.remaining,
                                   expires_at=lot.expires_at) for lot in lots])


def statement(session: Session, customer_external_id: str, *, before: int | None = None,
              limit: int = 50, principal: Principal = CLI_PRINCIPAL) -> StatementPage:
    """The customer's entries newest first, ``limit`` per page, keyset-paged by entry id."""
    _refuse_partners(principal)
    customer_id = _customer_id(session, customer_external_id, "customer")
    account = session.scalar(select(PointsAccount)
                             .where(PointsAccount.customer_id == customer_id))
    if account is None:
        return StatementPage(customer_external_id=customer_external_id, balance=0,
                             entries=[], next_before=None)
    query = (select(PointsEntry, PointsMovement)
             .join(PointsMovement, PointsMovement.id == PointsEntry.movement_id)
             .where(PointsEntry.account_id == account.id)
             .order_by(PointsEntry.id.desc()).limit(limit + 1))
    if before is not None:
        query = query.where(PointsEntry.id < before)
    rows = session.execute(query).tuples().all()
    entries = [EntryOut(id=entry.id, points=entry.points, kind=movement.kind,
                        idempotency_key=movement.idempotency_key, reason=movement.reason,
                        created_at=movement.created_at) for entry, movement in rows[:limit]]
    return StatementPage(customer_external_id=customer_external_id,
                         balance=account.balance or 0, entries=entries,
                         next_before=entries[-1].id if len(rows) > limit else None)


# --- store codes ------------------------------------------------------------------------


def verify_code(session: Session, clock: Clock, data: VerifyIn, *, secret_key: str,
                principal: Principal = CLI_PRINCIPAL) -> VerifyOut:
    """Accept a store code exactly once. Refusals: ``code_malformed`` / ``code_forged``
    (422), ``code_not_found`` (404), ``code_used``, ``code_void``, ``code_expired`` (409).
    The acceptance is one conditional UPDATE, so of racing verifications one wins."""
    _refuse_partners(principal)
    signed = codes.read(codes.code_key(secret_key), data.code)
    now = clock.now()
    row = session.scalar(select(StoreCode).where(StoreCode.nonce == signed.nonce))
    if row is None:
        raise NotFound("code_not_found", "no redemption holds this code", "code")
    accepted = session.execute(
        update(StoreCode).where(StoreCode.id == row.id, StoreCode.used_at.is_(None),
                                StoreCode.voided_at.is_(None), StoreCode.expires_at > now)
        .values(used_at=now, store_id=data.store_id)
        .execution_options(synchronize_session=False))
    session.refresh(row)
    if accepted.rowcount == 0:  # type: ignore[attr-defined]
        if row.used_at is not None:
            raise Conflict("code_used", f"the code was used at {row.used_at.isoformat()} "
                           f"in store {row.store_id}", "code")
        if row.voided_at is not None:
            raise Conflict("code_void", "the redemption of this code was refunded", "code")
        raise Conflict("code_expired", f"the code expired at {row.expires_at.isoformat()}",
                       "code")
    redemption = session.get(Redemption, row.redemption_id)
    assert redemption is not None
    reward = session.get(Reward, redemption.reward_id)
    movement = session.get(PointsMovement, redemption.movement_id)
    assert reward is not None
    assert movement is not None
    customer_key = customer_keys_by_id(session, [movement.customer_id])[movement.customer_id]
    assert row.used_at is not None
    return VerifyOut(reward=reward.code, reward_name=reward.name,
                     customer_external_id=customer_key, used_at=row.used_at,
                     store_id=data.store_id)


def ledger_total(session: Session) -> int:
    """The sum of every entry of the ledger (zero when every movement balances)."""
    return int(session.scalar(select(func.coalesce(func.sum(PointsEntry.points), 0))) or 0)
