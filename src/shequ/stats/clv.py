"""Customer lifetime value: RFM summaries from transactions and BG/NBD x Gamma-Gamma CLV.

Conventions (those of Fader, Hardie & Lee 2005 and the Gamma-Gamma note):

- Time is measured in whole model periods (CDNOW uses weeks); all inputs share that unit.
- Purchases by the same customer at the same time value are merged into one purchase with the
  summed amount, so callers should quantise times to their purchase granularity first (CDNOW:
  ``day_index / 7``, which merges same-day orders but keeps separate days apart).
- The first purchase acquires the customer and is not counted: ``x`` is the number of *repeat*
  purchases, ``t_x`` the time from the first to the last purchase (0 when ``x == 0``) and ``T``
  the time from the first purchase to ``calibration_end``.
- ``mean_spend`` averages the repeat purchases only (0 when ``x == 0``), as the Gamma-Gamma model
  is fitted on customers with ``x > 0``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from shequ.stats.bgnbd import (
    BgNbdParams,
    FloatArray,
    as_float_array,
    probability_alive,
    purchases_if_alive,
    validate_rfm,
)
from shequ.stats.gamma_gamma import GammaGammaParams, conditional_expected_spend


@dataclass(frozen=True)
class Summary:
    """Per-customer RFM sufficient statistics, aligned with ``customer_ids`` (sorted)."""

    customer_ids: NDArray[Any]
    x: FloatArray
    t_x: FloatArray
    T: FloatArray
    mean_spend: FloatArray


def _merge_same_time(
    customer_index: NDArray[np.intp], times: FloatArray, amounts: FloatArray
) -> tuple[NDArray[np.intp], FloatArray, FloatArray]:
    """Sort by (customer, time) and sum amounts of purchases sharing both."""
    order = np.lexsort((times, customer_index))
    customer_index, times, amounts = customer_index[order], times[order], amounts[order]
    starts = np.flatnonzero(
        np.r_[True, (np.diff(customer_index) != 0) | (np.diff(times) != 0)]
    )
    return customer_index[starts], times[starts], np.add.reduceat(amounts, starts)


def _validate_transactions(
    customer_ids: ArrayLike, times_in_periods: ArrayLike, amounts: ArrayLike
) -> tuple[NDArray[Any], FloatArray, FloatArray]:
    ids = np.atleast_1d(np.asarray(customer_ids))
    times = as_float_array(times_in_periods, "times_in_periods")
    values = as_float_array(amounts, "amounts")
    if not len(ids) == len(times) == len(values):
        raise ValueError(
            "customer_ids, times_in_periods and amounts must have equal lengths, "
            f"got {len(ids)}, {len(times)}, {len(values)}"
        )
    if ids.ndim != 1:
        raise ValueError("customer_ids must be one-dimensional")
    return ids, times, values


def summarise(
    customer_ids: ArrayLike,
    times_in_periods: ArrayLike,
    amounts: ArrayLike,
    calibration_end: float,
) -> Summary:
    """Build the per-customer ``(x, t_x, T, mean_spend)`` summary of the calibration period.

    Transactions after ``calibration_end`` are ignored; customers whose first purchase falls at
    or after ``calibration_end`` are left out because ``T`` would be 0 (nothing observed yet).
    """
    ids, times, values = _validate_transactions(customer_ids, times_in_periods, amounts)
    in_calibration = times <= calibration_end
    unique_ids, inverse = np.unique(ids[in_calibration], return_inverse=True)
    customer, merged_times, merged_amounts = _merge_same_time(
        inverse.astype(np.intp), times[in_calibration], values[in_calibration]
    )
    first = np.flatnonzero(np.r_[True, np.diff(customer) != 0])
    last = np.r_[first[1:], len(customer)] - 1
    x = (last - first).astype(np.float64)
    t_x = merged_times[last] - merged_times[first]
    age = calibration_end - merged_times[first]
    repeat_total = np.add.reduceat(merged_amounts, first) - merged_amounts[first]
    mean_spend = np.divide(repeat_total, x, out=np.zeros_like(repeat_total), where=x > 0)
    acquired = age > 0
    return Summary(
        unique_ids[acquired], x[acquired], t_x[acquired], age[acquired], mean_spend[acquired]
    )


def customer_lifetime_value(
    bg: BgNbdParams,
    gg: GammaGammaParams,
    x: ArrayLike,
    t_x: ArrayLike,
    T: ArrayLike,  # noqa: N803 - the papers' notation for customer age
    mean_spend: ArrayLike,
    horizon_periods: int,
    discount_rate: float,
) -> FloatArray:
    """Discounted expected spend over the next ``horizon_periods`` periods, per customer.

    Discounting: the horizon is cut into whole periods (the unit of ``T``); the purchases the
    BG/NBD model expects in period ``i``, ``E[Y(i)] - E[Y(i - 1)]``, are valued at the
    Gamma-Gamma expected spend and discounted at the end of that period by
    ``(1 + discount_rate) ** -i``. ``discount_rate`` is therefore a per-period rate (a 10 %
    annual rate on weekly periods is ``1.1 ** (1 / 52) - 1``).
    """
    if isinstance(horizon_periods, bool) or not isinstance(horizon_periods, int | np.integer):
        raise ValueError("horizon_periods must be an integer")
    if horizon_periods < 0:
        raise ValueError("horizon_periods must be non-negative")
    if not np.isfinite(discount_rate) or discount_rate < 0:
        raise ValueError("discount_rate must be a non-negative finite number")
    xs, recency, age = validate_rfm(x, t_x, T)
    spend = conditional_expected_spend(gg, xs, mean_spend)
    # E[Y(t) | x, t_x, T] = P(alive | x, t_x, T) × (purchases if alive)(t, x, T): the sum over
    # periods needs the second factor only once per distinct (x, T), of which there are
    # few (whole days of age, small counts) however many customers there are.
    pairs, inverse = np.unique(xs + 1j * age, return_inverse=True)
    px, page = pairs.real.copy(), pairs.imag.copy()
    discounted = np.zeros_like(px)
    previous = np.zeros_like(px)
    for period in range(1, horizon_periods + 1):
        cumulative = purchases_if_alive(bg, float(period), px, page)
        discounted += (cumulative - previous) / (1.0 + discount_rate) ** period
        previous = cumulative
    value: FloatArray = (discounted[inverse.reshape(-1)] * spend
                         * probability_alive(bg, xs, recency, age))
    return value
