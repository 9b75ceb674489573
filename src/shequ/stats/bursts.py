"""Bursts in hourly counts of negative texts (crisis detection, docs/crisis.md).

The input is one scope's (a product, a brand or a topic) hourly counts of negative texts,
oldest first. Every window of ``windows`` hours (6, 12, 24 and 48 by default) that ends in
the tested stretch is compared with the baseline of the ``baseline_hours`` before it:

* **Baseline rate** (texts per hour): the mean of the whole days of the baseline, after
  dropping the days that are bursts themselves (a day count above the Poisson
  ``1 - outlier_day_p`` quantile of the plain mean), so one earlier crisis does not hide
  the next. It is floored at ``floor_per_day`` / 24: a product with no negative text in
  four weeks expects one a week, so two complaints in an hour are not a crisis.
* **Poisson tail**: ``p = P(X >= observed)`` for ``X ~ Poisson(rate * hours)``, one-sided
  because only rises matter.
* **Robust z**: ``(observed - expected) / scale`` where ``scale`` is the larger of the
  Poisson standard deviation ``sqrt(expected)`` and ``1.4826 * MAD`` of the baseline's
  sums over consecutive windows of the same length. Counts that swing more than Poisson
  noise (a scope with weekly rhythms) thus need a larger rise to count.

A window is flagged when it holds at least ``min_count`` texts, its ``p`` is at most
``max_p_value`` and its ``z`` at least ``min_z``; both tests must agree, so a rise that is
only improbable under Poisson but usual for this scope's swings is not flagged. Flagged
windows that overlap or touch are merged; within the merged span the stretch between two
hours holding texts that is least probable under the baseline (a scan statistic) is the
burst, and its own observed, expected, ``p`` and ``z`` (against the baseline before it)
are reported, with the merged span trimmed to its first and last hour holding texts.

Many windows and scopes are tested at once, so the per-window threshold is small
(1e-6 by default); ``tests/stats/test_bursts.py`` measures the false-alarm rate on
stationary Poisson noise over many seeds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

MAD_SCALE = 1.4826
HOURS_PER_DAY = 24


@dataclass(frozen=True, slots=True)
class BurstSettings:
    """The thresholds of :func:`detect` (defaults: docs/crisis.md)."""

    windows: tuple[int, ...] = (6, 12, 24, 48)
    baseline_hours: int = 28 * HOURS_PER_DAY
    min_history_hours: int = 7 * HOURS_PER_DAY
    min_count: int = 5
    max_p_value: float = 1e-6
    min_z: float = 4.0
    floor_per_day: float = 1 / 7
    outlier_day_p: float = 1e-3

    def __post_init__(self) -> None:
        if not self.windows or any(w < 1 for w in self.windows):
            raise ValueError(f"windows must be positive hour counts, got {self.windows}")
        if self.baseline_hours < HOURS_PER_DAY or self.baseline_hours % HOURS_PER_DAY:
            raise ValueError("baseline_hours must be a positive multiple of 24, got "
                             f"{self.baseline_hours}")
        if not HOURS_PER_DAY <= self.min_history_hours <= self.baseline_hours:
            raise ValueError("min_history_hours must lie between 24 and baseline_hours, got "
                             f"{self.min_history_hours}")
        if max(self.windows) > self.baseline_hours:
            raise ValueError("a window may not be longer than the baseline")
        if self.min_count < 1:
            raise ValueError(f"min_count must be at least 1, got {self.min_count}")
        if not 0 < self.max_p_value < 1:
            raise ValueError(f"max_p_value must lie in (0, 1), got {self.max_p_value}")
        if not math.isfinite(self.min_z):
            raise ValueError("min_z must be finite")
        if not self.floor_per_day > 0:
            raise ValueError(f"floor_per_day must be above 0, got {self.floor_per_day}")
        if not 0 < self.outlier_day_p < 1:
            raise ValueError(f"outlier_day_p must lie in (0, 1), got {self.outlier_day_p}")


DEFAULT_SETTINGS = BurstSettings()


@dataclass(frozen=True, slots=True)
class Burst:
    """A burst: its sharpest stretch ``[start, end)`` (indexes into the counts) with the
    texts observed there, the number expected from the baseline, the Poisson tail
    ``p_value``, the robust ``z`` and the baseline ``rate`` per hour; and the ``span``
    of every flagged window around it, trimmed to hours holding texts."""

    start: int
    end: int
    observed: int
    expected: float
    p_value: float
    z: float
    rate: float
    span_start: int
    span_end: int


def poisson_tail(observed: ArrayLike, expected: ArrayLike) -> FloatArray:
    """``P(X >= observed)`` for ``X ~ Poisson(expected)``, elementwise."""
    k = np.asarray(observed, dtype=np.float64)
    mu = np.asarray(expected, dtype=np.float64)
    return np.asarray(stats.poisson.sf(k - 1, mu), dtype=np.float64)


def passes(observed: int, expected: float, settings: BurstSettings = DEFAULT_SETTINGS
           ) -> bool:
    """Whether ``observed`` texts against ``expected`` pass the count, Poisson tail and z
    tests, with the Poisson scale ``sqrt(expected)`` (never above the robust one, so this
    passes whenever a window with these counts could be flagged)."""
    if observed < settings.min_count:
        return False
    if expected <= 0:
        return True
    p_value = float(poisson_tail(observed, expected))
    z = (observed - expected) / math.sqrt(expected)
    return p_value <= settings.max_p_value and z >= settings.min_z


def _cumulative(counts: IntArray) -> IntArray:
    return np.concatenate(([0], np.cumsum(counts))).astype(np.int64)


def _block_sums(cs: IntArray, starts: IntArray, length: int, blocks: int) -> FloatArray:
    """Sums of the ``blocks`` consecutive ``length``-hour blocks before each start (NaN
    where a block would begin before hour 0); row per start, newest block first."""
    offsets = length * np.arange(blocks + 1, dtype=np.int64)
    edges = starts[:, None] - offsets[None, :]
    valid = edges[:, 1:] >= 0
    safe = np.clip(edges, 0, None)
    sums = (cs[safe[:, :-1]] - cs[safe[:, 1:]]).astype(np.float64)
    return np.where(valid, sums, np.nan)


def baseline_rates(counts: ArrayLike, starts: ArrayLike,
                   settings: BurstSettings = DEFAULT_SETTINGS) -> FloatArray:
    """Baseline texts per hour before each hour index in ``starts`` (module docstring);
    NaN where fewer than ``min_history_hours`` lie before it."""
    values = np.asarray(counts, dtype=np.int64)
    at = np.asarray(starts, dtype=np.int64)
    days = _block_sums(_cumulative(values), at, HOURS_PER_DAY,
                       settings.baseline_hours // HOURS_PER_DAY)
    known = np.isfinite(days)
    n_days = known.sum(axis=1)
    floor = settings.floor_per_day
    with np.errstate(invalid="ignore", divide="ignore"):
        plain = np.where(n_days > 0, np.nansum(days, axis=1) / np.maximum(n_days, 1), 0.0)
        cutoff = stats.poisson.isf(settings.outlier_day_p, np.maximum(plain, floor))
        kept = known & (days <= cutoff[:, None])
        kept_days = kept.sum(axis=1)
        robust = np.where(kept_days > 0,
                          np.where(kept, days, 0.0).sum(axis=1) / np.maximum(kept_days, 1),
                          plain)
    rate = np.maximum(robust, floor) / HOURS_PER_DAY
    enough = n_days * HOURS_PER_DAY >= settings.min_history_hours
    return np.where(enough, rate, np.nan)


def _robust_z(cs: IntArray, starts: IntArray, length: int, observed: FloatArray,
              expected: FloatArray, settings: BurstSettings) -> FloatArray:
    blocks = max(settings.baseline_hours // length, 1)
    sums = _block_sums(cs, starts, length, blocks)
    scale = np.sqrt(expected)
    rows = np.isfinite(sums).any(axis=1)
    if rows.any():
        median = np.nanmedian(sums[rows], axis=1)
        mad = np.nanmedian(np.abs(sums[rows] - median[:, None]), axis=1)
        scale[rows] = np.maximum(scale[rows], MAD_SCALE * mad)
    return np.asarray((observed - expected) / scale, dtype=np.float64)


def activity_factors(exposure: FloatArray | None, starts: IntArray, length: int,
                     settings: BurstSettings = DEFAULT_SETTINGS) -> FloatArray:
    """How many times busier than its baseline each window ``[start, start + length)``
    is, by ``exposure`` (texts of any sentiment per hour), never below 1: the expectation
    follows traffic up (a sales peak, a growing community) but is never lowered."""
    if exposure is None:
        return np.ones(starts.size)
    cs = np.concatenate(([0.0], np.cumsum(exposure)))
    first = np.clip(starts - settings.baseline_hours, 0, None)
    base_hours = starts - first
    with np.errstate(invalid="ignore", divide="ignore"):
        base_rate = (cs[starts] - cs[first]) / np.maximum(base_hours, 1)
        window_rate = (cs[starts + length] - cs[starts]) / length
        factor = np.where(base_rate > 0, window_rate / base_rate, 1.0)
    return np.asarray(np.maximum(factor, 1.0), dtype=np.float64)


def _flagged(values: IntArray, exposure: FloatArray | None, cs: IntArray, test_from: int,
             settings: BurstSettings) -> list[tuple[int, int]]:
    """``[start, end)`` of every flagged window ending after ``test_from``."""
    n = values.size
    found: list[tuple[int, int]] = []
    for length in settings.windows:
        ends = np.arange(max(test_from + 1, length), n + 1, dtype=np.int64)
        if ends.size == 0:
            continue
        starts = ends - length
        observed = (cs[ends] - cs[starts]).astype(np.float64)
        candidate = observed >= settings.min_count
        if not candidate.any():
            continue
        starts, ends, observed = starts[candidate], ends[candidate], observed[candidate]
        rate = baseline_rates(values, starts, settings)
        known = np.isfinite(rate)
        starts, ends, observed = starts[known], ends[known], observed[known]
        expected = rate[known] * length * activity_factors(exposure, starts, length,
                                                           settings)
        p_value = poisson_tail(observed, expected)
        keep = p_value <= settings.max_p_value
        if not keep.any():
            continue
        starts, ends = starts[keep], ends[keep]
        z = _robust_z(cs, starts, length, observed[keep], expected[keep], settings)
        found.extend(zip(starts[z >= settings.min_z].tolist(),
                         ends[z >= settings.min_z].tolist(), strict=True))
    return found


def _merged(spans: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _sharpest(values: IntArray, exposure: FloatArray | None, cs: IntArray, start: int,
              end: int, settings: BurstSettings) -> tuple[int, int]:
    """The stretch of ``[start, end)`` from one hour with texts to another that is least
    probable under the baseline before ``start`` (a scan statistic): flagged windows are
    as long as 48 hours and their union also holds ordinary texts around the burst."""
    busy = start + np.flatnonzero(values[start:end])
    at = np.array([start], dtype=np.int64)
    rate = float(baseline_rates(values, at, settings)[0])
    factor = float(activity_factors(exposure, at, end - start, settings)[0])
    firsts, lasts = np.meshgrid(busy, busy, indexing="ij")
    valid = lasts >= firsts
    observed = (cs[lasts + 1] - cs[firsts]).astype(np.float64)
    expected = rate * factor * (lasts + 1 - firsts)
    p_value = np.where(valid, poisson_tail(observed, expected), np.inf)
    best = np.unravel_index(int(np.argmin(p_value)), p_value.shape)
    return int(firsts[best]), int(lasts[best]) + 1


def _described(values: IntArray, exposure: FloatArray | None, cs: IntArray, span_start: int,
               span_end: int, settings: BurstSettings) -> Burst:
    start, end = _sharpest(values, exposure, cs, span_start, span_end, settings)
    busy = np.flatnonzero(values[span_start:span_end])
    span_start, span_end = span_start + int(busy[0]), span_start + int(busy[-1]) + 1
    at = np.array([start], dtype=np.int64)
    rate = float(baseline_rates(values, at, settings)[0])
    observed = float(cs[end] - cs[start])
    expected = rate * (end - start) * float(activity_factors(exposure, at, end - start,
                                                             settings)[0])
    p_value = float(poisson_tail(observed, expected))
    z = float(_robust_z(cs, at, end - start, np.array([observed]), np.array([expected]),
                        settings)[0])
    return Burst(start=start, end=end, observed=int(observed), expected=expected,
                 p_value=p_value, z=z, rate=rate, span_start=span_start, span_end=span_end)


def _checked_exposure(exposure: ArrayLike | None, size: int) -> FloatArray | None:
    if exposure is None:
        return None
    found = np.asarray(exposure, dtype=np.float64)
    if found.shape != (size,):
        raise ValueError(f"exposure must have one value per hour ({size}), got shape "
                         f"{found.shape}")
    if not np.isfinite(found).all() or (found < 0).any():
        raise ValueError("exposure must be finite and not negative")
    return found


def detect(counts: ArrayLike, test_from: int = 0, settings: BurstSettings = DEFAULT_SETTINGS,
           *, exposure: ArrayLike | None = None) -> list[Burst]:
    """Bursts among the windows of ``counts`` (hourly, oldest first) that end after hour
    index ``test_from``; earlier hours only serve as baseline. ``exposure`` (optional, one
    value per hour: texts of any sentiment) raises the expectation of busy windows
    (:func:`activity_factors`). Oldest burst first."""
    values = np.asarray(counts)
    if values.ndim != 1:
        raise ValueError("counts must be one-dimensional")
    if values.size and (not np.issubdtype(values.dtype, np.integer) and
                        not np.array_equal(values, np.round(values))):
        raise ValueError("counts must be whole numbers")
    values = values.astype(np.int64)
    if (values < 0).any():
        raise ValueError("counts may not be negative")
    if not 0 <= test_from <= values.size:
        raise ValueError(f"test_from must lie in [0, {values.size}], got {test_from}")
    traffic = _checked_exposure(exposure, values.size)
    if traffic is not None:
        # A feed that has only just started has no baseline: history counts from the
        # first hour with any text.
        active = np.flatnonzero(traffic + values)
        if active.size == 0:
            return []
        first = int(active[0])
        test_from = max(test_from, first + settings.min_history_hours)
        shift = first
        values, traffic = values[first:], traffic[first:]
        test_from -= shift
        if test_from >= values.size:
            return []
    else:
        shift = 0
    cs = _cumulative(values)
    spans = _merged(_flagged(values, traffic, cs, test_from, settings))
    found = [_described(values, traffic, cs, start, end, settings) for start, end in spans]
    return [Burst(b.start + shift, b.end + shift, b.observed, b.expected, b.p_value, b.z,
                  b.rate, b.span_start + shift, b.span_end + shift) for b in found]
