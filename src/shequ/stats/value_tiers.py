"""The five-tier user value matrix (RFM × CLV) and per-group figures.

Two axes, each cut into bands, and a grid that maps a pair of bands to a tier:

- **Realised value** (what the customer has already brought): the weighted mean of the
  R, F and M scores (1..``bins``, from :func:`shequ.stats.rfm.score`), cut at
  ``realised_cuts``. The default, equal weights cut at 3 and 4, gives *low* (score sum
  3-8), *mid* (9-11) and *high* (12-15).
- **Predicted value** (what the customer is expected to bring): the customer lifetime value
  (:func:`shequ.stats.clv.customer_lifetime_value`) cut at fixed amounts ``clv_cuts``, or
  by default at population percentiles ``clv_percentiles`` (50 % and 80 %) computed by
  mid-rank as in :mod:`shequ.stats.rfm`, so equal CLVs always land in the same band.
- **Grid**: ``grid[realised_band][predicted_band]`` is the tier (1 = top). The grid must not
  increase along either axis, which guarantees that raising a customer's CLV or any of its
  scores never lowers its tier.
- **Dormancy cap**: a customer whose probability of still being active (BG/NBD ``p_alive``)
  is below ``dormant_p_alive`` is placed no higher than ``dormant_best_tier``: the top tiers
  are for customers the business can still expect to see.

Customers who have **never bought** are **not tiered**: they have no scores, and the
functions refuse a score of 0 rather than guess. Putting them in the base tier would mix
"never bought" with "low value" and make the base tier's average spend, the denominator of
every spend multiple, meaningless (the lifecycle stages, not the tiers, describe them).
(:func:`shequ.stats.customer_value.customer_value` gives a buyer with nothing in the RFM
window the lowest scores, 1/1/1, so every buyer gets a tier.)

:func:`group_figures` gives customers, share of GMV, average spend, its multiple of a base
group's average and the repurchase rate for any integer grouping (value tiers with base 5,
membership tiers with base 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from shequ.stats.rfm import mid_rank_percentiles

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

TIER_CODES: tuple[str, ...] = ("t1", "t2", "t3", "t4", "t5")
TIER_NAMES: dict[str, tuple[str, str]] = {
    "t1": ("核心高价值", "Core high value"),
    "t2": ("高价值", "High value"),
    "t3": ("潜力", "Potential"),
    "t4": ("普通", "Regular"),
    "t5": ("低价值", "Low value"),
}
TIER_COUNT = len(TIER_CODES)


def _check_increasing(cuts: Sequence[float], name: str) -> None:
    values = np.asarray(cuts, dtype=np.float64)
    if len(values) == 0 or not np.isfinite(values).all() or (np.diff(values) <= 0).any():
        raise ValueError(f"{name} must be a non-empty, strictly increasing sequence of finite "
                         f"numbers, got {tuple(cuts)}")


@dataclass(frozen=True, slots=True)
class ValueTierConfig:
    """Cut rules of the matrix; validated on construction (errors name the field).

    ``grid`` rows are realised bands (low → high), columns predicted bands (low → high).
    """

    bins: int = 5
    realised_weights: tuple[float, float, float] = (1.0, 1.0, 1.0)
    realised_cuts: tuple[float, ...] = (3.0, 4.0)
    clv_percentiles: tuple[float, ...] = (0.5, 0.8)
    clv_cuts: tuple[float, ...] | None = None
    grid: tuple[tuple[int, ...], ...] = ((5, 4, 3), (4, 3, 2), (3, 2, 1))
    dormant_p_alive: float = 0.2
    dormant_best_tier: int = 3

    def __post_init__(self) -> None:
        if self.bins < 2:
            raise ValueError(f"bins must be at least 2, got {self.bins}")
        weights = np.asarray(self.realised_weights, dtype=np.float64)
        if len(weights) != 3 or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError("realised_weights must be three non-negative numbers, not all "
                             f"zero, got {self.realised_weights}")
        _check_increasing(self.realised_cuts, "realised_cuts")
        predicted = self.clv_percentiles if self.clv_cuts is None else self.clv_cuts
        _check_increasing(predicted, "clv_cuts" if self.clv_cuts is not None
                          else "clv_percentiles")
        if self.clv_cuts is None and not all(0 < p < 1 for p in self.clv_percentiles):
            raise ValueError(f"clv_percentiles must lie in (0, 1), got {self.clv_percentiles}")
        self._check_grid(len(self.realised_cuts) + 1, len(predicted) + 1)
        if not 0 <= self.dormant_p_alive <= 1:
            raise ValueError(f"dormant_p_alive must lie in [0, 1], got {self.dormant_p_alive}")
        if not 1 <= self.dormant_best_tier <= TIER_COUNT:
            raise ValueError(f"dormant_best_tier must be 1..{TIER_COUNT}, "
                             f"got {self.dormant_best_tier}")

    def _check_grid(self, rows: int, columns: int) -> None:
        table = np.asarray(self.grid)
        if table.shape != (rows, columns):
            raise ValueError(f"grid must have {rows} rows (realised bands) of {columns} tiers "
                             f"(predicted bands), got shape {table.shape}")
        if ((table < 1) | (table > TIER_COUNT)).any():
            raise ValueError(f"grid tiers must be 1..{TIER_COUNT}, got {self.grid}")
        if (np.diff(table, axis=0) > 0).any() or (np.diff(table, axis=1) > 0).any():
            raise ValueError("grid must not get worse (a higher tier number) as either band "
                             f"rises, got {self.grid}")


DEFAULT_CONFIG = ValueTierConfig()


@dataclass(frozen=True, slots=True)
class GroupFigures:
    """Figures of one group. ``None`` where undefined: shares when nobody spent anything,
    averages and rates of an empty group, the multiple when the base average is 0 or the
    base group is empty."""

    group: int
    customers: int
    spend: float
    gmv_share: float | None
    average_spend: float | None
    spend_multiple: float | None
    repurchase_rate: float | None


def _scores(values: ArrayLike, name: str, bins: int) -> IntArray:
    array = np.atleast_1d(np.asarray(values))
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must contain integer scores, got dtype {array.dtype}")
    scores = array.astype(np.int64)
    if ((scores < 1) | (scores > bins)).any():
        raise ValueError(f"{name} must contain scores 1..{bins} (customers who never bought "
                         "are not tiered: leave them out)")
    return scores


def _floats(values: ArrayLike, name: str, *, upper: float = np.inf) -> FloatArray:
    array = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional")
    if not np.isfinite(array).all() or (array < 0).any() or (array > upper).any():
        bound = "finite and non-negative" if upper == np.inf else f"within [0, {upper:g}]"
        raise ValueError(f"{name} must be {bound}")
    return array


def _realised_band(r_score: IntArray, f_score: IntArray, m_score: IntArray,
                  config: ValueTierConfig) -> IntArray:
    """0-based realised band: the weighted mean score against ``realised_cuts`` (inclusive)."""
    weights = np.asarray(config.realised_weights, dtype=np.float64)
    mean = (weights[0] * r_score + weights[1] * f_score + weights[2] * m_score) / weights.sum()
    # Rounded so that a mean meant to equal a cut point (9/3 = 3) is not lost to float error.
    edges = np.asarray(config.realised_cuts, dtype=np.float64)
    band: IntArray = np.searchsorted(edges, np.round(mean, 9), side="right").astype(np.int64)
    return band


def _predicted_band(clv: FloatArray, config: ValueTierConfig) -> IntArray:
    """0-based predicted band: CLV against ``clv_cuts``, else its mid-rank percentile
    against ``clv_percentiles`` (both inclusive)."""
    if len(clv) == 0:
        return np.zeros(0, dtype=np.int64)
    if config.clv_cuts is not None:
        edges, position = np.asarray(config.clv_cuts, dtype=np.float64), clv
    else:
        edges = np.asarray(config.clv_percentiles, dtype=np.float64)
        position = np.round(mid_rank_percentiles(clv), 12)
    return np.searchsorted(edges, position, side="right").astype(np.int64)


def assign_value_tiers(r_score: ArrayLike, f_score: ArrayLike, m_score: ArrayLike,
                       clv: ArrayLike, p_alive: ArrayLike, *,
                       config: ValueTierConfig = DEFAULT_CONFIG) -> NDArray[np.int8]:
    """Tier 1..5 (1 = top, ``TIER_CODES[tier - 1]``) of each customer.

    ``r_score``, ``f_score``, ``m_score``: integer RFM scores 1..``config.bins``;
    ``clv``: non-negative predicted value (any money unit, the same for all customers);
    ``p_alive``: probability the customer is still active, in [0, 1]. All aligned. With the
    default percentile bands the predicted band depends on the whole population passed in.
    """
    r = _scores(r_score, "r_score", config.bins)
    f = _scores(f_score, "f_score", config.bins)
    m = _scores(m_score, "m_score", config.bins)
    value = _floats(clv, "clv")
    alive = _floats(p_alive, "p_alive", upper=1.0)
    lengths = {len(r), len(f), len(m), len(value), len(alive)}
    if len(lengths) != 1:
        raise ValueError("r_score, f_score, m_score, clv and p_alive must have equal lengths, "
                         f"got {len(r)}, {len(f)}, {len(m)}, {len(value)}, {len(alive)}")
    grid = np.asarray(config.grid, dtype=np.int64)
    tiers = grid[_realised_band(r, f, m, config), _predicted_band(value, config)]
    dormant = alive < config.dormant_p_alive
    tiers = np.where(dormant, np.maximum(tiers, config.dormant_best_tier), tiers)
    return tiers.astype(np.int8)


def group_figures(groups: ArrayLike, spend: ArrayLike, orders: ArrayLike, *, base: int,
                  labels: Sequence[int] | None = None) -> list[GroupFigures]:
    """Per group: customers, total spend, share of GMV, average spend, its multiple of the
    ``base`` group's average, and the repurchase rate (share of customers with ≥ 2 orders).

    ``groups``: integer group per customer; ``spend``: non-negative spend per customer in
    one money unit (the figures keep it); ``orders``: non-negative order counts. Groups are
    reported in ``labels`` order (a label without customers gets zero customers), by default
    those present, ascending.
    """
    group = np.atleast_1d(np.asarray(groups))
    if group.ndim != 1:
        raise ValueError("groups must be one-dimensional")
    if group.size and not np.issubdtype(group.dtype, np.integer):
        raise ValueError(f"groups must contain integers, got dtype {group.dtype}")
    money = _floats(spend, "spend")
    count = _floats(orders, "orders")
    if (count != np.round(count)).any():
        raise ValueError("orders must contain whole order counts")
    if not len(group) == len(money) == len(count):
        raise ValueError("groups, spend and orders must have equal lengths, "
                         f"got {len(group)}, {len(money)}, {len(count)}")
    reported = sorted({int(g) for g in group}) if labels is None else [int(g) for g in labels]
    total = float(money.sum())
    base_members = group == base
    base_average = float(money[base_members].mean()) if base_members.any() else 0.0
    figures = []
    for label in reported:
        members = group == label
        customers = int(members.sum())
        group_spend = float(money[members].sum())
        average = group_spend / customers if customers else None
        figures.append(GroupFigures(
            group=label,
            customers=customers,
            spend=group_spend,
            gmv_share=group_spend / total if total > 0 else None,
            average_spend=average,
            spend_multiple=(average / base_average
                            if average is not None and base_average > 0 else None),
            repurchase_rate=float((count[members] >= 2).mean()) if customers else None,
        ))
    return figures
