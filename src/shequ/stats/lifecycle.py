"""Customer lifecycle stages from behaviour: pure, vectorised over customers (docs/lifecycle.md).

The ladder is ``new → active → paying → loyal → advocate``; ``dormant`` is the sixth state,
outside the ladder, for customers who lapsed. A stage is judged for one day ``d`` from the
behaviour up to the end of ``d``, with trailing windows ``(d - window, d]`` in whole days.
Precedence from the top (the first rule that holds wins):

1. ``advocate``: engaged, paying, and at least ``advocate_conversions`` conversions it caused
   (UGC that converted, referrals) in the trailing ``advocate_days``;
2. ``loyal``: engaged and at least ``loyal_orders`` paid orders in the trailing
   ``paying_days``;
3. ``paying``: engaged and at least ``paying_orders`` paid orders in the trailing
   ``paying_days``;
4. ``new``: registered within the trailing ``new_days``;
5. ``active``: engaged (any event or order in the trailing ``engaged_days``);
6. ``dormant``: everyone else.

Customers not yet registered on ``d`` have no stage: :data:`ABSENT`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

IntArray = NDArray[np.int64]
StageArray = NDArray[np.int8]

STAGES = ("new", "active", "paying", "loyal", "advocate", "dormant")
"""Stage codes; a stage's index in this tuple is its number in stage arrays."""
NEW, ACTIVE, PAYING, LOYAL, ADVOCATE, DORMANT = range(len(STAGES))
ABSENT = -1
"""The stage number of a customer not registered yet on the day judged."""
LADDER = STAGES[:5]


@dataclass(frozen=True, slots=True)
class LifecycleConfig:
    """Windows (whole days) and thresholds of the stage rules; defaults in docs/lifecycle.md."""

    new_days: int = 30
    engaged_days: int = 30
    paying_days: int = 180
    paying_orders: int = 1
    loyal_orders: int = 3
    advocate_days: int = 90
    advocate_conversions: int = 1
    conversion_days: int = 7

    def __post_init__(self) -> None:
        for name in ("new_days", "engaged_days", "paying_days", "paying_orders",
                     "loyal_orders", "advocate_days", "advocate_conversions",
                     "conversion_days"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.loyal_orders <= self.paying_orders:
            raise ValueError(f"loyal_orders ({self.loyal_orders}) must exceed "
                             f"paying_orders ({self.paying_orders})")

    @property
    def lookback_days(self) -> int:
        """How far before the first judged day behaviour can still matter."""
        return max(self.new_days, self.engaged_days, self.paying_days,
                   self.advocate_days + self.conversion_days)


DEFAULT_CONFIG = LifecycleConfig()


@dataclass(frozen=True, slots=True)
class StageFeatures:
    """One day's behaviour per customer, arrays aligned by customer.

    ``days_since_registration`` is ``d - registration day`` (0 = registered on ``d``;
    negative = not registered yet); the counts are over each rule's trailing window.
    """

    days_since_registration: IntArray
    activity: IntArray
    paid_orders: IntArray
    conversions: IntArray


def trailing_counts(owners: ArrayLike, days: ArrayLike, as_of: int, window: int,
                    population: int, until: ArrayLike | None = None) -> IntArray:
    """How many rows each owner ``0..population-1`` has with a day in
    ``(as_of - window, as_of]``; with ``until``, a row stops counting from its ``until``
    day on (an order refunded that day). ``owners`` and ``days`` are parallel arrays."""
    owner = np.asarray(owners, dtype=np.int64)
    day = np.asarray(days, dtype=np.int64)
    counted = (day > as_of - window) & (day <= as_of)
    if until is not None:
        counted &= np.asarray(until, dtype=np.int64) > as_of
    return np.bincount(owner[counted], minlength=population).astype(np.int64)


def classify(features: StageFeatures, config: LifecycleConfig = DEFAULT_CONFIG) -> StageArray:
    """The stage number (index into :data:`STAGES`, or :data:`ABSENT`) of each customer."""
    registered = features.days_since_registration >= 0
    engaged = features.activity > 0
    paying = engaged & (features.paid_orders >= config.paying_orders)
    rules = (
        (paying & (features.conversions >= config.advocate_conversions), ADVOCATE),
        (engaged & (features.paid_orders >= config.loyal_orders), LOYAL),
        (paying, PAYING),
        (features.days_since_registration < config.new_days, NEW),
        (engaged, ACTIVE),
    )
    stages = np.full(features.days_since_registration.shape, DORMANT, dtype=np.int8)
    # Applied from the lowest precedence up, so a higher rule overwrites a lower one.
    for holds, stage in reversed(rules):
        stages[holds] = stage
    stages[~registered] = ABSENT
    return stages


def transition_matrix(before: ArrayLike, after: ArrayLike) -> IntArray:
    """6×6 counts: row = stage on the earlier day, column = stage on the later day.

    ``before`` and ``after`` are stage numbers aligned by customer; a customer absent on
    either day (:data:`ABSENT`) is not counted (see :func:`entered`).
    """
    old = np.asarray(before, dtype=np.int64)
    new = np.asarray(after, dtype=np.int64)
    if old.shape != new.shape:
        raise ValueError(f"before has shape {old.shape}, after {new.shape}")
    present = (old >= 0) & (new >= 0)
    size = len(STAGES)
    flat = np.bincount(old[present] * size + new[present], minlength=size * size)
    return flat.reshape(size, size).astype(np.int64)


def entered(before: ArrayLike, after: ArrayLike) -> IntArray:
    """Per stage of the later day, customers absent on the earlier day (newly registered)."""
    old = np.asarray(before, dtype=np.int64)
    new = np.asarray(after, dtype=np.int64)
    arrived = (old < 0) & (new >= 0)
    return np.bincount(new[arrived], minlength=len(STAGES)).astype(np.int64)


def stage_counts(stages: ArrayLike) -> IntArray:
    """Customers per stage (absent customers not counted)."""
    values = np.asarray(stages, dtype=np.int64)
    return np.bincount(values[values >= 0], minlength=len(STAGES)).astype(np.int64)
