"""Invite tasks ("invite 3 friends to unlock", docs/referrals.md).

A task counts an invitee when they sign up through the invite (``registered``) or, for
``first_paid_order`` tasks, when their first order after the invite is paid inside the
task's window. An invitee does not count, and the reason is kept, when:

* ``self_invite``: the inviter invited themselves;
* ``existing_customer``: the invitee registered more than ``REGISTRATION_GRACE`` before
  the invite, or ordered before it;
* ``shared_device`` / ``shared_address`` / ``shared_payment``: the invitee used a device,
  shipping address or payment account the inviter also used (their devices, the devices,
  addresses and accounts of their orders, the devices they accepted invites on);
* ``outside_window``: the qualifying order was paid after the task ended.

Counting runs under the row lock of the inviter's progress row, and each invitee moves
out of ``pending`` with a conditional UPDATE, so every invitee is counted at most once.
The reward is a points adjustment under the key ``invite:<task>:<inviter>``: the progress
row records it once, and the points ledger would replay the key anyway.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shequ.core.clock import Clock, as_utc
from shequ.core.errors import Conflict, NotFound, ValidationFailed
from shequ.core.permissions import CLI_PRINCIPAL, Principal
from shequ.domains.campaigns.referral_models import Invitee, InviteProgress, InviteTask
from shequ.domains.campaigns.referral_schemas import (
    InviteeOut,
    InviteIn,
    InviteTaskIn,
    InviteTaskOut,
    ProgressOut,
    TaskBoard,
)
from shequ.domains.customers import service as customers
from shequ.domains.loyalty import service as loyalty
from shequ.domains.loyalty.schemas import AdjustIn
from shequ.domains.orders import service as orders
from shequ.domains.orders.service import OrderTransition

__all__ = [
    "REGISTRATION_GRACE", "board", "create_task", "get_task", "list_tasks", "progress",
    "record_invite",
]

REGISTRATION_GRACE = timedelta(hours=24)
"""An invitee who registered longer than this before the invite was already a customer."""
ORDERS_READ = 500
"""How many of a customer's latest orders the abuse checks compare."""
BOARD_LIMIT = 500


