"""RFM: recency, frequency and monetary value per customer, 1-5 scores, eight named groups.

Conventions:

- Transactions are ``(customer, day, amount_fen)`` with ``day`` a whole day number (for
  example days since an epoch in the business time zone); only days in the window
  ``(as_of - window_days, as_of]`` count.
- **Recency** is ``as_of - last purchase day`` (0 = bought on ``as_of``), **frequency** the
  number of distinct purchase days in the window (several orders on one day are one visit),
  **monetary** the total spend in fen in the window.
- **Scores** are 1-5 (or ``1..bins``). With given cut points (``RfmCuts``) a value's score
  is ``1 + the number of cut points it reaches``. Without, scores are quintiles of the
  population by **mid-rank**: a value's percentile is ``(customers below it + half of those
  equal to it) / customers`` and its score ``1 + floor(percentile × bins)``. Equal values
  always get equal scores, in the middle of the span they cover: when most customers buy
  once, they share the middle score rather than being split or all called top.
  Recency is scored the other way round: the most recent customers get 5.
- **Groups**: each score is "high" when it is above the population's mean score of that
  dimension (the usual practice of Chinese operations teams; ``split`` can be a fixed score
  instead), and the three high/low flags name one of eight groups (:data:`GROUPS`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]
Split = Literal["mean", "median"] | float


@dataclass(frozen=True, slots=True)
class RfmGroup:
    """One of the eight classic RFM groups."""

    code: str
    label_zh: str
    label_en: str
    recent: bool
    frequent: bool
    valuable: bool


GROUPS: tuple[RfmGroup, ...] = (
    RfmGroup("important_value", "重要价值客户", "Important value", True, True, True),
    RfmGroup("important_develop", "重要发展客户", "Important to develop", True, False, True),
    RfmGroup("important_keep", "重要保持客户", "Important to keep", False, True, True),
    RfmGroup("important_retain", "重要挽留客户", "Important to win back", False, False, True),
    RfmGroup("general_value", "一般价值客户", "General value", True, True, False),
    RfmGroup("general_develop", "一般发展客户", "General to develop", True, False, False),
    RfmGroup("general_keep", "一般保持客户", "General to keep", False, True, False),
    RfmGroup("general_retain", "一般挽留客户", "General to win back", False, False, False),
)
_BY_FLAGS = {(g.recent, g.frequent, g.valuable): g for g in GROUPS}


@dataclass(frozen=True, slots=True)
class RfmCuts:
    """Fixed cut points (ascending) per dimension; ``None`` = population quantiles.

    Recency cuts are in days and score downwards: with cuts ``(7, 30, 90, 180)`` a customer
    who bought 3 days ago scores 5 and one who bought 200 days ago scores 1.
    """

    recency: tuple[float, ...] | None = None
    frequency: tuple[float, ...] | None = None
    monetary: tuple[float, ...] | None = None


@dataclass(frozen=True)
class RfmTable:
    """Per-customer values, scores and group codes, aligned with ``customer_ids`` (sorted)."""

    customer_ids: NDArray[Any]
    recency_days: IntArray
    frequency: IntArray
    monetary_fen: IntArray
    r_score: IntArray
    f_score: IntArray
    m_score: IntArray
    group: NDArray[np.str_]

    def __len__(self) -> int:
        return len(self.customer_ids)


def rfm_values(customer_ids: ArrayLike, days: ArrayLike, amounts_fen: ArrayLike, *,
               as_of: int, window_days: int
               ) -> tuple[NDArray[Any], IntArray, IntArray, IntArray]:
    """``(customer_ids, recency_days, frequency, monetary_fen)`` of the customers with at
    least one purchase in the window, sorted by customer id."""
    if window_days < 1:
        raise ValueError(f"window_days must be at least 1, got {window_days}")
    ids = np.atleast_1d(np.asarray(customer_ids))
    day = np.atleast_1d(np.asarray(days, dtype=np.int64))
    fen = np.atleast_1d(np.asarray(amounts_fen, dtype=np.int64))
    if not len(ids) == len(day) == len(fen):
        raise ValueError("customer_ids, days and amounts_fen must have equal lengths, "
                         f"got {len(ids)}, {len(day)}, {len(fen)}")
    if (fen < 0).any():
        raise ValueError("amounts_fen must not be negative (leave refunds out first)")
    inside = (day <= as_of) & (day > as_of - window_days)
    ids, day, fen = ids[inside], day[inside], fen[inside]
    unique, customer = np.unique(ids, return_inverse=True)
    customer = customer.astype(np.int64)
    last = np.full(len(unique), np.iinfo(np.int64).min)
    np.maximum.at(last, customer, day)
    # Distinct (customer, day) pairs: several orders on one day are one purchase visit.
    visits = np.unique(np.stack([customer, day]), axis=1)[0]
    frequency = np.bincount(visits, minlength=len(unique)).astype(np.int64)
    monetary = np.bincount(customer, weights=fen, minlength=len(unique))
    return unique, (as_of - last).astype(np.int64), frequency, np.rint(monetary).astype(np.int64)


def score(values: ArrayLike, *, bins: int = 5, cuts: tuple[float, ...] | None = None,
          higher_is_better: bool = True) -> IntArray:
    """1..``bins`` scores of ``values`` by cut points (given, or quantiles); equal values
    get equal scores. ``higher_is_better=False`` (recency) turns the scale round."""
    if bins < 2:
        raise ValueError(f"bins must be at least 2, got {bins}")
    data = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if cuts is None:
        return _mid_rank_scores(data if higher_is_better else -data, bins)
    edges = np.asarray(cuts, dtype=np.float64)
    if len(edges) != bins - 1:
        raise ValueError(f"{bins} bins need {bins - 1} cut points, got {len(edges)}")
    if (np.diff(edges) <= 0).any():
        raise ValueError(f"cut points must increase strictly, got {tuple(edges)}")
    if higher_is_better:
        # A value at or above a cut point passes it; scores run 1 (lowest) .. bins.
        return (1 + np.searchsorted(edges, data, side="right")).astype(np.int64)
    # Recency: a value at or below a cut point is "recent enough" for it.
    return (bins - np.searchsorted(edges, data, side="left")).astype(np.int64)


def mid_rank_percentiles(values: ArrayLike) -> FloatArray:
    """``(values below + half of those equal) / n`` per value: equal values get equal
    percentiles, in the middle of the span they cover (RFM scores, CLV bands and price
    positions all rank this way)."""
    data = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if len(data) == 0:
        return np.zeros(0, dtype=np.float64)
    ordered = np.sort(data)
    below = np.searchsorted(ordered, data, side="left")
    equal = np.searchsorted(ordered, data, side="right") - below
    result: FloatArray = (below + equal / 2) / len(data)
    return result


def _mid_rank_scores(data: FloatArray, bins: int) -> IntArray:
    """``1 + floor(mid-rank percentile × bins)``, higher values scoring higher."""
    percentile = mid_rank_percentiles(data)
    scores: IntArray = np.minimum(1 + np.floor(percentile * bins), bins).astype(np.int64)
    return scores


def _high(scores: IntArray, split: Split) -> NDArray[np.bool_]:
    if split == "mean":
        threshold = float(scores.mean()) if len(scores) else 0.0
    elif split == "median":
        threshold = float(np.median(scores)) if len(scores) else 0.0
    else:
        threshold = float(split)
    return scores > threshold


def rfm_table(customer_ids: ArrayLike, days: ArrayLike, amounts_fen: ArrayLike, *,
              as_of: int, window_days: int = 365, bins: int = 5,
              cuts: RfmCuts | None = None, split: Split = "mean") -> RfmTable:
    """Values, scores and groups of every customer who bought in the window."""
    cuts = cuts or RfmCuts()
    ids, recency, frequency, monetary = rfm_values(customer_ids, days, amounts_fen,
                                                   as_of=as_of, window_days=window_days)
    r = score(recency, bins=bins, cuts=cuts.recency, higher_is_better=False)
    f = score(frequency, bins=bins, cuts=cuts.frequency)
    m = score(monetary, bins=bins, cuts=cuts.monetary)
    flags = zip(_high(r, split), _high(f, split), _high(m, split), strict=True)
    groups = np.array([_BY_FLAGS[(bool(a), bool(b), bool(c))].code for a, b, c in flags],
                      dtype=np.str_)
    return RfmTable(ids, recency, frequency, monetary, r, f, m, groups)


def group_of(code: str) -> RfmGroup:
    """The group with ``code``."""
    for group in GROUPS:
        if group.code == code:
            return group
    raise KeyError(f"unknown RFM group {code!r}")
