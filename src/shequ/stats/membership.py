"""Membership tiers: who qualifies for which tier, and the daily transition with a grace period.

Conventions:

- Tiers are small integers: ``0`` = not a member, then ``1..len(TIERS)`` in the order of
  :data:`TIERS` (``1`` = silver, ``2`` = gold, ``3`` = black_gold).
- Days are whole day numbers (for example ``date.toordinal()`` of the business-time-zone
  day); :data:`NO_GRACE` in a ``grace_until`` array means "no grace period running".
- **Qualification** (:func:`assign_tiers`): a value qualifies for a tier when it is at least
  that tier's threshold; the tier assigned is the highest one qualified for.
- **Transition** (:func:`step`), applied once per evaluated day to every member, with
  ``target`` the tier the member qualifies for that day:

  1. ``target >= current``: the member holds ``target`` from that day on (an upgrade takes
     effect at once) and any grace period running is cancelled.
  2. ``target < current`` and no grace running: a grace period of ``grace_days`` of the
     *current* tier starts; the member keeps the tier and ``grace_until = today +
     grace_days``. With ``grace_days == 0`` the member drops at once to ``target``.
  3. ``target < current`` and grace running with ``today < grace_until``: nothing changes.
  4. ``target < current`` and ``today >= grace_until`` (the grace has run out): the member
     drops straight to ``target``, the tier qualified for *on that day*, however many
     levels below (black_gold can fall to silver or to no tier in one step); no new grace
     period starts for the lower tier.

  So ``grace_until`` is the first day on which the member no longer holds the tier unless
  they qualify again before it. Days may be skipped between evaluations: the rules only
  compare ``today`` with ``grace_until``. After every step the member holds a tier above
  ``target`` exactly when a grace period is running, and applying the same step again
  changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

TIERS: Final = ("silver", "gold", "black_gold")
NO_GRACE: Final = int(np.iinfo(np.int64).min)

#: Reason codes of :func:`change_reasons`, by position (``0`` = no change).
CHANGE_REASONS: Final = ("none", "upgrade", "downgrade", "grace_started", "grace_cancelled")

TierArray = NDArray[np.int8]
DayArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]


class Transition(NamedTuple):
    """The state after one :func:`step`, aligned with its inputs."""

    tier: TierArray
    grace_until: DayArray
    changed: BoolArray


def assign_tiers(values: ArrayLike, thresholds: Sequence[float]) -> TierArray:
    """The highest tier each value qualifies for: ``0`` below the first threshold, ``k``
    when ``value >= thresholds[k - 1]`` (thresholds strictly ascending, one per tier)."""
    cuts = np.asarray(thresholds, dtype=np.float64)
    if cuts.ndim != 1 or len(cuts) == 0:
        raise ValueError("thresholds must be a non-empty sequence of numbers")
    if len(cuts) > np.iinfo(np.int8).max:
        raise ValueError(f"thresholds has {len(cuts)} entries, at most 127 tiers fit")
    if not np.isfinite(cuts).all():
        raise ValueError("thresholds must be finite numbers")
    if (np.diff(cuts) <= 0).any():
        raise ValueError(f"thresholds must be strictly ascending, got {list(cuts)}")
    data = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if data.ndim != 1:
        raise ValueError("values must be one-dimensional")
    if np.isnan(data).any():
        raise ValueError("values must not contain NaN")
    return np.searchsorted(cuts, data, side="right").astype(np.int8)


def _grace_lengths(grace_days: int | Sequence[int], tiers: int) -> DayArray:
    """Grace days per held tier, index ``0`` (no tier) unused."""
    lengths = np.atleast_1d(np.asarray(grace_days, dtype=np.int64))
    if lengths.ndim != 1 or len(lengths) not in (1, tiers):
        raise ValueError(f"grace_days must be one number or one per tier ({tiers}), "
                         f"got {len(lengths)}")
    if (lengths < 0).any():
        raise ValueError("grace_days must not be negative")
    return np.concatenate([[0], np.broadcast_to(lengths, (tiers,))])


def step(current: ArrayLike, target: ArrayLike, grace_until: ArrayLike, today: int,
         grace_days: int | Sequence[int], *, tiers: int = len(TIERS)) -> Transition:
    """One day's transition of every member (rules in the module docstring).

    ``current`` and ``target`` are tiers ``0..tiers``; ``grace_until`` holds day numbers or
    :data:`NO_GRACE`; ``grace_days`` is one length for every tier or one per tier (the grace
    of the tier being held applies). ``changed`` marks members whose tier or grace changed.
    """
    held = np.atleast_1d(np.asarray(current, dtype=np.int64))
    goal = np.atleast_1d(np.asarray(target, dtype=np.int64))
    grace = np.atleast_1d(np.asarray(grace_until, dtype=np.int64))
    if not held.shape == goal.shape == grace.shape or held.ndim != 1:
        raise ValueError("current, target and grace_until must be one-dimensional arrays of "
                         f"equal length, got {held.shape}, {goal.shape}, {grace.shape}")
    for name, array in (("current", held), ("target", goal)):
        if ((array < 0) | (array > tiers)).any():
            raise ValueError(f"{name} must hold tiers 0..{tiers}")
    running = grace != NO_GRACE
    if (running & (held == 0)).any():
        raise ValueError("grace_until is set for a customer without a tier")
    lengths = _grace_lengths(grace_days, tiers)[held]

    below = goal < held
    starts = below & ~running & (lengths > 0)
    expired = below & running & (today >= grace)
    drops = below & ((~running & (lengths == 0)) | expired)
    new_tier = np.where(below & ~drops, held, goal)
    new_grace = np.where(starts, today + lengths, np.where(below & ~drops, grace, NO_GRACE))
    changed = (new_tier != held) | (new_grace != grace)
    return Transition(new_tier.astype(np.int8), new_grace.astype(np.int64), changed)


def change_reasons(current: ArrayLike, grace_before: ArrayLike, after: Transition
                   ) -> NDArray[np.int8]:
    """Why each member changed in ``after`` (an index into :data:`CHANGE_REASONS`).

    A tier move is an ``upgrade`` or ``downgrade`` (an upgrade during grace also ends the
    grace); otherwise the grace period either started or was cancelled by qualifying again.
    """
    held = np.atleast_1d(np.asarray(current, dtype=np.int64))
    before = np.atleast_1d(np.asarray(grace_before, dtype=np.int64))
    tier = after.tier.astype(np.int64)
    reasons = np.zeros(len(held), dtype=np.int8)
    reasons[(tier == held) & (before == NO_GRACE) & (after.grace_until != NO_GRACE)] = 3
    reasons[(tier == held) & (before != NO_GRACE) & (after.grace_until == NO_GRACE)] = 4
    reasons[tier > held] = 1
    reasons[tier < held] = 2
    return reasons
