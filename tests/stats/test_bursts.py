"""Burst detection on hourly counts: the tests it runs, its false alarms on stationary
Poisson noise (measured over many seeds) and planted steps it must find."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shequ.stats.bursts import (
    DEFAULT_SETTINGS,
    BurstSettings,
    activity_factors,
    baseline_rates,
    detect,
    passes,
    poisson_tail,
)

DAY = 24
BASELINE_DAYS = 28
TESTED_DAYS = 28
RATES = (0.01, 0.1, 1.0, 5.0)  # negative texts per hour: a quiet product to a busy topic
SEEDS = 250
# Share of 28-day series of stationary Poisson noise with any burst, per rate (measured
# by test_false_alarms_on_stationary_noise; docs/crisis.md quotes it).
MAX_FALSE_ALARM_SHARE = 0.01


def noise(seed: int, rate: float, days: int = BASELINE_DAYS + TESTED_DAYS) -> np.ndarray:
    return np.random.default_rng(seed).poisson(rate, days * DAY)


def test_poisson_tail_matches_the_sum_of_the_mass_function() -> None:
    for observed, expected in ((5, 0.5), (1, 2.0), (16, 0.4), (0, 3.0)):
        below = sum(math.exp(-expected) * expected ** k / math.factorial(k)
                    for k in range(observed))
        assert poisson_tail(observed, expected) == pytest.approx(1 - below, rel=1e-9)


def test_passes_needs_count_tail_and_z() -> None:
    assert passes(16, 0.4)
    assert not passes(4, 0.001)  # under the minimum count
    assert not passes(25, 18.8)  # a usual day for a busy scope
    assert passes(40, 5.0)
    assert not passes(6, 0.5, BurstSettings(min_z=20.0))


def test_baseline_rate_is_floored_and_ignores_a_burst_day() -> None:
    quiet = np.zeros(BASELINE_DAYS * DAY, dtype=np.int64)
    assert baseline_rates(quiet, [quiet.size])[0] == pytest.approx(1 / 7 / DAY)
    steady = np.zeros(BASELINE_DAYS * DAY, dtype=np.int64)
    steady[::12] = 1  # two texts a day
    steady[5 * DAY + 3] += 40  # ...and one day with 42
    rate = baseline_rates(steady, [steady.size])[0]
    assert rate == pytest.approx(2 / DAY)
    too_short = baseline_rates(steady, [6 * DAY])[0]
    assert math.isnan(too_short)


def test_activity_factor_raises_but_never_lowers() -> None:
    exposure = np.full(40 * DAY, 10.0)
    exposure[35 * DAY:36 * DAY] = 30.0
    exposure[37 * DAY:38 * DAY] = 1.0
    factors = activity_factors(exposure, np.array([35 * DAY, 37 * DAY]), DAY)
    assert factors[0] == pytest.approx(3.0, rel=0.02)
    assert factors[1] == 1.0


def test_a_planted_burst_is_found_with_its_figures() -> None:
    counts = noise(3, 0.05).copy()
    start = (BASELINE_DAYS + 10) * DAY + 7
    counts[start:start + 48:3] += 1  # 16 texts in 48 hours
    found = detect(counts, BASELINE_DAYS * DAY)
    assert len(found) == 1
    burst = found[0]
    assert start <= burst.start < burst.end <= start + 48  # the sharpest stretch
    assert burst.span_start <= burst.start
    assert burst.observed == int(counts[burst.start:burst.end].sum())
    assert burst.observed >= 16
    assert burst.p_value < 1e-12
    assert burst.z > 10


def test_few_texts_on_a_silent_scope_are_no_burst() -> None:
    counts = np.zeros((BASELINE_DAYS + 2) * DAY, dtype=np.int64)
    counts[-5] = 2
    counts[-3] = 2  # four complaints where none were: under the minimum count
    assert detect(counts, BASELINE_DAYS * DAY) == []


def test_false_alarms_on_stationary_noise() -> None:
    """Stationary Poisson noise: 28 days of baseline, 28 days tested, per rate over many
    seeds; the share of series with any burst stays under 1 %."""
    for rate in RATES:
        alarms = sum(1 for seed in range(SEEDS)
                     if detect(noise(seed, rate), BASELINE_DAYS * DAY))
        assert alarms / SEEDS <= MAX_FALSE_ALARM_SHARE, (rate, alarms)


def test_false_alarms_with_exposure_do_not_rise() -> None:
    """A steady exposure (every text, negative or not) changes nothing on steady noise."""
    exposure = np.full((BASELINE_DAYS + TESTED_DAYS) * DAY, 20.0)
    for rate in (0.1, 1.0):
        alarms = sum(1 for seed in range(SEEDS)
                     if detect(noise(seed, rate), BASELINE_DAYS * DAY, exposure=exposure))
        assert alarms / SEEDS <= MAX_FALSE_ALARM_SHARE


def test_traffic_growth_is_not_a_burst() -> None:
    """Negative texts that triple with the traffic (a sales peak) raise nothing; the same
    rise without the traffic does."""
    rng = np.random.default_rng(11)
    hours = (BASELINE_DAYS + 7) * DAY
    exposure = np.full(hours, 30.0)
    exposure[-3 * DAY:] = 90.0
    counts = rng.poisson(0.5 * exposure / 30.0)
    assert detect(counts, BASELINE_DAYS * DAY, exposure=exposure) == []
    assert detect(counts, BASELINE_DAYS * DAY)


@settings(max_examples=60, deadline=None)
@given(rate=st.floats(0.005, 3.0), seed=st.integers(0, 10**6),
       day=st.integers(0, TESTED_DAYS - 3), hour=st.integers(0, 23))
def test_a_planted_step_is_found(rate: float, seed: int, day: int, hour: int) -> None:
    counts = noise(seed, rate).copy()
    start = (BASELINE_DAYS + day) * DAY + hour
    extra = 10 + 2 * math.ceil(rate * DAY)  # triples a day's texts, and at least 10 more
    rng = np.random.default_rng(seed + 1)
    np.add.at(counts, start + rng.integers(0, DAY, extra), 1)
    found = detect(counts, BASELINE_DAYS * DAY)
    assert any(b.start < start + DAY and b.end > start for b in found)


@settings(max_examples=60, deadline=None)
@given(rate=st.floats(0.0, 2.0), seed=st.integers(0, 10**6),
       spikes=st.lists(st.tuples(st.integers(0, 55 * DAY), st.integers(1, 30)), max_size=4))
def test_bursts_are_ordered_disjoint_and_add_up(rate: float, seed: int,
                                               spikes: list[tuple[int, int]]) -> None:
    counts = noise(seed, rate).copy()
    for at, size in spikes:
        counts[at] += size
    found = detect(counts, BASELINE_DAYS * DAY)
    for burst in found:
        assert counts[burst.start] > 0
        assert counts[burst.end - 1] > 0
        assert burst.observed == int(counts[burst.start:burst.end].sum())
        assert burst.observed >= DEFAULT_SETTINGS.min_count
        assert 0 <= burst.p_value <= 1
        assert burst.expected > 0
        assert burst.span_start <= burst.start < burst.end <= burst.span_end
        assert counts[burst.span_start] > 0
        assert counts[burst.span_end - 1] > 0
    for first, second in itertools.pairwise(found):
        assert first.span_end < second.span_start


@settings(max_examples=60, deadline=None)
@given(rate=st.floats(0.0, 2.0), seed=st.integers(0, 10**6),
       busy=st.floats(1.0, 5.0), spike=st.integers(5, 60))
def test_exposure_only_removes_bursts(rate: float, seed: int, busy: float,
                                      spike: int) -> None:
    """Exposure never lowers an expectation, so every burst found with it lies inside a
    burst found without it."""
    counts = noise(seed, rate).copy()
    counts[(BASELINE_DAYS + 5) * DAY] += spike
    exposure = np.full(counts.size, 10.0)
    exposure[(BASELINE_DAYS + 4) * DAY:(BASELINE_DAYS + 7) * DAY] *= busy
    plain = detect(counts, BASELINE_DAYS * DAY)
    for burst in detect(counts, BASELINE_DAYS * DAY, exposure=exposure):
        assert any(p.start <= burst.start and burst.end <= p.end for p in plain)


def test_a_new_feed_has_no_baseline_yet() -> None:
    """With exposure, history counts from the first hour with any text: a feed that just
    started (reviews arriving days after the first orders) is not judged for a week."""
    hours = (BASELINE_DAYS + 10) * DAY
    exposure = np.zeros(hours)
    exposure[BASELINE_DAYS * DAY:] = 5.0
    counts = np.zeros(hours, dtype=np.int64)
    counts[BASELINE_DAYS * DAY + 10:BASELINE_DAYS * DAY + 40:3] = 1
    assert detect(counts, BASELINE_DAYS * DAY, exposure=exposure) == []
    assert detect(counts, BASELINE_DAYS * DAY)  # without exposure: empty history, a burst


@pytest.mark.parametrize(("changes", "message"), [
    ({"windows": ()}, "windows"), ({"baseline_hours": 100}, "multiple of 24"),
    ({"min_history_hours": 10}, "min_history_hours"), ({"min_count": 0}, "min_count"),
    ({"max_p_value": 0.0}, "max_p_value"), ({"floor_per_day": 0.0}, "floor_per_day"),
    ({"windows": (24 * 40,)}, "longer than the baseline"),
])
def test_settings_refuse_nonsense(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BurstSettings(**changes)  # type: ignore[arg-type]


def test_counts_are_checked() -> None:
    with pytest.raises(ValueError, match="negative"):
        detect([1, -1, 0])
    with pytest.raises(ValueError, match="whole"):
        detect([0.5, 1.0])
    with pytest.raises(ValueError, match="one value per hour"):
        detect([1, 2, 3], exposure=[1.0, 2.0])
    with pytest.raises(ValueError, match="test_from"):
        detect([1, 2, 3], 4)
