"""The demo window, Shanghai-time daily patterns and vectorised timestamp sampling.

Times are handled as ``int64`` microseconds since the Unix epoch (UTC) and turned into aware
UTC ``datetime`` objects only when rows are built. The business day is a Shanghai day
(UTC+8, no daylight saving), so a window day starts at 16:00 UTC of the previous date.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from shequ.demo.sizes import PRE_WINDOW_DAYS

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
Arr = npt.NDArray[Any]

SEC = 1_000_000
MINUTE = 60 * SEC
HOUR = 3600 * SEC
DAY = 24 * HOUR
SHANGHAI_OFFSET = 8 * HOUR
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Relative activity per Shanghai local hour 0..23: quiet at night, peaks at 12 and 20-22.
HOUR_WEIGHTS: Floats = np.array(
    [0.9, 0.5, 0.3, 0.2, 0.15, 0.2, 0.4, 0.9, 1.6, 2.1, 2.4, 2.7,
     3.3, 2.9, 2.3, 2.1, 2.1, 2.3, 2.6, 3.0, 3.8, 4.2, 3.9, 2.2],
    dtype=np.float64,
)
# Monday..Sunday: weekends are busier.
WEEKDAY_FACTORS = (0.95, 0.93, 0.95, 0.97, 1.05, 1.28, 1.22)
# Shopping festivals (month, day) -> factor; applied only when the date is in the window.
PROMO_FACTORS = {(11, 10): 1.5, (11, 11): 2.4, (11, 12): 1.3}
TREND_GROWTH = 0.15  # activity grows by 15 % over the window


def to_datetime(us: int) -> datetime:
    """An aware UTC datetime from integer microseconds since the epoch (exact)."""
    return EPOCH + timedelta(microseconds=int(us))


def to_us(value: datetime) -> int:
    """Integer microseconds since the epoch of an aware datetime (exact)."""
    return (value - EPOCH) // timedelta(microseconds=1)


def local_midnight_us(day: date) -> int:
    """Microseconds since the epoch of Shanghai midnight at the start of ``day``."""
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return (midnight - EPOCH) // timedelta(microseconds=1) - SHANGHAI_OFFSET


@dataclass(frozen=True)
class Window:
    """``days`` Shanghai days starting at local midnight of ``first_day``."""

    first_day: date
    days: int

    @property
    def start_us(self) -> int:
        """The first instant of the window."""
        return local_midnight_us(self.first_day)

    @property
    def end_us(self) -> int:
        """The first instant after the window."""
        return self.start_us + self.days * DAY

    def day_us(self, day: int) -> int:
        """The first instant of window day ``day`` (may be negative or past the end)."""
        return self.start_us + day * DAY

    def local_date(self, day: int) -> date:
        """The Shanghai calendar date of window day ``day``."""
        return self.first_day + timedelta(days=day)

    def day_index(self, us: Arr) -> Ints:
        """Window day index of each timestamp (negative before the window)."""
        return np.floor_divide(np.asarray(us, dtype=np.int64) - self.start_us, DAY)


def day_factor(day: date, share: float) -> float:
    """Relative activity of a calendar day at position ``share`` (0..1) of the window."""
    promo = PROMO_FACTORS.get((day.month, day.day), 1.0)
    return WEEKDAY_FACTORS[day.weekday()] * (1.0 + TREND_GROWTH * share) * promo


class TimeSampler:
    """Draws timestamps following the day and hour-of-day pattern between per-row bounds.

    It covers the window plus ``PRE_WINDOW_DAYS`` before it, in hourly slots weighted by
    the day factor times the Shanghai hour weight; bounds are honoured exactly.
    """

    def __init__(self, window: Window) -> None:
        self.window = window
        self.origin = window.start_us - PRE_WINDOW_DAYS * DAY
        total_days = window.days + PRE_WINDOW_DAYS
        first = window.first_day - timedelta(days=PRE_WINDOW_DAYS)
        factors = np.array(
            [day_factor(first + timedelta(days=d), max(0.0, (d - PRE_WINDOW_DAYS) / window.days))
             for d in range(total_days)],
            dtype=np.float64,
        )
        weights = (factors[:, None] * HOUR_WEIGHTS[None, :]).ravel()
        self.slots = weights.size
        self.cdf: Floats = np.concatenate([[0.0], np.cumsum(weights)])

    def sample(self, rng: np.random.Generator, lo_us: Arr, hi_us: Arr) -> Ints:
        """One timestamp (whole seconds) per row with ``lo <= t < hi``; needs ``lo < hi``."""
        lo = np.asarray(lo_us, dtype=np.int64)
        hi = np.asarray(hi_us, dtype=np.int64)
        lo_slot = np.clip((lo - self.origin) // HOUR, 0, self.slots - 1)
        hi_slot = np.clip(-((self.origin - hi) // HOUR), lo_slot + 1, self.slots)
        a = self.cdf[lo_slot]
        b = self.cdf[hi_slot]
        x = a + rng.random(lo.size) * (b - a)
        slot = np.clip(np.searchsorted(self.cdf, x, side="right") - 1, lo_slot, hi_slot - 1)
        t = self.origin + slot * HOUR + rng.integers(0, 3600, lo.size) * SEC
        lo_sec = -((-lo) // SEC) * SEC
        hi_sec = (hi - 1) // SEC * SEC
        out: Ints = np.clip(t, lo_sec, np.maximum(hi_sec, lo_sec)).astype(np.int64)
        return out

    def uniform(self, rng: np.random.Generator, lo_us: Arr, hi_us: Arr) -> Ints:
        """Uniform whole-second timestamps with ``lo <= t < hi`` (no daily pattern)."""
        lo = np.asarray(lo_us, dtype=np.int64)
        hi = np.asarray(hi_us, dtype=np.int64)
        span = np.maximum((hi - lo) // SEC, 1)
        out: Ints = lo + (rng.random(lo.size) * span).astype(np.int64) * SEC
        return out


def seconds(values: Arr) -> Ints:
    """Round float seconds to whole seconds as int64 microseconds."""
    return (np.rint(np.asarray(values, dtype=np.float64)) * SEC).astype(np.int64)
