"""Money in fen and the injectable clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from shequ.core.clock import FixedClock
from shequ.core.money import format_fen, yuan_to_fen


@pytest.mark.parametrize(("text", "fen"), [("12.5", 1250), ("¥1,234.56", 123456), ("0", 0),
                                           ("99.99", 9999)])
def test_yuan_to_fen(text: str, fen: int) -> None:
    assert yuan_to_fen(text) == fen


@pytest.mark.parametrize("text", ["1.234", "abc", "NaN", "inf"])
def test_yuan_to_fen_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=r"decimals|amount"):
        yuan_to_fen(text)


def test_format_fen_chinese_way() -> None:
    assert format_fen(123456) == "¥1,234.56"
    assert format_fen(123_456_78) == "¥12.35万"
    assert format_fen(123_456_78, locale="en") == "¥123,456.78"
    assert format_fen(3 * 10**10) == "¥3.00亿"
    assert format_fen(123_450_00) == "¥12.35万"  # half up, not half to even


def test_fixed_clock_moves_only_when_told() -> None:
    clock = FixedClock(datetime(2026, 1, 1, 8, tzinfo=timezone(timedelta(hours=8))))
    assert clock.now() == datetime(2026, 1, 1, 0, tzinfo=UTC)
    clock.advance(timedelta(minutes=5))
    assert clock.now() == datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
    with pytest.raises(ValueError, match="aware"):
        FixedClock(datetime(2026, 1, 1))
