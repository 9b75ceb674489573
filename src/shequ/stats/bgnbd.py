"""BG/NBD purchase-count model (Fader, Hardie & Lee 2005, "Counting your customers the easy way").

Each customer is described by sufficient statistics: ``x`` repeat purchases, recency ``t_x``
(time of the last repeat purchase since the first purchase, 0 when ``x == 0``) and age ``T``
(time from the first purchase to the end of the calibration period), all in the same period
unit (CDNOW uses weeks).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize
from scipy.special import digamma, gammaln, hyp2f1

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]


@dataclass(frozen=True)
class BgNbdParams:
    """Fitted BG/NBD parameters: purchase-rate gamma ``(r, alpha)``, dropout beta ``(a, b)``."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    n: int


def as_float_array(values: ArrayLike, name: str) -> FloatArray:
    """Return ``values`` as a 1-d float array, rejecting non-finite entries by ``name``."""
    array = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must contain only finite numbers")
    return array


def validate_rfm(
    x: ArrayLike,
    t_x: ArrayLike,
    T: ArrayLike,  # noqa: N803 - the papers' notation for customer age
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Check frequency/recency/age arrays and return them as float arrays.

    Raises ``ValueError`` naming the offending argument.
    """
    xs, recency, age = as_float_array(x, "x"), as_float_array(t_x, "t_x"), as_float_array(T, "T")
    if not len(xs) == len(recency) == len(age):
        raise ValueError(
            f"x, t_x and T must have equal lengths, got {len(xs)}, {len(recency)}, {len(age)}"
        )
    if np.any(xs < 0) or np.any(xs != np.round(xs)):
        raise ValueError("x must contain non-negative integers")
    if np.any(age <= 0):
        raise ValueError("T must be positive")
    if np.any(recency < 0) or np.any(recency > age):
        raise ValueError("t_x must satisfy 0 <= t_x <= T")
    if np.any((xs == 0) & (recency != 0)):
        raise ValueError("t_x must be 0 where x is 0")
    return xs, recency, age


def log_likelihood_terms(
    r: float, alpha: float, a: float, b: float, x: FloatArray, t_x: FloatArray, age: FloatArray
) -> FloatArray:
    """Per-customer BG/NBD log-likelihood (equation 6 of the paper), computed in log space."""
    log_a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    log_a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    log_a3 = -(r + x) * np.log(alpha + age)
    has_repeat = x > 0
    # The "died after the last purchase" term only exists for x > 0; b + x - 1 would hit
    # log(b - 1) < 0 territory for x = 0, so it is computed on a safe substitute and masked.
    safe_x = np.where(has_repeat, x, 1.0)
    log_a4 = np.log(a) - np.log(b + safe_x - 1.0) - (r + safe_x) * np.log(alpha + t_x)
    mixed = np.where(has_repeat, np.logaddexp(log_a3, log_a4), log_a3)
    result: FloatArray = log_a1 + log_a2 + mixed
    return result


@dataclass(frozen=True)
class RepeatRows:
    """The distinct ``(x, t_x, T)`` rows of the repeat buyers (x > 0)."""

    x: FloatArray
    x_index: IntArray  # into RfmCounts.x_values
    age_index: IntArray  # into RfmCounts.ages
    recency_index: IntArray  # into RfmCounts.recencies
    counts: FloatArray  # customers with the row


@dataclass(frozen=True)
class RfmCounts:
    """BG/NBD sufficient statistics with every repeated value stored and evaluated once.

    Purchases are recorded in whole days, so many customers share ``(x, t_x, T)``: each
    distinct row of the repeat buyers is weighted by how many customers have it, which gives
    exactly the plain likelihood for a fraction of the work. Customers without a repeat
    purchase contribute through ``T`` only and the ``gammaln`` terms through ``x`` only, and
    the logarithms of ``alpha + T`` and ``alpha + t_x`` are taken over the distinct values.
    """

    n: int
    x_values: FloatArray  # distinct x, 0 included
    x_counts: FloatArray  # customers per distinct x
    ages: FloatArray  # distinct T
    idle_counts: FloatArray  # customers with x == 0 per distinct T
    recencies: FloatArray  # distinct t_x of the repeat buyers
    repeat_rows: RepeatRows


def weighted_sum(weights: FloatArray, values: FloatArray) -> float:
    """``sum(weights * values)`` without BLAS: OpenBLAS threads a long dot product, and on a
    busy machine its spinning threads made one likelihood evaluation 10x slower."""
    return float(np.einsum("i,i->", weights, values))


def distinct_rows(*columns: FloatArray) -> tuple[list[FloatArray], FloatArray]:
    """The distinct rows of equal-length ``columns`` (sorted) and how many times each occurs."""
    order = np.lexsort(columns[::-1])
    ordered = [column[order] for column in columns]
    first_of_row = np.zeros(len(order), dtype=bool)
    first_of_row[:1] = True
    for column in ordered:
        first_of_row[1:] |= column[1:] != column[:-1]
    starts = np.flatnonzero(first_of_row)
    counts = np.diff(np.append(starts, len(order))).astype(np.float64)
    return [column[starts] for column in ordered], counts


def count_rfm(x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> RfmCounts:  # noqa: N803
    """Validate frequency/recency/age arrays and collapse them into :class:`RfmCounts`."""
    xs, recency, age = validate_rfm(x, t_x, T)
    if len(xs) == 0:
        raise ValueError("x must not be empty")
    x_values, x_counts = np.unique(xs, return_counts=True)
    ages, age_of = np.unique(age, return_inverse=True)
    idle = xs == 0
    idle_counts = np.bincount(age_of[idle], minlength=len(ages)).astype(np.float64)
    (rows_x, rows_recency, rows_age), counts = distinct_rows(
        xs[~idle], recency[~idle], age[~idle]
    )
    recencies, recency_index = np.unique(rows_recency, return_inverse=True)
    x_index, age_index = np.searchsorted(x_values, rows_x), np.searchsorted(ages, rows_age)
    return RfmCounts(
        n=len(xs), x_values=x_values, x_counts=x_counts.astype(np.float64), ages=ages,
        idle_counts=idle_counts, recencies=recencies,
        repeat_rows=RepeatRows(rows_x, x_index, age_index, recency_index, counts),
    )


@dataclass(frozen=True)
class _Tables:
    """Per-evaluation values over the distinct ages, recencies and repeat counts."""

    log_age: FloatArray
    inverse_age: FloatArray
    log_last: FloatArray
    inverse_last: FloatArray
    inverse_bx: FloatArray  # 1 / (b + x - 1)


def _repeat_buyer_sums(
    r: float, a: float, tables: _Tables, rows: RepeatRows
) -> tuple[float, float, float, float, float]:
    """Log-likelihood of the repeat buyers beyond A1 + A2, and the sums its gradient
    needs: log(A3 + A4) = A3 + softplus(log_odds) with log_odds = log(A4 / A3), the log-odds
    that the customer dropped out right after the last purchase."""
    w, rx = rows.counts, r + rows.x
    log_age, inverse_age = tables.log_age[rows.age_index], tables.inverse_age[rows.age_index]
    log_last = tables.log_last[rows.recency_index]
    inverse_last = tables.inverse_last[rows.recency_index]
    inverse_bx = tables.inverse_bx[rows.x_index]
    log_odds = np.log(a * inverse_bx) + rx * (log_age - log_last)
    # exp(-|log_odds|) is in (0, 1], so nothing overflows; capping |log_odds| at 500 keeps it
    # out of the subnormal range (arithmetic on subnormals is far slower) and changes no
    # sum it enters, since e^-500 is far below a double's resolution of the other terms.
    small = np.exp(-np.minimum(np.abs(log_odds), 500.0))
    softplus = np.maximum(log_odds, 0.0) + np.log1p(small)
    dead = np.where(log_odds >= 0.0, 1.0, small) / (1.0 + small)
    return (
        weighted_sum(w, softplus - rx * log_age),
        weighted_sum(w, dead * (log_age - log_last) - log_age),
        weighted_sum(w, rx * (inverse_age + dead * (inverse_last - inverse_age))),
        weighted_sum(w, dead),
        weighted_sum(w, dead * inverse_bx),
    )


def mean_log_likelihood(log_params: FloatArray, data: RfmCounts) -> tuple[float, FloatArray]:
    """Mean BG/NBD log-likelihood per customer and its gradient w.r.t. ``log(r, alpha, a, b)``.

    The same value as the mean of :func:`log_likelihood_terms`, with analytic derivatives
    (digamma for the ``gammaln`` terms). A repeat buyer's likelihood is the sum of "alive
    at T" and "dropped out right after the last purchase"; the derivative of its logarithm
    weighs each branch's derivative by the posterior probability of the branch, so the
    weight of the second is ``dead = 1 - P(alive)``.
    """
    r, alpha, a, b = (float(value) for value in np.exp(log_params))
    log_alpha = np.log(alpha)
    # Terms that depend on x only (A1 and A2 of equation 6), over the distinct x values.
    xv, xc = data.x_values, data.x_counts
    psi_r, psi_b, psi_ab = digamma(np.array([r, b, a + b]))
    psi_abx = digamma(a + b + xv)
    total = weighted_sum(xc, (
        gammaln(r + xv) - gammaln(r) + r * log_alpha
        + gammaln(a + b) + gammaln(b + xv) - gammaln(b) - gammaln(a + b + xv)
    ))
    d_r = weighted_sum(xc, digamma(r + xv) - psi_r + log_alpha)
    d_alpha = data.n * r / alpha
    d_a = weighted_sum(xc, psi_ab - psi_abx)
    d_b = weighted_sum(xc, psi_ab + digamma(b + xv) - psi_b - psi_abx)
    # Customers without a repeat purchase: A3 = -r log(alpha + T) only.
    tables = _Tables(
        log_age=np.log(alpha + data.ages), inverse_age=1.0 / (alpha + data.ages),
        log_last=np.log(alpha + data.recencies), inverse_last=1.0 / (alpha + data.recencies),
        # Clipping x at 1 keeps b - 1 (possibly 0) out: x = 0 rows are never looked up.
        inverse_bx=1.0 / (b + np.maximum(xv, 1.0) - 1.0),
    )
    total -= r * weighted_sum(data.idle_counts, tables.log_age)
    d_r -= weighted_sum(data.idle_counts, tables.log_age)
    d_alpha -= r * weighted_sum(data.idle_counts, tables.inverse_age)
    mixed, mixed_r, mixed_alpha, dead, dead_bx = _repeat_buyer_sums(
        r, a, tables, data.repeat_rows
    )
    total += mixed
    d_r += mixed_r
    d_alpha -= mixed_alpha
    d_a += dead / a
    d_b -= dead_bx
    gradient = np.array([d_r * r, d_alpha * alpha, d_a * a, d_b * b]) / data.n
    return total / data.n, gradient


def _negative_mean_log_likelihood(
    log_params: FloatArray, data: RfmCounts
) -> tuple[float, FloatArray]:
    value, gradient = mean_log_likelihood(log_params, data)
    return -value, -gradient


# Parameters stay within e^±LOG_BOUND (1e-13..1e13): wide enough for any real data set, and
# it keeps optimiser probes away from overflow.
LOG_BOUND = 30.0
# L-BFGS-B stops when the mean log-likelihood improves by less than FTOL relatively or the
# largest gradient entry falls under GTOL: parameters then sit within about 1e-6 relative of
# the optimum, far inside the 3 significant figures they are reported to; tighter
# tolerances only spend evaluations on line searches that rounding makes fail.
FTOL = 1e-12
GTOL = 1e-8


def fit_bgnbd(x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> BgNbdParams:  # noqa: N803
    """Fit BG/NBD by maximum likelihood: L-BFGS-B over log-parameters with analytic gradients.

    The data are collapsed first (:func:`count_rfm`), so the cost of one likelihood
    evaluation grows with the distinct rows, not the customers. The start puts ``alpha`` at
    the mean age so the gamma rate is on the data's time scale.
    """
    data = count_rfm(x, t_x, T)
    rows = data.repeat_rows
    ages = weighted_sum(data.idle_counts, data.ages)
    mean_age = (ages + weighted_sum(rows.counts, data.ages[rows.age_index])) / data.n
    best = minimize(
        _negative_mean_log_likelihood, np.log(np.array([1.0, mean_age, 1.0, 1.0])),
        args=(data,), jac=True, method="L-BFGS-B", bounds=[(-LOG_BOUND, LOG_BOUND)] * 4,
        options={"ftol": FTOL, "gtol": GTOL, "maxiter": 1_000},
    )
    r, alpha, a, b = (float(value) for value in np.exp(best.x))
    return BgNbdParams(r, alpha, a, b, log_likelihood=-float(best.fun) * data.n, n=data.n)


def expected_purchases(params: BgNbdParams, t: ArrayLike) -> FloatArray:
    """E[X(t)]: expected purchases of a newly acquired customer in ``(0, t]`` (equation 9)."""
    times = as_float_array(t, "t")
    if np.any(times < 0):
        raise ValueError("t must be non-negative")
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    z = times / (alpha + times)
    hyp = hyp2f1(r, b, a + b - 1.0, z)
    result: FloatArray = (a + b - 1.0) / (a - 1.0) * (1.0 - (alpha / (alpha + times)) ** r * hyp)
    return result


def _odds_dead(
    params: BgNbdParams, x: FloatArray, t_x: FloatArray, age: FloatArray
) -> FloatArray:
    """``δ(x>0) a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x)``: posterior odds the customer is gone."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    safe_x = np.where(x > 0, x, 1.0)
    log_odds = (
        np.log(a) - np.log(b + safe_x - 1.0)
        + (r + safe_x) * (np.log(alpha + age) - np.log(alpha + t_x))
    )
    odds: FloatArray = np.where(x > 0, np.exp(log_odds), 0.0)
    return odds


