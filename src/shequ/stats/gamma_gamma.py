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
from scipy.special import gammaln

from shequ.stats.bgnbd import FloatArray, as_float_array


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


def _negative_mean_log_likelihood(
    log_params: FloatArray, x: FloatArray, mean_spend: FloatArray
) -> float:
    # Optimiser probes can overflow; a non-finite objective is rejected below instead.
    with np.errstate(all="ignore"):
        p, q, v = np.exp(log_params)
        total = float(np.mean(log_likelihood_terms(p, q, v, x, mean_spend)))
    return -total if np.isfinite(total) else np.inf


def fit_gamma_gamma(x: ArrayLike, mean_spend: ArrayLike) -> GammaGammaParams:
    """Fit Gamma-Gamma by maximum likelihood on customers with ``x > 0``.

    Starts at ``p = q = 1`` with ``v`` at the average spend so the scale matches the data.
    """
    xs, spend = validate_spend(x, mean_spend)
    start = np.log(np.array([1.0, 1.0, float(np.mean(spend))]))
    args = (xs, spend)
    coarse = minimize(
        _negative_mean_log_likelihood, start, args=args, method="Nelder-Mead",
        options={"xatol": 1e-8, "fatol": 1e-12, "maxiter": 20_000, "maxfev": 40_000},
    )
    fine = minimize(
        _negative_mean_log_likelihood, coarse.x, args=args, method="L-BFGS-B",
        options={"ftol": 1e-15, "gtol": 1e-10},
    )
    best = fine if fine.fun <= coarse.fun else coarse
    p, q, v = (float(value) for value in np.exp(best.x))
    n = len(xs)
    return GammaGammaParams(p, q, v, log_likelihood=-float(best.fun) * n, n=n)


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
