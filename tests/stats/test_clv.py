"""BG/NBD, Gamma-Gamma and CLV: CDNOW golden parameters, closed forms and input validation."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shequ.stats import bgnbd, gamma_gamma
from shequ.stats.bgnbd import (
    BgNbdParams,
    conditional_expected_purchases,
    count_rfm,
    expected_purchases,
    fit_bgnbd,
    log_likelihood_terms,
    probability_alive,
)
from shequ.stats.clv import Summary, customer_lifetime_value, summarise
from shequ.stats.gamma_gamma import (
    GammaGammaParams,
    conditional_expected_spend,
    fit_gamma_gamma,
    sum_spend,
)

EVAL_DATA = Path(
    os.environ.get("SHEQU_EVAL_DATA", Path(__file__).resolve().parents[3] / "shared" / "data")
)
CDNOW = EVAL_DATA / "retail" / "cdnow"
needs_cdnow = pytest.mark.skipif(
    not CDNOW.exists(), reason=f"CDNOW evaluation data absent: {CDNOW} (set SHEQU_EVAL_DATA)"
)
CALIBRATION_END_DAY = 272  # 1997-09-30: 39 weeks after 1997-01-01, as in Fader, Hardie & Lee

BG = BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426, log_likelihood=0.0, n=0)
GG = GammaGammaParams(p=6.25, q=3.74, v=15.44, log_likelihood=0.0, n=0)


def three_significant(value: float) -> float:
    return float(f"{value:.3g}")


def load_cdnow_summary() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    table = np.loadtxt(CDNOW / "cdnow_customers_summary.csv", delimiter=",", skiprows=1)
    return table[:, 1], table[:, 2], table[:, 3]


def load_cdnow_sample_calibration() -> Summary:
    columns = np.loadtxt(CDNOW / "CDNOW_sample.txt", dtype=str)
    dates = np.array([f"{d[:4]}-{d[4:6]}-{d[6:]}" for d in columns[:, 2]], dtype="datetime64[D]")
    days = (dates - np.datetime64("1997-01-01")).astype(np.float64)
    return summarise(
        columns[:, 1].astype(int), days / 7, columns[:, 4].astype(float), CALIBRATION_END_DAY / 7
    )


@needs_cdnow
def test_bgnbd_fit_on_cdnow_reproduces_published_parameters() -> None:
    x, t_x, age = load_cdnow_summary()

    params = fit_bgnbd(x, t_x, age)

    assert params.n == 2357
    assert three_significant(params.r) == 0.243
    assert three_significant(params.alpha) == 4.41
    assert round(params.alpha, 3) == 4.414
    assert three_significant(params.a) == 0.793
    assert three_significant(params.b) == 2.43
    assert round(params.b, 3) == 2.426
    assert round(params.log_likelihood, 1) == -9582.4


@needs_cdnow
def test_summarise_cdnow_sample_matches_published_summary() -> None:
    x, t_x, age = load_cdnow_summary()

    summary = load_cdnow_sample_calibration()

    assert summary.customer_ids.tolist() == list(range(1, 2358))
    assert summary.x.tolist() == x.tolist()
    assert np.round(summary.t_x, 2).tolist() == t_x.tolist()
    assert np.round(summary.T, 2).tolist() == age.tolist()


@needs_cdnow
def test_gamma_gamma_fit_on_cdnow_repeat_spend_reproduces_published_parameters() -> None:
    summary = load_cdnow_sample_calibration()
    repeaters = summary.x > 0

    params = fit_gamma_gamma(summary.x[repeaters], summary.mean_spend[repeaters])

    assert params.n == 946
    assert three_significant(params.p) == 6.25
    assert three_significant(params.q) == 3.74
    assert three_significant(params.v) == 15.4
    assert round(params.v, 2) == 15.44


def test_expected_purchases_is_zero_at_time_zero_and_increasing() -> None:
    purchases = expected_purchases(BG, [0.0, 1.0, 10.0, 52.0, 520.0])

    assert purchases[0] == 0.0
    assert np.all(np.diff(purchases) > 0)


def test_expected_purchases_tends_to_mean_purchases_before_dropout() -> None:
    # Dropout after each purchase with probability p ~ beta(a, b): E[1/p] = (a+b-1)/(a-1).
    params = BgNbdParams(r=2.0, alpha=1.0, a=3.0, b=2.0, log_likelihood=0.0, n=0)

    purchases = expected_purchases(params, 1e7)

    assert purchases[0] == pytest.approx(2.0, rel=1e-9)


def test_expected_purchases_without_dropout_is_the_nbd_mean() -> None:
    params = BgNbdParams(r=1.5, alpha=3.0, a=1e-4, b=1e5, log_likelihood=0.0, n=0)

    purchases = expected_purchases(params, [1.0, 6.0])

    assert purchases.tolist() == pytest.approx([0.5, 3.0], rel=1e-3)


def test_probability_alive_is_one_without_repeat_purchases() -> None:
    alive = probability_alive(BG, [0, 0], [0.0, 0.0], [1.0, 38.86])

    assert alive.tolist() == [1.0, 1.0]


def test_probability_alive_when_last_purchase_is_now() -> None:
    # t_x = T leaves only the dropout-at-last-purchase odds a / (b + x - 1).
    alive = probability_alive(BG, [3], [20.0], [20.0])

    assert alive[0] == pytest.approx((BG.b + 2) / (BG.a + BG.b + 2), rel=1e-12)


def test_probability_alive_decreases_with_time_since_last_purchase() -> None:
    alive = probability_alive(BG, [2, 2, 2], [30.0, 20.0, 5.0], [38.0, 38.0, 38.0])

    assert np.all(np.diff(alive) < 0)


def test_conditional_expectation_of_brand_new_customer_is_unconditional() -> None:
    conditional = conditional_expected_purchases(BG, 39.0, [0], [0.0], [1e-12])

    assert conditional[0] == pytest.approx(expected_purchases(BG, 39.0)[0], rel=1e-9)


def test_conditional_expected_purchases_grow_with_frequency() -> None:
    conditional = conditional_expected_purchases(BG, 39.0, [1, 4, 10], [30.0] * 3, [38.0] * 3)

    assert np.all(np.diff(conditional) > 0)


def test_conditional_expected_spend_shrinks_to_population_mean() -> None:
    spend = conditional_expected_spend(GG, [0, 1_000_000], [0.0, 40.0])

    assert spend[0] == pytest.approx(GG.p * GG.v / (GG.q - 1), rel=1e-12)
    assert spend[1] == pytest.approx(40.0, rel=1e-5)


def test_clv_without_discount_is_expected_purchases_times_expected_spend() -> None:
    x, t_x, age, mean_spend = [0, 2, 5], [0.0, 10.0, 30.0], [38.0, 38.0, 38.0], [0.0, 25.0, 60.0]

    value = customer_lifetime_value(BG, GG, x, t_x, age, mean_spend, 52, 0.0)

    expected = conditional_expected_purchases(BG, 52.0, x, t_x, age) * conditional_expected_spend(
        GG, x, mean_spend
    )
    assert value.tolist() == pytest.approx(expected.tolist(), rel=1e-12)


def test_clv_discounting_lowers_value_and_zero_horizon_is_worthless() -> None:
    args = ([2], [10.0], [38.0], [25.0])

    undiscounted = customer_lifetime_value(BG, GG, *args, 52, 0.0)
    discounted = customer_lifetime_value(BG, GG, *args, 52, 0.01)
    nothing = customer_lifetime_value(BG, GG, *args, 0, 0.01)

    assert 0 < discounted[0] < undiscounted[0]
    assert nothing.tolist() == [0.0]


def test_summarise_merges_same_period_purchases_and_counts_repeats_only() -> None:
    summary = summarise(
        customer_ids=["b", "a", "a", "a", "b", "c", "a"],
        times_in_periods=[2.0, 1.0, 1.0, 4.0, 9.0, 10.0, 12.0],
        amounts=[5.0, 10.0, 2.0, 30.0, 7.0, 1.0, 99.0],
        calibration_end=10.0,
    )

    assert summary.customer_ids.tolist() == ["a", "b"]
    assert summary.x.tolist() == [1.0, 1.0]
    assert summary.t_x.tolist() == [3.0, 7.0]
    assert summary.T.tolist() == [9.0, 8.0]
    assert summary.mean_spend.tolist() == [30.0, 7.0]


@pytest.mark.parametrize(
    ("x", "t_x", "T", "message"),
    [
        ([1, 2], [1.0], [2.0], "x, t_x and T must have equal lengths"),
        ([-1], [0.0], [2.0], "x must contain non-negative integers"),
        ([1.5], [1.0], [2.0], "x must contain non-negative integers"),
        ([1], [3.0], [2.0], "t_x must satisfy 0 <= t_x <= T"),
        ([1], [-1.0], [2.0], "t_x must satisfy 0 <= t_x <= T"),
        ([0], [0.0], [0.0], "T must be positive"),
        ([0], [1.0], [2.0], "t_x must be 0 where x is 0"),
        ([1], [np.nan], [2.0], "t_x must contain only finite numbers"),
    ],
)
def test_bgnbd_input_validation_names_the_argument(
    x: list[float], t_x: list[float], T: list[float], message: str  # noqa: N803
) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        fit_bgnbd(x, t_x, T)


def test_gamma_gamma_rejects_customers_without_repeat_purchases() -> None:
    with pytest.raises(ValueError, match="x must contain positive integers"):
        fit_gamma_gamma([0, 2], [10.0, 20.0])


def test_gamma_gamma_rejects_non_positive_spend() -> None:
    with pytest.raises(ValueError, match="mean_spend must be positive"):
        fit_gamma_gamma([1, 2], [0.0, 20.0])


def test_clv_rejects_negative_discount_rate() -> None:
    with pytest.raises(ValueError, match="discount_rate must be a non-negative"):
        customer_lifetime_value(BG, GG, [1], [1.0], [2.0], [5.0], 10, -0.1)


def test_summarise_rejects_unequal_lengths() -> None:
    with pytest.raises(ValueError, match="customer_ids, times_in_periods and amounts"):
        summarise([1, 2], [0.0], [1.0, 2.0], calibration_end=5.0)


positive = st.floats(min_value=1e-3, max_value=1e3)


@settings(max_examples=60, deadline=None)
@given(
    r=positive, alpha=positive, a=positive, b=positive,
    x=st.integers(min_value=0, max_value=10_000),
    age=positive, recency_share=st.floats(min_value=0.0, max_value=1.0),
)
def test_bgnbd_log_likelihood_is_finite_for_valid_inputs(
    r: float, alpha: float, a: float, b: float, x: int, age: float, recency_share: float
) -> None:
    t_x = age * recency_share if x > 0 else 0.0

    terms = log_likelihood_terms(
        r, alpha, a, b, np.array([float(x)]), np.array([t_x]), np.array([age])
    )

    assert np.isfinite(terms[0])


def simulate_bgnbd(
    params: BgNbdParams, customers: int, age: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    rates = rng.gamma(params.r, 1 / params.alpha, customers)
    dropouts = rng.beta(params.a, params.b, customers)
    x, t_x = np.zeros(customers), np.zeros(customers)
    for customer in range(customers):
        clock = rng.exponential(1 / rates[customer])
        while clock <= age:
            x[customer], t_x[customer] = x[customer] + 1, clock
            if rng.random() < dropouts[customer]:
                break
            clock += rng.exponential(1 / rates[customer])
    return x, t_x, np.full(customers, age)


def test_fit_bgnbd_recovers_simulated_parameters() -> None:
    truth = BgNbdParams(r=0.5, alpha=5.0, a=0.8, b=2.5, log_likelihood=0.0, n=0)
    x, t_x, age = simulate_bgnbd(truth, customers=4000, age=52.0, seed=7)

    fitted = fit_bgnbd(x, t_x, age)

    assert fitted.r == pytest.approx(truth.r, rel=0.15)
    assert fitted.alpha == pytest.approx(truth.alpha, rel=0.2)
    assert fitted.a == pytest.approx(truth.a, rel=0.3)
    assert fitted.b == pytest.approx(truth.b, rel=0.3)


def test_fit_gamma_gamma_recovers_simulated_parameters() -> None:
    rng = np.random.default_rng(11)
    x = rng.integers(1, 15, size=4000).astype(float)
    scales = 1 / rng.gamma(4.0, 1 / 20.0, size=4000)
    mean_spend = rng.gamma(6.0 * x, scales) / x

    fitted = fit_gamma_gamma(x, mean_spend)

    assert fitted.p == pytest.approx(6.0, rel=0.1)
    assert fitted.q == pytest.approx(4.0, rel=0.15)
    assert fitted.v == pytest.approx(20.0, rel=0.2)


def simulate_bgnbd_days(
    params: BgNbdParams, customers: int, seed: int, calibration_days: int = 273
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BG/NBD customers born on whole days of the first 12 weeks, purchases on whole days.

    x = min(purchases of the Poisson process by T, purchases before dropping out) and the
    last of n uniform purchase times is T times a Beta(x, n - x + 1) order statistic.
    """
    rng = np.random.default_rng(seed)
    rates = rng.gamma(params.r, 1 / params.alpha, customers)
    dropouts = rng.beta(params.a, params.b, customers)
    age_days = calibration_days - rng.integers(0, 84, customers)
    age = age_days / 7
    arrivals = rng.poisson(rates * age)
    x = np.minimum(arrivals, rng.geometric(dropouts))
    last = age * rng.beta(np.maximum(x, 1), np.maximum(arrivals - x + 1, 1))
    t_x = np.where(x > 0, np.minimum(np.ceil(last * 7), age_days) / 7, 0.0)
    return x.astype(float), t_x, age