def probability_alive(
    params: BgNbdParams, x: ArrayLike, t_x: ArrayLike, T: ArrayLike  # noqa: N803
) -> FloatArray:
    """P(alive | x, t_x, T); exactly 1 for customers with no repeat purchase (the model's
    dropout can only happen right after a purchase)."""
    xs, recency, age = validate_rfm(x, t_x, T)
    result: FloatArray = 1.0 / (1.0 + _odds_dead(params, xs, recency, age))
    return result


def purchases_if_alive(params: BgNbdParams, t: float, x: FloatArray,
                       T: FloatArray) -> FloatArray:  # noqa: N803
    """Expected purchases in ``(T, T + t]`` of a customer known to be alive after ``x``
    repeat purchases at age ``T``: equation 10 without its P(alive) factor. It does not
    depend on ``t_x``, so callers can evaluate it once per distinct ``(x, T)``. Inputs are
    taken as validated."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    z = t / (alpha + T + t)
    hyp = hyp2f1(r + x, b + x, a + b + x - 1.0, z)
    decay = ((alpha + T) / (alpha + T + t)) ** (r + x)
    result: FloatArray = (a + b + x - 1.0) / (a - 1.0) * (1.0 - decay * hyp)
    return result


def conditional_expected_purchases(
    params: BgNbdParams, t: float, x: ArrayLike, t_x: ArrayLike, T: ArrayLike  # noqa: N803
) -> FloatArray:
    """E[Y(t) | x, t_x, T]: expected purchases in ``(T, T + t]`` per customer (equation 10)."""
    if not np.isfinite(t) or t < 0:
        raise ValueError("t must be a non-negative finite number")
    xs, recency, age = validate_rfm(x, t_x, T)
    result: FloatArray = (purchases_if_alive(params, t, xs, age)
                          / (1.0 + _odds_dead(params, xs, recency, age)))
    return result
