"""The creator fund: rounds with a budget, a per-creator cap and a minimum score, split
when the round closes, and the payout ledger written exactly once.

Split (docs/creators.md): every creator whose score (posts × mean quality over the round's
period) is positive and at least ``min_score`` shares the budget in proportion to score;
a share above the cap is cut to the cap and what it loses goes to the uncapped creators in
proportion to their scores (water-filling), until no share exceeds the cap. Exact shares are
then rounded to whole fen by largest remainder, so the payouts add up to exactly
``min(budget, cap × creators)``.

Closing is idempotent and safe under concurrency: its first statement writes the round row
(PostgreSQL row lock, SQLite write lock), so a concurrent close waits and then finds the
round closed; ``(round, creator)`` is unique in the ledger and the close key is unique.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shequ.core.clock import Clock
from shequ.core.errors import Conflict, NotFound, ValidationFailed
from shequ.core.permissions import CLI_PRINCIPAL, Principal
from shequ.domains.community.academy import refuse_partners
from shequ.domains.community.models import FundPayout, FundRound
from shequ.domains.community.schemas import CloseIn, PayoutOut, RoundIn, RoundOut
from shequ.domains.community.sources import creator_keys, post_stats, score


def split_budget(budget: int, cap: int, scores: Sequence[float]) -> list[int]:
    """Whole-fen payouts for ``scores`` (all positive): proportional to score, none above
    ``cap``, the capped excess redistributed, summing to ``min(budget, cap × len)``.

    Ties of the rounding go to the larger score, then to the earlier position.
    """
    if budget < 0 or cap < 0:
        raise ValueError("budget and cap must not be negative")
    if any(value <= 0 for value in scores):
        raise ValueError("scores must be positive")
    count = len(scores)
    if count == 0:
        return []
    exact = [Fraction(value) for value in scores]
    order = sorted(range(count), key=lambda i: (-exact[i], i))
    capped, left, weight = 0, Fraction(budget), sum(exact)
    # The largest scores hit the cap first: cap them while their share reaches it.
    while capped < count and left * exact[order[capped]] >= cap * weight:
        left -= cap
        weight -= exact[order[capped]]
        capped += 1
    shares = [Fraction(0)] * count
    for position, index in enumerate(order):
        shares[index] = (Fraction(cap) if position < capped
                         else left * exact[index] / weight)
    floors = [int(share) for share in shares]
    total = min(budget, cap * count)
    leftover = total - sum(floors)
    by_remainder = sorted(range(count), key=lambda i: (-(shares[i] - floors[i]), -exact[i], i))
    for index in by_remainder[:leftover]:
        floors[index] += 1
    return floors


def _round_row(session: Session, key: str) -> FundRound:
    row = session.scalar(select(FundRound).where(FundRound.key == key))
    if row is None:
        raise NotFound("round_not_found", f"no fund round {key!r}", "key")
    return row


def _round_out(session: Session, row: FundRound, *, replayed: bool = False,
               payouts_too: bool = True) -> RoundOut:
    payouts = list(session.scalars(select(FundPayout).where(FundPayout.round_id == row.id)
                                   .order_by(FundPayout.amount_fen.desc(),
                                             FundPayout.customer_id))) if payouts_too else []
    keys = creator_keys(session, [payout.customer_id for payout in payouts])
    return RoundOut(
        key=row.key, name=row.name, period_start=row.period_start,
        period_end=row.period_end, budget_fen=row.budget_fen, cap_fen=row.cap_fen,
        min_score=row.min_score, state=row.state,
        created_at=row.created_at, closed_at=row.closed_at, paid_fen=row.paid_fen,
        payouts=[PayoutOut(customer_id=payout.customer_id,
                           creator_external_id=keys.get(payout.customer_id),
                           score=payout.score, amount_fen=payout.amount_fen)
                 for payout in payouts],
        replayed=replayed)


def _same(row: FundRound, data: RoundIn) -> bool:
    return (row.name, row.period_start, row.period_end, row.budget_fen, row.cap_fen,
            row.min_score) == (data.name, data.period_start, data.period_end,
                               data.budget_fen, data.cap_fen, data.min_score)


def create_round(session: Session, clock: Clock, data: RoundIn, *,
                 principal: Principal = CLI_PRINCIPAL) -> RoundOut:
    """Open a round under the client's ``key``. The same request again returns the stored
    round (``replayed``); a different round under a used key is refused."""
    refuse_partners(principal)
    if data.period_end > clock.now():
        raise ValidationFailed("period_not_over", "period_end lies in the future: a round "
                               "covers a period that has ended", "period_end")
    existing = session.scalar(select(FundRound).where(FundRound.key == data.key))
    if existing is None:
        row = FundRound(key=data.key, name=data.name, period_start=data.period_start,
                        period_end=data.period_end, budget_fen=data.budget_fen,
                        cap_fen=data.cap_fen, min_score=data.min_score, state="open",
                        created_at=clock.now(), paid_fen=0)
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
            return _round_out(session, row)
        except IntegrityError:  # a concurrent request stored the key first
            existing = session.scalar(select(FundRound).where(FundRound.key == data.key))
            if existing is None:
                raise
    if not _same(existing, data):
        raise Conflict("round_key_taken", f"round {data.key!r} exists with other terms",
                       "key")
    return _round_out(session, existing, replayed=True)


def show_round(session: Session, key: str, *,
               principal: Principal = CLI_PRINCIPAL) -> RoundOut:
    """A round with its payouts, largest first."""
    refuse_partners(principal)
    return _round_out(session, _round_row(session, key))


def list_rounds(session: Session, *, principal: Principal = CLI_PRINCIPAL) -> list[RoundOut]:
    """Every round, newest period first, without payouts."""
    refuse_partners(principal)
    rows = session.scalars(select(FundRound).order_by(FundRound.period_end.desc(),
                                                      FundRound.id.desc()))
    return [_round_out(session, row, payouts_too=False) for row in rows]


def close_round(session: Session, clock: Clock, key: str, data: CloseIn, *,
                principal: Principal = CLI_PRINCIPAL) -> RoundOut:
    """Split the budget and write the payouts once. Closing again with the same
    idempotency key returns the same payouts (``replayed``); another key is refused."""
    refuse_partners(principal)
    # Lock first: concurrent closes of this round run one after the other.
    locked = session.execute(update(FundRound).where(FundRound.key == key)
                             .values(state=FundRound.state)
                             .execution_options(synchronize_session=False))
    if locked.rowcount == 0:  # type: ignore[attr-defined]
        raise NotFound("round_not_found", f"no fund round {key!r}", "key")
    row = _round_row(session, key)
    session.refresh(row)
    if row.state == "closed":
        if row.close_key != data.idempotency_key:
            raise Conflict("round_closed", f"round {key!r} was closed under another "
                           "idempotency key", "idempotency_key")
        return _round_out(session, row, replayed=True)
    used = session.scalar(select(FundRound.key)
                          .where(FundRound.close_key == data.idempotency_key))
    if used is not None:
        raise Conflict("idempotency_key_used", f"this idempotency key closed round {used!r}",
                       "idempotency_key")
    figures = post_stats(session, row.period_start, row.period_end)
    eligible = sorted((customer_id, score(stats)) for customer_id, stats in figures.items()
                      if score(stats) > 0 and score(stats) >= row.min_score
                      and stats.creator_external_id is not None)
    amounts = split_budget(row.budget_fen, row.cap_fen, [value for _, value in eligible])
    now = clock.now()
    session.add_all(FundPayout(round_id=row.id, customer_id=customer_id, score=value,
                               amount_fen=amount, created_at=now)
                    for (customer_id, value), amount in zip(eligible, amounts, strict=True))
    row.state, row.close_key, row.closed_at = "closed", data.idempotency_key, now
    row.paid_fen = sum(amounts)
    session.flush()
    return _round_out(session, row)
