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
from scipy.special import gammaln, hyp2f1

FloatArray = NDArray[np.float64]


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


def _negative_mean_log_likelihood(
    log_params: FloatArray, x: FloatArray, t_x: FloatArray, age: FloatArray
) -> float:
    # Optimiser probes can overflow; a non-finite objective is rejected below instead.
    with np.errstate(all="ignore"):
        r, alpha, a, b = np.exp(log_params)
        total = float(np.mean(log_likelihood_terms(r, alpha, a, b, x, t_x, age)))
    return -total if np.isfinite(total) else np.inf


def fit_bgnbd(x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> BgNbdParams:  # noqa: N803
    """Fit BG/NBD by maximum likelihood over log-parameters (Nelder-Mead then L-BFGS-B polish).

    The start puts ``alpha`` at the mean age so the gamma rate is on the data's time scale.
    """
    xs, recency, age = validate_rfm(x, t_x, T)
    start = np.log(np.array([1.0, float(np.mean(age)), 1.0, 1.0]))
    args = (xs, recency, age)
    coarse = minimize(
        _negative_mean_log_likelihood, start, args=args, method="Nelder-Mead",
        options={"xatol": 1e-8, "fatol": 1e-12, "maxiter": 20_000, "maxfev": 40_000},
    )
    fine = minimize(
        _negative_mean_log_likelihood, coarse.x, args=args, method="L-BFGS-B",
        options={"ftol": 1e-15, "gtol": 1e-10},
    )
    best = fine if fine.fun <= coarse.fun else coarse
    r, alpha, a, b = (float(value) for value in np.exp(best.x))
    n = len(xs)
    return BgNbdParams(r, alpha, a, b, log_likelihood=-float(best.fun) * n, n=n)


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


def conditional_expected_purchases(
    params: BgNbdParams, t: float, x: ArrayLike, t_x: ArrayLike, T: ArrayLike  # noqa: N803
) -> FloatArray:
    """E[Y(t) | x, t_x, T]: expected purchases in ``(T, T + t]`` per customer (equation 10)."""
    if not np.isfinite(t) or t < 0:
        raise ValueError("t must be a non-negative finite number")
    xs, recency, age = validate_rfm(x, t_x, T)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    z = t / (alpha + age + t)
    hyp = hyp2f1(r + xs, b + xs, a + b + xs - 1.0, z)
    decay = ((alpha + age) / (alpha + age + t)) ** (r + xs)
    numerator = (a + b + xs - 1.0) / (a - 1.0) * (1.0 - decay * hyp)
    result: FloatArray = numerator / (1.0 + _odds_dead(params, xs, recency, age))
    return result
