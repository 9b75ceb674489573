"""Whole local days as integers: day numbers (days since 1970-01-01) and the local day
numbers of stored UTC instants, vectorised. The lifecycle and the customer-value models
count in these, so both read the stores' times through the same conversion."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from numpy.typing import NDArray

EPOCH = date(1970, 1, 1)
NEVER = np.iinfo(np.int64).max
"""The day number of a time that never came (a missing instant; an order never refunded)."""


def day_number(day: date) -> int:
    """Days since 1970-01-01."""
    return (day - EPOCH).days


def day_of(number: int) -> date:
    """The date of a day number."""
    return EPOCH + timedelta(days=number)


def instants(values: Sequence[datetime | str | None] | pd.Series | NDArray[np.datetime64]
             ) -> pd.Series:
    """UTC instants of stored times: aware datetimes, SQLite's UTC ISO text, or a
    ``datetime64`` array of UTC instants."""
    if isinstance(values, np.ndarray) and np.issubdtype(values.dtype, np.datetime64):
        return pd.Series(pd.to_datetime(values, utc=True))
    raw = pd.Series(list(values), dtype="object")
    return pd.to_datetime(raw, utc=True, format="ISO8601")


def local_days(stamps: pd.Series, zone: ZoneInfo) -> NDArray[np.int64]:
    """Local day numbers in ``zone`` of UTC instants (:func:`instants`); a missing one
    becomes :data:`NEVER`."""
    local = stamps.dt.tz_convert(zone).dt.tz_localize(None).dt.floor("D")
    days = local.to_numpy(dtype="datetime64[D]", na_value=np.datetime64("NaT"))
    numbers: NDArray[np.int64] = days.astype(np.int64)
    numbers[np.isnat(days)] = NEVER
    return numbers
