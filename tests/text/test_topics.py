"""Topic shares per week/month and the rising-topic test."""

from __future__ import annotations

import math
from datetime import date, timedelta

import pytest
from scipy import stats

from shequ.text.topics import (
    Period,
    benjamini_hochberg,
    count_topics,
    period_start,
    periods_between,
    rising_in_shares,
    rising_topics,
    topic_shares,
    two_proportion_z,
    upper_p,
)


def test_period_starts() -> None:
    assert period_start(date(2026, 9, 30), Period.WEEK) == date(2026, 9, 28)  # a Monday
    assert period_start(date(2026, 9, 28), Period.WEEK) == date(2026, 9, 28)
    assert period_start(date(2026, 12, 31), Period.MONTH) == date(2026, 12, 1)
    assert periods_between(date(2026, 11, 15), date(2027, 1, 2), Period.MONTH) == [
        date(2026, 11, 1), date(2026, 12, 1), date(2027, 1, 1)]
    assert len(periods_between(date(2026, 7, 1), date(2026, 9, 30), Period.WEEK)) == 14


def test_weekly_shares_count_each_text_once_per_topic() -> None:
    monday = date(2026, 7, 6)
    days = [monday, monday, monday + timedelta(days=1), monday + timedelta(days=8)]
    topics = [{"price", "logistics"}, {"price"}, set(), {"logistics"}]
    shares = topic_shares(days, topics, Period.WEEK)
    assert shares.periods == [monday, monday + timedelta(days=7)]
    assert shares.totals == [3, 1]
    assert shares.counts == {"price": [2, 0], "logistics": [1, 1]}
    assert shares.shares["price"] == [2 / 3, 0.0]
    assert shares.shares["logistics"] == [1 / 3, 1.0]


def test_range_and_only_limit_what_is_counted() -> None:
    days = [date(2026, 6, 30), date(2026, 7, 2), date(2026, 8, 3)]
    topics = [{"a"}, {"a", "b"}, set()]
    shares = topic_shares(days, topics, Period.MONTH, first=date(2026, 7, 1),
                          last=date(2026, 9, 30), only=["a", "c"])
    assert shares.periods == [date(2026, 7, 1), date(2026, 8, 1), date(2026, 9, 1)]
    assert shares.totals == [1, 1, 0]
    assert shares.counts == {"a": [1, 0, 0], "c": [0, 0, 0]}
    assert shares.shares["a"] == [1.0, 0.0, 0.0]


def test_empty_input_and_mismatched_lengths() -> None:
    assert topic_shares([], [], Period.WEEK).periods == []
    with pytest.raises(ValueError, match="same length"):
        topic_shares([date(2026, 1, 1)], [], Period.WEEK)


def test_z_matches_the_textbook_pooled_test() -> None:
    z = two_proportion_z(30, 100, 10, 100)
    pooled = 40 / 200
    assert z == pytest.approx((0.3 - 0.1) / math.sqrt(pooled * (1 - pooled) * (2 / 100)))
    assert upper_p(z) == pytest.approx(stats.norm.sf(z))
    assert two_proportion_z(0, 50, 0, 50) == 0.0
    assert two_proportion_z(5, 0, 1, 10) == 0.0


def test_rising_topics_need_significance_and_a_minimum_count() -> None:
    recent = {"成分": 30, "物流": 11, "价格": 4, "外观": 10}
    baseline = {"成分": 10, "物流": 10, "价格": 0, "外观": 40}
    found = rising_topics(recent, 100, baseline, 100, min_count=5)
    # 价格 is new but too rare, 物流 is flat, 外观 fell (three topics tested).
    assert [r.topic for r in found] == ["成分"]
    [top] = found
    assert (top.count, top.share, top.baseline_count, top.baseline_share) == (30, 0.3, 10, 0.1)
    assert top.lift == pytest.approx(0.3 / (10.5 / 101))
    assert top.z == pytest.approx(two_proportion_z(30, 100, 10, 100))
    assert top.p_value < 0.001
    assert top.q_value == pytest.approx(3 * top.p_value)


def test_rare_new_words_among_many_tested_are_not_discoveries() -> None:
    # 195 words as common recently as before, 5 words seen 5 times recently and never
    # before (each alone p ≈ 0.003), and one real riser.
    recent = {f"flat{i}": 40 for i in range(195)} | {f"new{i}": 5 for i in range(5)}
    baseline = {f"flat{i}": 60 for i in range(195)} | {"成分": 120}
    recent["成分"] = 200
    assert upper_p(two_proportion_z(5, 8000, 0, 12000)) < 0.005
    found = rising_topics(recent, 8000, baseline, 12000)
    assert [r.topic for r in found] == ["成分"]


def test_benjamini_hochberg() -> None:
    assert benjamini_hochberg([0.01, 0.04, 0.03, 0.5]) == pytest.approx(
        [0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.5])
    assert benjamini_hochberg([]) == []


def test_rising_topics_rank_by_lift() -> None:
    recent = {"a": 20, "b": 40}
    baseline = {"a": 2, "b": 10}
    assert [r.topic for r in rising_topics(recent, 100, baseline, 100)] == ["a", "b"]
    assert rising_topics(recent, 100, baseline, 100, limit=1)[0].topic == "a"
    assert rising_topics(recent, 0, baseline, 100) == []
    assert [r.topic for r in rising_topics(recent, 100, baseline, 100, min_share=0.3)] == ["b"]


def test_latest_periods_against_earlier_ones() -> None:
    start = date(2026, 7, 6)
    days: list[date] = []
    topics: list[set[str]] = []
    for week in range(6):
        for i in range(50):
            days.append(start + timedelta(weeks=week))
            late = week >= 4
            topics.append({"ingredients"} if (late and i < 20) or (not late and i < 5)
                          else {"price"} if i % 5 == 0 else set())
    shares = topic_shares(days, topics, Period.WEEK)
    found = rising_in_shares(shares, recent_periods=2)
    assert [r.topic for r in found] == ["ingredients"]
    assert found[0].share == pytest.approx(0.4)
    assert found[0].baseline_share == pytest.approx(0.1)
    with pytest.raises(ValueError, match="at least 1"):
        rising_in_shares(shares, recent_periods=0)


def test_count_topics() -> None:
    counter, total = count_topics([{"a"}, {"a", "b"}, set()])
    assert (dict(counter), total) == ({"a": 2, "b": 1}, 3)
