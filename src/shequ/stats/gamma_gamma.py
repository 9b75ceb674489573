"""Gamma-Gamma spend model (Fader & Hardie, "The Gamma-Gamma Model of Monetary Value", 2013).

A customer's transaction values are gamma(p, nu) with nu ~ gamma(q, v) across customers; the
sufficient statistics are ``x`` (number of repeat transactions, > 0) and ``mean_spend`` (their
average value). Spend is assumed independent of the purchase process.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import minimize
from scipy.special import digamma, gammaln

from shequ.stats.bgnbd import (
    FTOL,
    GTOL,
    LOG_BOUND,
    FloatArray,
    as_float_array,
    weighted_sum,
)


@dataclass(frozen=True)
class GammaGammaParams:
    """Fitted Gamma-Gamma parameters: shape ``p``, and gamma ``(q, v)`` over the scale."""

    p: float
    q: float
    v: float
    log_likelihood: float
    n: int


def validate_spend(x: ArrayLike, mean_spend: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Check repeat counts and mean spends; every customer must have ``x > 0``."""
    xs, spend = as_float_array(x, "x"), as_float_array(mean_spend, "mean_spend")
    if len(xs) != len(spend):
        raise ValueError(f"x and mean_spend must have equal lengths, got {len(xs)}, {len(spend)}")
    if np.any(xs <= 0) or np.any(xs != np.round(xs)):
        raise ValueError("x must contain positive integers (fit only customers with x > 0)")
    if np.any(spend <= 0):
        raise ValueError("mean_spend must be positive")
    return xs, spend


def log_likelihood_terms(
    p: float, q: float, v: float, x: FloatArray, mean_spend: FloatArray
) -> FloatArray:
    """Per-customer log-likelihood of the observed mean spend (equation 4 of the note)."""
    px = p * x
    result: FloatArray = (
        gammaln(px + q) - gammaln(px) - gammaln(q)
        + q * np.log(v) + (px - 1.0) * np.log(mean_spend) + px * np.log(x)
        - (px + q) * np.log(x * mean_spend + v)
    )
    return result


@dataclass(frozen=True)
class SpendSums:
    """Gamma-Gamma sufficient statistics arranged so a likelihood evaluation is cheap.

    The ``gammaln`` terms depend on ``x`` only, so they are taken over the distinct ``x``
    values, and ``sum(log mean_spend)`` is fixed by the data; per customer only
    ``log1p(v / s)`` is left, with ``s = x * mean_spend`` the customer's total spend.
    """

    n: int
    x_values: FloatArray  # distinct x
    x_counts: FloatArray  # customers per distinct x
    sum_log_spend: float  # sum of log mean_spend
    x: FloatArray  # per customer
    total_spend: FloatArray  # per customer: s
    log_total_spend: FloatArray  # per customer: log s


def sum_spend(x: ArrayLike, mean_spend: ArrayLike) -> SpendSums:
    """Validate repeat counts and mean spends and precompute :class:`SpendSums`."""
    xs, spend = validate_spend(x, mean_spend)
    if len(xs) == 0:
        raise ValueError("x must not be empty")
    x_values, x_counts = np.unique(xs, return_counts=True)
    total_spend = xs * spend
    return SpendSums(
        n=len(xs), x_values=x_values, x_counts=x_counts.astype(np.float64),
        sum_log_spend=float(np.sum(np.log(spend))), x=xs, total_spend=total_spend,
        log_total_spend=np.log(total_spend),
    )


def mean_log_likelihood(log_params: FloatArray, data: SpendSums) -> tuple[float, FloatArray]:
    """Mean Gamma-Gamma log-likelihood per customer and its gradient w.r.t. ``log(p, q, v)``.

    The same value as the mean of :func:`log_likelihood_terms`, with analytic derivatives
    (digamma for the ``gammaln`` terms). The per-customer part is written as
    ``-p x log1p(v/s) - q log1p(s/v)`` and its ``v``-derivative as
    ``(q s - p v x) / (v (s + v))``, so no two large sums are subtracted and the gradient
    stays accurate near the optimum, where it is tiny.
    """
    p, q, v = (float(value) for value in np.exp(log_params))
    n, xv, xc, spend = data.n, data.x_values, data.x_counts, data.total_spend
    px = p * xv
    psi_pxq = digamma(px + q)
    spend_share = np.log1p(v / spend)  # log(s + v) - log(s)
    x_spend_share = weighted_sum(data.x, spend_share)
    value_share = float(np.sum(spend_share + data.log_total_spend)) - n * np.log(v)
    total = (
        weighted_sum(xc, gammaln(px + q) - gammaln(px)) - n * gammaln(q) - data.sum_log_spend
        - p * x_spend_share - q * value_share
    )
    d_p = weighted_sum(xc, xv * (psi_pxq - digamma(px))) - x_spend_share
    d_q = weighted_sum(xc, psi_pxq) - n * digamma(q) - value_share
    d_v = float(np.sum((q * spend - p * v * data.x) / (spend + v))) / v
    gradient = np.array([d_p * p, d_q * q, d_v * v]) / n
    return float(total) / n, gradient


def _negative_mean_log_likelihood(
    log_params: FloatArray, data: SpendSums
) -> tuple[float, FloatArray]:
    value, gradient = mean_log_likelihood(log_params, data)
    return -value, -gradient


def fit_gamma_gamma(x: ArrayLike, mean_spend: ArrayLike) -> GammaGammaParams:
    """Fit Gamma-Gamma by maximum likelihood on customers with ``x > 0``: L-BFGS-B over
    log-parameters with analytic gradients.

    Starts at ``p = q = 1`` with ``v`` at the average spend so the scale matches the data.
    """
    data = sum_spend(x, mean_spend)
    start = np.log(np.array([1.0, 1.0, float(np.mean(data.total_spend / data.x))]))
    best = minimize(
        _negative_mean_log_likelihood, start, args=(data,), jac=True, method="L-BFGS-B",
        bounds=[(-LOG_BOUND, LOG_BOUND)] * 3,
        options={"ftol": FTOL, "gtol": GTOL, "maxiter": 1_000},
    )
    p, q, v = (float(value) for value in np.exp(best.x))
    return GammaGammaParams(p, q, v, log_likelihood=-float(best.fun) * data.n, n=data.n)


def conditional_expected_spend(
    params: GammaGammaParams, x: ArrayLike, mean_spend: ArrayLike
) -> FloatArray:
    """E[M | x, mean_spend]: a weighted mix of the population mean ``p v / (q - 1)`` and the
    customer's own mean; customers with ``x == 0`` get the population mean."""
    xs, spend = as_float_array(x, "x"), as_float_array(mean_spend, "mean_spend")
    if len(xs) != len(spend):
        raise ValueError(f"x and mean_spend must have equal lengths, got {len(xs)}, {len(spend)}")
    if np.any(xs < 0):
        raise ValueError("x must be non-negative")
    if params.q <= 1.0:
        raise ValueError("q must exceed 1 for the expected spend to exist")
    p, q, v = params.p, params.q, params.v
    result: FloatArray = (p * v + p * xs * spend) / (p * xs + q - 1.0)
    return result
