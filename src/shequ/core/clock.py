"""An injectable clock: services take a ``Clock`` instead of calling ``datetime.now``."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Protocol

from shequ.core.errors import ValidationFailed


class Clock(Protocol):
    """Anything that tells the current time as an aware UTC datetime."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that stands still until moved; for tests and deterministic jobs."""

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self._at = at.astimezone(UTC)

    def now(self) -> datetime:
        return self._at

    def advance(self, delta: timedelta) -> None:
        """Move the clock forward by ``delta``."""
        self._at += delta


def as_utc(value: datetime) -> datetime:
    """Normalise an aware datetime to UTC; naive datetimes are taken as UTC (SQLite drops tz)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_day(raw: str, field: str) -> date:
    """A ``YYYY-MM-DD`` day given by a user; ``ValidationFailed("bad_date")`` naming
    ``field`` otherwise."""
    try:
        return date.fromisoformat(raw)
    except ValueError as exc:
        raise ValidationFailed("bad_date", f"{raw!r} is not a date (YYYY-MM-DD)", field) from exc
