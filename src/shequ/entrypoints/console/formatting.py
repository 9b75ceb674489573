"""Number formats the analytics pages and their CSV exports share."""

from __future__ import annotations


class Msg(str):
    """A table cell that is a message id: pages and CSV exports translate it."""

    __slots__ = ()


def percent(value: float | None, digits: int = 1) -> str:
    """``0.4312`` → ``43.1%``; ``None`` → ``–``."""
    return "–" if value is None else f"{value * 100:.{digits}f}%"


def seconds(value: float | None) -> str:
    """A duration for tables: ``45s``, ``3.2min``, ``1.5h``; ``None`` → ``–``."""
    if value is None:
        return "–"
    if value < 60:
        return f"{value:.0f}s"
    if value < 3600:
        return f"{value / 60:.1f}min"
    return f"{value / 3600:.1f}h"
