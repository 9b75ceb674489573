"""Topic share over time and rising topics, as pure functions over dated topic sets.

A *topic* is any label a text carries (an aspect key, a keyword). The share of a topic in
a period is the fraction of that period's texts that carry it. A topic is *rising* when
its share in the recent texts is significantly above its share in the baseline texts:
a one-sided two-proportion z-test (pooled variance) whose p-values are adjusted for the
many topics tested at once (Benjamini–Hochberg: the q-value bounds the share of false
discoveries), ranked by lift = recent share ÷ baseline share (the baseline share smoothed
by half a text so a topic new in the recent period gets a finite lift).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum


class Period(StrEnum):
    """How texts are grouped in time."""

    WEEK = "week"
    MONTH = "month"


def period_start(day: date, period: Period) -> date:
    """The first day of the period holding ``day`` (weeks start on Monday)."""
    if period is Period.WEEK:
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def _next_period(start: date, period: Period) -> date:
    if period is Period.WEEK:
        return start + timedelta(days=7)
    return date(start.year + start.month // 12, start.month % 12 + 1, 1)


def periods_between(first: date, last: date, period: Period) -> list[date]:
    """Starts of every period from the one holding ``first`` to the one holding ``last``."""
    starts: list[date] = []
    at = period_start(first, period)
    while at <= last:
        starts.append(at)
        at = _next_period(at, period)
    return starts


@dataclass(frozen=True)
class TopicShares:
    """Per period (by start day): texts, and per topic the texts carrying it and their
    share of the period's texts (0.0 for a period without texts)."""

    periods: list[date]
    totals: list[int]
    counts: dict[str, list[int]]
    shares: dict[str, list[float]]


def topic_shares(days: Sequence[date], topics: Sequence[Collection[str]], period: Period,
                 *, first: date | None = None, last: date | None = None,
                 only: Iterable[str] | None = None) -> TopicShares:
    """Share of texts carrying each topic per period. ``days[i]`` is the (local) day of
    text ``i`` and ``topics[i]`` its topics; ``first``/``last`` widen or cut the range
    (texts outside are ignored); ``only`` limits the topics reported."""
    if len(days) != len(topics):
        raise ValueError("days and topics must have the same length")
    if not days and (first is None or last is None):
        return TopicShares([], [], {}, {})
    low = first if first is not None else min(days)
    high = last if last is not None else max(days)
    starts = periods_between(low, high, period)
    index = {start: i for i, start in enumerate(starts)}
    totals = [0] * len(starts)
    wanted = set(only) if only is not None else None
    counts: dict[str, list[int]] = {t: [0] * len(starts) for t in sorted(wanted or ())}
    for day, labels in zip(days, topics, strict=True):
        if not low <= day <= high:
            continue
        i = index[period_start(day, period)]
        totals[i] += 1
        for label in set(labels):
            if wanted is not None and label not in wanted:
                continue
            counts.setdefault(label, [0] * len(starts))[i] += 1
    shares = {t: [c / n if n else 0.0 for c, n in zip(row, totals, strict=True)]
              for t, row in counts.items()}
    return TopicShares(starts, totals, counts, shares)


@dataclass(frozen=True)
class RisingTopic:
    """A topic whose recent share is above its baseline share."""

    topic: str
    count: int
    share: float
    baseline_count: int
    baseline_share: float
    lift: float
    z: float
    p_value: float
    q_value: float


def two_proportion_z(x1: int, n1: int, x0: int, n0: int) -> float:
    """z of ``x1/n1 - x0/n0`` under the pooled null of equal proportions (0.0 when the
    pooled proportion is 0 or 1, or a sample is empty)."""
    if n1 <= 0 or n0 <= 0:
        return 0.0
    pooled = (x1 + x0) / (n1 + n0)
    var = pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n0)
    if var <= 0.0:
        return 0.0
    return (x1 / n1 - x0 / n0) / math.sqrt(var)


def upper_p(z: float) -> float:
    """One-sided p-value P(Z >= z) of a standard normal."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini–Hochberg q-values of ``p_values`` (same order)."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    q = [1.0] * len(p_values)
    running = 1.0
    for rank in range(len(order), 0, -1):
        i = order[rank - 1]
        running = min(running, p_values[i] * len(order) / rank)
        q[i] = running
    return q


def rising_topics(recent: Mapping[str, int], recent_total: int, baseline: Mapping[str, int],
                  baseline_total: int, *, min_count: int = 5, min_share: float = 0.0,
                  max_q: float = 0.05, limit: int | None = None) -> list[RisingTopic]:
    """Topics carried by at least ``min_count`` recent texts and ``min_share`` of them whose
    recent share is above the baseline share with a Benjamini–Hochberg q ≤ ``max_q`` over
    every topic tested (those meeting both minimums), by lift then z (largest first)."""
    if recent_total <= 0 or baseline_total <= 0:
        return []
    tested = sorted(t for t, count in recent.items()
                    if count >= min_count and count >= min_share * recent_total)
    before = {t: int(baseline.get(t, 0)) for t in tested}
    zs = {t: two_proportion_z(recent[t], recent_total, before[t], baseline_total)
          for t in tested}
    p_values = [upper_p(zs[t]) for t in tested]
    found: list[RisingTopic] = []
    for topic, p_value, q_value in zip(tested, p_values, benjamini_hochberg(p_values),
                                       strict=True):
        if zs[topic] <= 0.0 or q_value > max_q:
            continue
        share = recent[topic] / recent_total
        smoothed = (before[topic] + 0.5) / (baseline_total + 1.0)
        found.append(RisingTopic(topic, recent[topic], share, before[topic],
                                 before[topic] / baseline_total, share / smoothed, zs[topic],
                                 p_value, q_value))
    found.sort(key=lambda r: (-r.lift, -r.z, r.topic))
    return found[:limit] if limit is not None else found


def rising_in_shares(shares: TopicShares, *, recent_periods: int = 1, min_count: int = 5,
                     max_q: float = 0.05, limit: int | None = None) -> list[RisingTopic]:
    """Rising topics of the last ``recent_periods`` periods against all earlier ones."""
    if recent_periods < 1:
        raise ValueError("recent_periods must be at least 1")
    cut = max(0, len(shares.periods) - recent_periods)
    recent = {t: sum(row[cut:]) for t, row in shares.counts.items()}
    baseline = {t: sum(row[:cut]) for t, row in shares.counts.items()}
    return rising_topics(recent, sum(shares.totals[cut:]), baseline, sum(shares.totals[:cut]),
                         min_count=min_count, max_q=max_q, limit=limit)


def count_topics(topics: Iterable[Collection[str]]) -> tuple[Counter[str], int]:
    """Texts carrying each topic, and the number of texts."""
    counter: Counter[str] = Counter()
    total = 0
    for labels in topics:
        counter.update(set(labels))
        total += 1
    return counter, total