def _refuse_partners(principal: Principal) -> None:
    principal.refuse_if_partner("platform_wide_invites", "invite tasks span every brand; "
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


def _task_row(session: Session, code: str) -> InviteTask:
    row = session.scalar(select(InviteTask).where(InviteTask.code == code))
    if row is None:
        raise NotFound("task_not_found", f"no invite task {code!r}", "task")
    return row


# --- tasks ------------------------------------------------------------------------------


def _task_out(session: Session, row: InviteTask) -> InviteTaskOut:
    inviters, counted, rewarded = session.execute(
        select(func.count(InviteProgress.id), func.coalesce(func.sum(InviteProgress.counted), 0),
               func.count(InviteProgress.rewarded_at))
        .where(InviteProgress.task_id == row.id)).one()
    return InviteTaskOut(id=row.id, code=row.code, name=row.name, goal=row.goal,
                         counts=row.counts, starts_at=row.starts_at, ends_at=row.ends_at,
                         reward_points=row.reward_points, created_at=row.created_at,
                         inviters=int(inviters), counted=int(counted), rewarded=int(rewarded))


def _same_terms(row: InviteTask, data: InviteTaskIn) -> bool:
    return (row.name, row.goal, row.counts, as_utc(row.starts_at), as_utc(row.ends_at),
            row.reward_points) == (data.name, data.goal, data.counts, data.starts_at,
                                   data.ends_at, data.reward_points)


def create_task(session: Session, clock: Clock, data: InviteTaskIn, *,
                principal: Principal = CLI_PRINCIPAL) -> tuple[InviteTaskOut, bool]:
    """File a task under its code; ``(task, created)``. The same terms again are a
    replay, other terms under a used code are ``task_exists``."""
    _refuse_partners(principal)
    if data.ends_at <= data.starts_at:
        raise ValidationFailed("window_order", "the task must end after it starts", "ends_at")
    row = InviteTask(**data.model_dump(), created_at=clock.now())
    existing = session.scalar(select(InviteTask).where(InviteTask.code == data.code))
    if existing is None and _insert(session, row):
        return _task_out(session, row), True
    existing = _task_row(session, data.code)
    if not _same_terms(existing, data):
        raise Conflict("task_exists", f"invite task {data.code!r} exists with other terms",
                       "code")
    return _task_out(session, existing), False


def list_tasks(session: Session, *, principal: Principal = CLI_PRINCIPAL
               ) -> list[InviteTaskOut]:
    """Every task, latest start first, with its inviter, counted and rewarded totals."""
    _refuse_partners(principal)
    rows = session.scalars(select(InviteTask).order_by(InviteTask.starts_at.desc(),
                                                       InviteTask.id.desc()))
    return [_task_out(session, row) for row in rows]


def get_task(session: Session, code: str, *, principal: Principal = CLI_PRINCIPAL
             ) -> InviteTaskOut:
    _refuse_partners(principal)
    return _task_out(session, _task_row(session, code))


# --- abuse checks -----------------------------------------------------------------------


def _address(value: str) -> str:
    """An address compared loosely: no spaces or punctuation, lower case."""
    return re.sub(r"[\s,，。.、#\-_/()（）]", "", value).lower()


@dataclass
class Traces:
    """What a customer leaves behind: devices, shipping addresses, payment accounts."""

    devices: set[str] = field(default_factory=set)
    addresses: set[str] = field(default_factory=set)
    payments: set[str] = field(default_factory=set)
    first_order_at: datetime | None = None


def _traces(session: Session, customer_key: str, customer_id: int) -> Traces:
    found = Traces()
    detail = customers.get_customer(session, customer_key)
    found.devices.update(d.external_id for d in detail.devices)
    found.devices.update(i.value for i in detail.identities if i.kind == "device")
    found.devices.update(d for d in session.scalars(
        select(Invitee.device_external_id).where(Invitee.invitee_id == customer_id,
                                                 Invitee.device_external_id.is_not(None)))
        if d is not None)
    page = orders.list_orders(session, CLI_PRINCIPAL, customer=customer_key,
                              limit=ORDERS_READ)
    for order in page.items:
        if order.device_external_id:
            found.devices.add(order.device_external_id)
        if order.shipping_address:
            found.addresses.add(_address(order.shipping_address))
        if order.payment_account:
            found.payments.add(order.payment_account)
        created = as_utc(order.created_at)
        if found.first_order_at is None or created < found.first_order_at:
            found.first_order_at = created
    return found


def _abuse(session: Session, row: Invitee, *, extra_devices: Iterable[str] = ()) -> str | None:
    """Why ``row``'s invitee does not count for its inviter, or None."""
    if row.inviter_id == row.invitee_id:
        return "self_invite"
    keys = customers.customer_keys_by_id(session, [row.inviter_id, row.invitee_id])
    invitee_key = keys[row.invitee_id]
    registered = customers.get_customer(session, invitee_key)
    invited_at = as_utc(row.invited_at)
    since = registered.registered_at or registered.created_at
    theirs = _traces(session, invitee_key, row.invitee_id)
    if as_utc(since) < invited_at - REGISTRATION_GRACE or (
            theirs.first_order_at is not None and theirs.first_order_at < invited_at):
        return "existing_customer"
    mine = _traces(session, keys[row.inviter_id], row.inviter_id)
    theirs.devices.update(extra_devices)
    if theirs.devices & mine.devices:
        return "shared_device"
    if theirs.addresses & mine.addresses:
        return "shared_address"
    if theirs.payments & mine.payments:
        return "shared_payment"
    return None


# --- counting ---------------------------------------------------------------------------


def _lock_progress(session: Session, task_id: int, inviter_id: int) -> InviteProgress:
    """The inviter's progress row, created if new, locked until the transaction ends."""
    where = (InviteProgress.task_id == task_id, InviteProgress.inviter_id == inviter_id)
    if session.scalar(select(InviteProgress.id).where(*where)) is None:
        _insert(session, InviteProgress(task_id=task_id, inviter_id=inviter_id, counted=0))
    query = select(InviteProgress).where(*where).execution_options(populate_existing=True)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    else:  # SQLite: take the database write lock before reading the count
        session.execute(update(InviteProgress).where(*where)
                        .values(counted=InviteProgress.counted)
                        .execution_options(synchronize_session=False))
    row = session.scalar(query)
    assert row is not None
    return row


def _decide(session: Session, clock: Clock, now: datetime, task: InviteTask, row: Invitee,
            reason: str | None, order: str | None = None) -> None:
    """Move a pending invitee to counted or rejected, once; count and reward under the
    inviter's progress lock."""
    progress = _lock_progress(session, task.id, row.inviter_id)
    moved = session.execute(
        update(Invitee).where(Invitee.id == row.id, Invitee.state == "pending")
        .values(state="rejected" if reason else "counted", reason=reason,
                order_external_id=order, decided_at=now)
        .execution_options(synchronize_session=False))
    session.refresh(row)
    if moved.rowcount == 0 or reason is not None:  # type: ignore[attr-defined]
        return
    progress.counted += 1
    session.flush()
    if progress.counted >= task.goal and progress.rewarded_at is None:
        key = f"invite:{task.code}:{row.inviter_id}"
        inviter_key = customers.customer_keys_by_id(session, [row.inviter_id])[row.inviter_id]
        loyalty.adjust(session, clock, AdjustIn(
            customer_external_id=inviter_key, points=task.reward_points,
            reason=f"invite task {task.code} completed ({task.goal} friends)",
            idempotency_key=key))
        progress.rewarded_at, progress.reward_key = now, key
        session.flush()


class _At:
    """A clock standing at one instant (the moment of an order's transition)."""

    def __init__(self, at: datetime) -> None:
        self._at = at

    def now(self) -> datetime:
        return self._at


def _invitee_out(session: Session, row: Invitee, *, replayed: bool = False) -> InviteeOut:
    key = customers.customer_keys_by_id(session, [row.invitee_id])[row.invitee_id]
    return InviteeOut(invitee=key, invited_at=row.invited_at, state=row.state,
                      reason=row.reason, order_external_id=row.order_external_id,
                      decided_at=row.decided_at, replayed=replayed)


def record_invite(session: Session, clock: Clock, task_code: str, data: InviteIn, *,
                  principal: Principal = CLI_PRINCIPAL) -> InviteeOut:
    """File an invitee of a running task: rejected at once when a rule already says it
    cannot count, counted at once on a ``registered`` task, else pending until the
    invitee's first paid order. A customer is one inviter's invitee per task."""
    _refuse_partners(principal)
    now = clock.now()
    task = _task_row(session, task_code)
    inviter_id = _customer_id(session, data.inviter, "inviter")
    invitee_id = _customer_id(session, data.invitee, "invitee")
    where = (Invitee.task_id == task.id, Invitee.invitee_id == invitee_id)
    existing = session.scalar(select(Invitee).where(*where))
    if existing is None:
        if not as_utc(task.starts_at) <= now < as_utc(task.ends_at):
            raise Conflict("task_closed", f"invite task {task.code!r} runs from "
                           f"{task.starts_at.isoformat()} to {task.ends_at.isoformat()}", "task")
        row = Invitee(task_id=task.id, inviter_id=inviter_id, invitee_id=invitee_id,
                      device_external_id=data.device_external_id, invited_at=now,
                      state="pending")
        if _insert(session, row):
            reason = _abuse(session, row, extra_devices=[data.device_external_id]
                            if data.device_external_id else [])
            if reason is not None or task.counts == "registered":
                _decide(session, clock, now, task, row, reason)
            return _invitee_out(session, row)
        existing = session.scalar(select(Invitee).where(*where))
        assert existing is not None
    if existing.inviter_id != inviter_id:
        raise Conflict("already_invited", f"{data.invitee!r} was invited to this task by "
                       "someone else", "invitee")
    return _invitee_out(session, existing, replayed=True)


def _on_order(session: Session, clock: Clock, moved: OrderTransition) -> None:
    """A paid order decides the buyer's pending invites of first-paid-order tasks."""
    if moved.to_status != "paid":
        return
    pending = session.execute(
        select(Invitee, InviteTask).join(InviteTask, InviteTask.id == Invitee.task_id)
        .where(Invitee.invitee_id == moved.customer_id, Invitee.state == "pending",
               InviteTask.counts == "first_paid_order")
        .order_by(Invitee.id)).tuples().all()
    at = as_utc(moved.at)
    for row, task in pending:
        if at < as_utc(row.invited_at):
            continue  # paid before the invite: not the order the task is waiting for
        reason = "outside_window" if at >= as_utc(task.ends_at) else _abuse(session, row)
        _decide(session, _At(at), at, task, row, reason, moved.external_id)


orders.on_transition("campaigns.invites", _on_order)


# --- reads ------------------------------------------------------------------------------


def _progress_out(session: Session, task: InviteTask, inviter_id: int,
                  progress: InviteProgress | None, rows: list[Invitee]) -> ProgressOut:
    keys = customers.customer_keys_by_id(session, [inviter_id, *(r.invitee_id for r in rows)])
    return ProgressOut(
        task=task.code, inviter=keys[inviter_id], goal=task.goal,
        counted=progress.counted if progress else 0,
        rewarded=progress is not None and progress.rewarded_at is not None,
        rewarded_at=progress.rewarded_at if progress else None,
        reward_points=task.reward_points,
        invitees=[InviteeOut(invitee=keys[r.invitee_id], invited_at=r.invited_at,
                             state=r.state, reason=r.reason,
                             order_external_id=r.order_external_id, decided_at=r.decided_at)
                  for r in rows])


def progress(session: Session, task_code: str, inviter: str, *,
             principal: Principal = CLI_PRINCIPAL) -> ProgressOut:
    """An inviter's progress on a task, each invitee with its state and reason."""
    _refuse_partners(principal)
    task = _task_row(session, task_code)
    inviter_id = _customer_id(session, inviter, "inviter")
    found = session.scalar(select(InviteProgress).where(
        InviteProgress.task_id == task.id, InviteProgress.inviter_id == inviter_id))
    rows = list(session.scalars(select(Invitee).where(
        Invitee.task_id == task.id, Invitee.inviter_id == inviter_id).order_by(Invitee.id)))
    return _progress_out(session, task, inviter_id, found, rows)


def board(session: Session, task_code: str, *, principal: Principal = CLI_PRINCIPAL
          ) -> TaskBoard:
    """A task with every inviter's progress, most counted first."""
    _refuse_partners(principal)
    task = _task_row(session, task_code)
    rows = list(session.scalars(select(Invitee).where(Invitee.task_id == task.id)
                                .order_by(Invitee.id).limit(BOARD_LIMIT * 20)))
    by_inviter: dict[int, list[Invitee]] = {}
    for row in rows:
        by_inviter.setdefault(row.inviter_id, []).append(row)
    found = {p.inviter_id: p for p in session.scalars(
        select(InviteProgress).where(InviteProgress.task_id == task.id))}
    shown = [_progress_out(session, task, inviter_id, found.get(inviter_id), listed)
             for inviter_id, listed in by_inviter.items()]
    shown.sort(key=lambda p: (-p.counted, p.inviter))
    return TaskBoard(task=_task_out(session, task), inviters=shown[:BOARD_LIMIT])
