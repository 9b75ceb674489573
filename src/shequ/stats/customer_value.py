"""Everything the customer-value models say about each buyer, from one list of purchases.

``customer_value`` chains the pure models of this package: RFM scores and groups
(``rfm``), the BG/NBD + Gamma-Gamma lifetime value and probability alive (``bgnbd``,
``gamma_gamma``, ``clv``) and the five-tier matrix (``value_tiers``). The insight domain
feeds it the paid orders of the entity store; the customer benchmark feeds it 10M
synthetic orders. Conventions (docs/customer-value.md):

- purchases are ``(customer, day, amount_fen)`` with ``day`` a whole local day number;
  several purchases of one customer on one day are one purchase occasion (as in CDNOW);
- the population is every customer with a purchase on or before ``as_of``; RFM looks at
  the last ``rfm_window_days`` only, and a buyer with nothing in that window gets the
  lowest scores (1, 1, 1) and the group ``general_retain``;
- the CLV models run in weeks and the calibration period ends with the *end* of the
  ``as_of`` day, so a first purchase on ``as_of`` has an age of one day (the model cannot
  take an age of 0); CLV is the discounted expected spend of the next
  ``clv_horizon_weeks`` weeks at ``annual_discount``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from shequ.stats.bgnbd import BgNbdParams, fit_bgnbd, probability_alive
from shequ.stats.clv import customer_lifetime_value, summarise
from shequ.stats.gamma_gamma import GammaGammaParams, fit_gamma_gamma
from shequ.stats.rfm import RfmCuts, rfm_table
from shequ.stats.value_tiers import DEFAULT_CONFIG, ValueTierConfig, assign_value_tiers

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]

DAYS_PER_WEEK = 7.0


@dataclass(frozen=True)
class ValueConfig:
    """The knobs of :func:`customer_value` (defaults: one-year RFM window, quintiles, CLV
    over 52 weeks at 10 % a year)."""

    rfm_window_days: int = 365
    rfm_cuts: RfmCuts | None = None
    clv_horizon_weeks: int = 52
    annual_discount: float = 0.10
    # Below this many buyers (or repeat buyers for Gamma-Gamma) the fits are not trusted
    # and CLV is left out (NaN) rather than guessed.
    min_fit_customers: int = 30
    tiers: ValueTierConfig = field(default_factory=lambda: DEFAULT_CONFIG)


@dataclass(frozen=True)
class CustomerValue:
    """Per-buyer results aligned with ``customer_ids`` (sorted), plus the fitted models."""

    customer_ids: NDArray[Any]
    orders: IntArray  # purchase occasions on or before as_of, all time
    spend_fen: IntArray  # all time
    first_day: IntArray
    last_day: IntArray
    recency_days: IntArray  # as_of - last purchase day
    frequency: IntArray  # occasions in the RFM window
    monetary_fen: IntArray  # spend in the RFM window
    r_score: IntArray
    f_score: IntArray
    m_score: IntArray
    rfm_group: NDArray[np.str_]
    clv_fen: FloatArray  # NaN when the models could not be fitted
    p_alive: FloatArray  # NaN likewise
    value_tier: NDArray[np.int8]  # 1 (top) .. 5
    bgnbd: BgNbdParams | None
    gamma_gamma: GammaGammaParams | None
    notes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.customer_ids)


def _occasions(ids: NDArray[Any], days: IntArray, fen: IntArray
               ) -> tuple[NDArray[Any], IntArray, IntArray, IntArray]:
    """Merge purchases of one customer on one day: ``(unique ids, customer index per
    occasion, occasion day, occasion amount)`` sorted by customer then day."""
    unique, customer = np.unique(ids, return_inverse=True)
    customer = customer.astype(np.int64)
    order = np.lexsort((days, customer))
    customer, days, fen = customer[order], days[order], fen[order]
    if not len(customer):
        return unique, customer, days, fen
    starts = np.flatnonzero(np.r_[True, (np.diff(customer) != 0) | (np.diff(days) != 0)])
    return unique, customer[starts], days[starts], np.add.reduceat(fen, starts)


def customer_value(customer_ids: ArrayLike, days: ArrayLike, amounts_fen: ArrayLike, *,
                   as_of: int, config: ValueConfig | None = None) -> CustomerValue:
    """RFM, CLV, probability alive and value tier of every customer who bought by ``as_of``.

    ``days`` are whole local day numbers, ``amounts_fen`` non-negative integers (refunded and
    cancelled orders left out first). Raises ``ValueError`` naming the argument on bad input.
    """
    config = config or ValueConfig()
    ids = np.atleast_1d(np.asarray(customer_ids))
    day = np.atleast_1d(np.asarray(days, dtype=np.int64))
    fen = np.atleast_1d(np.asarray(amounts_fen, dtype=np.int64))
    if not len(ids) == len(day) == len(fen):
        raise ValueError("customer_ids, days and amounts_fen must have equal lengths, "
                         f"got {len(ids)}, {len(day)}, {len(fen)}")
    if (fen < 0).any():
        raise ValueError("amounts_fen must not be negative (leave refunds out first)")
    if config.clv_horizon_weeks < 1:
        raise ValueError("clv_horizon_weeks must be at least 1")
    if not 0 <= config.annual_discount < 1:
        raise ValueError("annual_discount must be in [0, 1)")
    known = day <= as_of
    unique, customer, occasion_day, occasion_fen = _occasions(ids[known], day[known],
                                                              fen[known])
    n = len(unique)
    orders = np.bincount(customer, minlength=n).astype(np.int64)
    spend = np.rint(np.bincount(customer, weights=occasion_fen, minlength=n)).astype(np.int64)
    first = np.full(n, np.iinfo(np.int64).max)
    last = np.full(n, np.iinfo(np.int64).min)
    np.minimum.at(first, customer, occasion_day)
    np.maximum.at(last, customer, occasion_day)

    # RFM on the window; buyers with nothing in it score lowest everywhere.
    table = rfm_table(unique[customer], occasion_day, occasion_fen, as_of=as_of,
                      window_days=config.rfm_window_days, cuts=config.rfm_cuts)
    position = np.searchsorted(unique, table.customer_ids)
    frequency = np.zeros(n, np.int64)
    monetary = np.zeros(n, np.int64)
    r = np.ones(n, np.int64)
    f = np.ones(n, np.int64)
    m = np.ones(n, np.int64)
    group = np.full(n, "general_retain", dtype=table.group.dtype if len(table) else "<U16")
    frequency[position], monetary[position] = table.frequency, table.monetary_fen
    r[position], f[position], m[position] = table.r_score, table.f_score, table.m_score
    group[position] = table.group

    clv, alive, bg, gg, notes = _lifetime_value(customer, occasion_day, occasion_fen, n,
                                                as_of=as_of, config=config)
    tiers = assign_value_tiers(r, f, m, np.nan_to_num(clv, nan=0.0),
                               np.nan_to_num(alive, nan=1.0), config=config.tiers)
    return CustomerValue(
        customer_ids=unique, orders=orders, spend_fen=spend, first_day=first, last_day=last,
        recency_days=(as_of - last).astype(np.int64), frequency=frequency,
        monetary_fen=monetary, r_score=r, f_score=f, m_score=m, rfm_group=group,
        clv_fen=clv, p_alive=alive, value_tier=tiers, bgnbd=bg, gamma_gamma=gg,
        notes=tuple(notes),
    )


def _lifetime_value(customer: IntArray, occasion_day: IntArray, occasion_fen: IntArray,
                    n: int, *, as_of: int, config: ValueConfig
                    ) -> tuple[FloatArray, FloatArray, BgNbdParams | None,
                               GammaGammaParams | None, list[str]]:
    """CLV in fen and P(alive) per customer index, NaN where the models are not fitted."""
    clv = np.full(n, np.nan)
    alive = np.full(n, np.nan)
    notes: list[str] = []
    if n < config.min_fit_customers:
        notes.append(f"CLV left out: {n} buyers, the fits need {config.min_fit_customers}")
        return clv, alive, None, None, notes
    # Weeks since the first day of the data; ages run to the end of the as_of day.
    origin = int(occasion_day.min())
    weeks = (occasion_day - origin) / DAYS_PER_WEEK
    end = (as_of - origin + 1) / DAYS_PER_WEEK
    summary = summarise(customer, weeks, occasion_fen / 100.0, calibration_end=end)
    index = summary.customer_ids.astype(np.int64)
    repeaters = summary.x > 0
    if int(repeaters.sum()) < config.min_fit_customers:
        notes.append(f"CLV left out: {int(repeaters.sum())} repeat buyers, the spend model "
                     f"needs {config.min_fit_customers}")
        return clv, alive, None, None, notes
    bg = fit_bgnbd(summary.x, summary.t_x, summary.T)
    gg = fit_gamma_gamma(summary.x[repeaters], summary.mean_spend[repeaters])
    weekly = (1.0 + config.annual_discount) ** (1.0 / 52.0) - 1.0
    value = customer_lifetime_value(bg, gg, summary.x, summary.t_x, summary.T,
                                    summary.mean_spend, config.clv_horizon_weeks, weekly)
    clv[index] = value * 100.0
    alive[index] = probability_alive(bg, summary.x, summary.t_x, summary.T)
    return clv, alive, bg, gg, notes