def random_log_params(rng: np.random.Generator, size: int) -> np.ndarray:
    return np.log(rng.uniform(0.1, 5.0, size))


def central_differences(function: Callable[[np.ndarray], float], point: np.ndarray) -> np.ndarray:
    step = 1e-5
    return np.array([
        (function(point + step * unit) - function(point - step * unit)) / (2 * step)
        for unit in np.eye(len(point))
    ])


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_bgnbd_gradient_matches_central_differences(seed: int) -> None:
    rng = np.random.default_rng(seed)
    data = count_rfm(*simulate_bgnbd_days(BG, customers=3000, seed=seed))
    point = random_log_params(rng, 4)

    _, gradient = bgnbd.mean_log_likelihood(point, data)

    numeric = central_differences(lambda p: bgnbd.mean_log_likelihood(p, data)[0], point)
    assert gradient == pytest.approx(numeric, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_gamma_gamma_gradient_matches_central_differences(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.integers(1, 30, size=2000).astype(float)
    data = sum_spend(x, rng.gamma(2.0, 20.0, size=2000))
    point = random_log_params(rng, 3)

    _, gradient = gamma_gamma.mean_log_likelihood(point, data)

    numeric = central_differences(lambda p: gamma_gamma.mean_log_likelihood(p, data)[0], point)
    assert gradient == pytest.approx(numeric, rel=1e-6, abs=1e-9)


def test_collapsed_bgnbd_likelihood_equals_the_plain_mean() -> None:
    x, t_x, age = simulate_bgnbd_days(BG, customers=20_000, seed=3)
    data = count_rfm(x, t_x, age)
    point = np.log(np.array([0.3, 5.0, 0.9, 2.0]))

    value, _ = bgnbd.mean_log_likelihood(point, data)

    r, alpha, a, b = np.exp(point)
    plain = np.mean(log_likelihood_terms(r, alpha, a, b, x, t_x, age))
    repeaters = int(np.sum(x > 0))
    assert len(data.repeat_rows.x) < repeaters  # whole days: some customers share a row
    assert data.repeat_rows.counts.sum() == repeaters
    assert data.x_counts.sum() == 20_000
    assert value == pytest.approx(plain, rel=1e-12)


def test_collapsed_gamma_gamma_likelihood_equals_the_plain_mean() -> None:
    rng = np.random.default_rng(5)
    x = rng.integers(1, 12, size=5000).astype(float)
    mean_spend = rng.gamma(3.0, 10.0, size=5000)
    point = np.log(np.array([4.0, 3.0, 12.0]))

    value, _ = gamma_gamma.mean_log_likelihood(point, sum_spend(x, mean_spend))

    p, q, v = np.exp(point)
    plain = np.mean(gamma_gamma.log_likelihood_terms(p, q, v, x, mean_spend))
    assert value == pytest.approx(plain, rel=1e-12)


def test_count_rfm_counts_each_distinct_row_once() -> None:
    data = count_rfm(
        [0, 0, 2, 2, 2, 1], [0.0, 0.0, 3.0, 3.0, 1.0, 3.0], [5.0, 4.0, 5.0, 5.0, 5.0, 5.0]
    )

    assert data.n == 6
    assert data.x_values.tolist() == [0.0, 1.0, 2.0]
    assert data.x_counts.tolist() == [2.0, 1.0, 3.0]
    assert data.ages.tolist() == [4.0, 5.0]
    assert data.idle_counts.tolist() == [1.0, 1.0]
    rows = data.repeat_rows
    assert rows.x.tolist() == [1.0, 2.0, 2.0]
    assert data.recencies[rows.recency_index].tolist() == [3.0, 1.0, 3.0]
    assert rows.counts.tolist() == [1.0, 1.0, 2.0]


def test_fits_reject_empty_input() -> None:
    with pytest.raises(ValueError, match="x must not be empty"):
        fit_bgnbd([], [], [])
    with pytest.raises(ValueError, match="x must not be empty"):
        fit_gamma_gamma([], [])


def test_fit_bgnbd_recovers_parameters_of_a_large_simulated_population() -> None:
    x, t_x, age = simulate_bgnbd_days(BG, customers=200_000, seed=17)

    fitted = fit_bgnbd(x, t_x, age)

    assert fitted.n == 200_000
    assert fitted.r == pytest.approx(BG.r, rel=0.05)
    assert fitted.alpha == pytest.approx(BG.alpha, rel=0.05)
    assert fitted.a == pytest.approx(BG.a, rel=0.08)
    assert fitted.b == pytest.approx(BG.b, rel=0.08)
    _, gradient = bgnbd.mean_log_likelihood(
        np.log([fitted.r, fitted.alpha, fitted.a, fitted.b]), count_rfm(x, t_x, age)
    )
    assert np.max(np.abs(gradient)) < 1e-7


def test_fit_gamma_gamma_recovers_parameters_of_a_large_simulated_population() -> None:
    rng = np.random.default_rng(19)
    x = rng.integers(1, 15, size=100_000).astype(float)
    scales = 1 / rng.gamma(GG.q, 1 / GG.v, size=100_000)
    mean_spend = rng.gamma(GG.p * x, scales) / x

    fitted = fit_gamma_gamma(x, mean_spend)

    assert fitted.p == pytest.approx(GG.p, rel=0.03)
    assert fitted.q == pytest.approx(GG.q, rel=0.03)
    assert fitted.v == pytest.approx(GG.v, rel=0.05)
