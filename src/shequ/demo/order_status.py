"""Order statuses and consistent status timestamps, as of the end of the window.

A cancelled order was never paid; paid < shipped < completed; a refunded order was paid (and
maybe shipped) but never completed. Times after the window end have not happened yet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shequ.demo import sizes as sz
from shequ.demo.timing import DAY, HOUR, SEC, Bools, Ints, Window, seconds

NONE = -1
NORMAL, RING, BURST = 0, 1, 2
CHANNELS = ("app", "wechat_mini", "h5", "douyin", "web")


@dataclass
class Timeline:
    """Status and status timestamps (-1 = never) of every order."""

    status: list[str]
    paid: Ints
    shipped: Ints
    completed: Ints
    cancelled: Ints
    refunded: Ints


def pay_probability(window: Window, kind: Ints, channel: Ints, created: Ints) -> np.ndarray:
    """Probability that an order gets paid: by channel, cut on the planted drop days."""
    rate = np.array([sz.PAY_RATE_BY_CHANNEL[c] for c in CHANNELS])[channel]
    drop_days = sz.planted_days(window.days).payment_drop
    dropped = np.isin(window.day_index(created), drop_days)
    rate = np.where(dropped, rate * sz.PAYMENT_DROP_FACTOR, rate)
    rate = np.where(kind == RING, sz.RING_PAY_RATE, rate)
    return np.where(kind == BURST, 1.0, rate)


def systematic(rng: np.random.Generator, p: np.ndarray, group: Ints) -> Bools:
    """Bernoulli(``p``) draws with low variance per group (systematic sampling in random order).

    Each row keeps its probability ``p`` but each group gets within one of ``sum(p)`` hits, so
    a day's conversion rate is stable and the planted drop stands out even in small data.
    """
    n = p.size
    order = np.lexsort((rng.random(n), group))
    g, q = group[order], p[order]
    total = np.cumsum(q)
    first = np.r_[True, g[1:] != g[:-1]]
    base = np.maximum.accumulate(np.where(first, total - q, 0.0))
    offset = rng.random(n)[np.maximum.accumulate(np.where(first, np.arange(n), 0))]
    inclusive = total - base + offset
    hit = np.floor(inclusive) > np.floor(inclusive - q)
    out = np.zeros(n, dtype=bool)
    out[order] = hit
    return out


def _uniform_s(rng: np.random.Generator, n: int, low_s: float, high_s: float) -> Ints:
    return seconds(rng.uniform(low_s, high_s, n))


def _refunds(rng: np.random.Generator, kind: Ints, paid: Ints, ship: Ints,
             hi: Ints) -> tuple[Ints, Bools]:
    """Refund time (-1 = none) and whether the refund came before shipping."""
    n = kind.size
    rate = np.select([kind == RING, kind == BURST], [sz.RING_REFUND_RATE, 0.0], sz.REFUND_RATE)
    refund = (paid >= 0) & (rng.random(n) < rate)
    before_ship = refund & (rng.random(n) < 0.3)
    early = paid + ((ship - paid) * rng.uniform(0.1, 0.9, n)).astype(np.int64) // SEC * SEC
    late = ship + _uniform_s(rng, n, 3 * 86400, 9 * 86400)
    at = np.where(before_ship, early, late)
    at = np.where(refund & (at < hi), at, NONE)
    return at.astype(np.int64), before_ship & (at >= 0)


def _status(paid: Ints, shipped: Ints, completed: Ints, cancelled: Ints,
            refunded: Ints) -> list[str]:
    unpaid = np.where(cancelled >= 0, "cancelled", "created")
    paid_status = np.where(shipped >= 0, "shipped", "paid")
    paid_status = np.where(completed >= 0, "completed", paid_status)
    paid_status = np.where(refunded >= 0, "refunded", paid_status)
    return [str(s) for s in np.where(paid < 0, unpaid, paid_status)]


def timeline(rng: np.random.Generator, window: Window, kind: Ints, channel: Ints,
             created: Ints, customer_hi: Ints, burst_review: Ints) -> Timeline:
    """Statuses and timestamps of all orders (``customer_hi``: end of the buyer's activity)."""
    n, end = kind.size, window.end_us
    is_paid = systematic(rng, pay_probability(window, kind, channel, created),
                         window.day_index(created))
    paid = np.where(is_paid, created + seconds(np.clip(rng.lognormal(np.log(45), 0.9, n), 5, 900)),
                    NONE)
    cancel_after = np.where(rng.random(n) < 0.65, 1800 * SEC, _uniform_s(rng, n, 60, 1200))
    cancelled = np.where(~is_paid & (created + cancel_after <= end), created + cancel_after, NONE)
    ship = paid + _uniform_s(rng, n, 4 * 3600, 48 * 3600)
    refunded, before_ship = _refunds(rng, kind, paid, ship, np.minimum(customer_hi, end))
    shipped = np.where(is_paid & ~before_ship & (ship <= end), ship, NONE)
    done = shipped + _uniform_s(rng, n, 2 * 86400, 7 * 86400)
    completed = np.where((shipped >= 0) & (refunded < 0) & (done <= end), done, NONE)
    line = Timeline([], paid.astype(np.int64), shipped.astype(np.int64),
                    completed.astype(np.int64), cancelled.astype(np.int64), refunded)
    _burst_timeline(rng, line, kind == BURST, burst_review, end)
    line.status = _status(line.paid, line.shipped, line.completed, line.cancelled, line.refunded)
    return line


def _burst_timeline(rng: np.random.Generator, line: Timeline, burst: Bools, review: Ints,
                    end: int) -> None:
    """Burst orders ship fast, are delivered before their review and are often refunded."""
    idx = np.flatnonzero(burst)
    n = idx.size
    line.shipped[idx] = line.paid[idx] + _uniform_s(rng, n, 8 * 3600, 30 * 3600)
    refund = rng.random(n) < sz.BURST_REFUND_RATE
    refund_at = np.minimum(review[idx] + _uniform_s(rng, n, 4 * 3600, 3 * 86400), end - HOUR)
    complete_at = review[idx] - _uniform_s(rng, n, 3600, 12 * 3600)
    complete_at = np.maximum(complete_at, line.shipped[idx] + DAY)
    line.refunded[idx] = np.where(refund, refund_at, NONE)
    line.completed[idx] = np.where(refund, NONE, complete_at)
