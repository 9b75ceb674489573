"""RFM values, scores and the eight groups, by hand and against a brute-force reference."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shequ.stats.rfm import GROUPS, RfmCuts, group_of, rfm_table, rfm_values, score

AS_OF = 1000


def test_values_count_visits_in_the_window_only() -> None:
    ids, recency, frequency, monetary = rfm_values(
        ["b", "a", "a", "a", "b", "c"], [990, 999, 999, 900, 600, 1001],
        [500, 100, 200, 300, 9_999, 50], as_of=AS_OF, window_days=365)
    assert ids.tolist() == ["a", "b"]  # c bought after as_of, b's 600 is outside the window
    assert recency.tolist() == [1, 10]
    assert frequency.tolist() == [2, 1]  # two orders on day 999 are one visit
    assert monetary.tolist() == [600, 500]


def test_window_edges() -> None:
    ids, *_ = rfm_values(["in", "out"], [AS_OF - 29, AS_OF - 30], [1, 1], as_of=AS_OF,
                         window_days=30)
    assert ids.tolist() == ["in"]


@pytest.mark.parametrize(("values", "expected"), [
    ([1, 2, 3, 4, 5], [1, 2, 3, 4, 5]),
    ([10, 10, 10, 10], [3, 3, 3, 3]),            # all equal: the middle score
    ([1, 1, 1, 1, 1, 1, 1, 1, 5, 9], [3, 3, 3, 3, 3, 3, 3, 3, 5, 5]),
])  # fmt: skip
def test_quintile_scores_by_mid_rank(values: list[int], expected: list[int]) -> None:
    assert score(values).tolist() == expected


def test_recency_scores_downwards_and_cut_points_are_inclusive() -> None:
    cuts = (7, 30, 90, 180)
    assert score([3, 7, 8, 30, 200], cuts=cuts, higher_is_better=False).tolist() == [
        5, 5, 4, 4, 1]
    assert score([0, 7, 8, 180, 1000], cuts=cuts).tolist() == [1, 2, 2, 5, 5]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"bins": 1}, "bins must be at least 2"),
    ({"cuts": (1, 2)}, "5 bins need 4 cut points"),
    ({"cuts": (1, 3, 2, 4)}, "cut points must increase strictly"),
])  # fmt: skip
def test_bad_scoring_is_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        score([1, 2, 3], **kwargs)  # type: ignore[arg-type]


def test_bad_transactions_are_refused() -> None:
    with pytest.raises(ValueError, match="equal lengths"):
        rfm_values(["a"], [1, 2], [1], as_of=AS_OF, window_days=30)
    with pytest.raises(ValueError, match="must not be negative"):
        rfm_values(["a"], [AS_OF], [-5], as_of=AS_OF, window_days=30)
    with pytest.raises(ValueError, match="window_days"):
        rfm_values(["a"], [AS_OF], [5], as_of=AS_OF, window_days=0)


def test_groups_from_fixed_cuts_and_mean_split() -> None:
    cuts = RfmCuts(recency=(7, 30, 90, 180), frequency=(2, 3, 5, 8),
                   monetary=(10_000, 30_000, 100_000, 300_000))
    customers = {  # (days ago of each purchase, fen each)
        "vip": ([1, 5, 9, 20, 40, 60, 80, 99], 50_000),
        "lapsed_whale": ([200, 210, 220, 230, 240], 90_000),
        "new_small": ([2], 3_000),
        "gone_small": ([300], 2_000),
    }
    ids, days, fen = [], [], []
    for name, (ago, amount) in customers.items():
        ids += [name] * len(ago)
        days += [AS_OF - a for a in ago]
        fen += [amount] * len(ago)
    table = rfm_table(ids, days, fen, as_of=AS_OF, cuts=cuts)
    got = dict(zip(table.customer_ids.tolist(), table.group.tolist(), strict=True))
    assert got == {"vip": "important_value", "lapsed_whale": "important_keep",
                   "new_small": "general_develop", "gone_small": "general_retain"}
    assert group_of("important_keep").label_zh == "重要保持客户"
    assert len({g.code for g in GROUPS}) == 8
    assert len({(g.recent, g.frequent, g.valuable) for g in GROUPS}) == 8


def reference(rows: list[tuple[str, int, int]], window: int) -> dict[str, tuple[int, int, int]]:
    """Per customer (recency, frequency, monetary) by plain Python."""
    kept = [(c, d, f) for c, d, f in rows if AS_OF - window < d <= AS_OF]
    days: dict[str, set[int]] = defaultdict(set)
    spend: dict[str, int] = defaultdict(int)
    for c, d, f in kept:
        days[c].add(d)
        spend[c] += f
    return {c: (AS_OF - max(ds), len(ds), spend[c]) for c, ds in days.items()}


def reference_scores(values: list[float], bins: int) -> list[int]:
    n = len(values)
    out = []
    for v in values:
        below = sum(1 for w in values if w < v)
        equal = sum(1 for w in values if w == v)
        out.append(min(1 + int(((below + equal / 2) / n) * bins), bins))
    return out


transactions = st.lists(st.tuples(st.sampled_from("abcdefgh"), st.integers(AS_OF - 60, AS_OF + 3),
                                  st.integers(0, 50_000)), max_size=60)


@settings(max_examples=60, deadline=None)
@given(rows=transactions, window=st.integers(1, 60), bins=st.integers(2, 6))
def test_matches_brute_force(rows: list[tuple[str, int, int]], window: int, bins: int) -> None:
    expected = reference(rows, window)
    table = rfm_table([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
                      as_of=AS_OF, window_days=window, bins=bins)
    got = {c: (int(r), int(f), int(m)) for c, r, f, m in zip(
        table.customer_ids.tolist(), table.recency_days, table.frequency, table.monetary_fen,
        strict=True)}
    assert got == expected
    names = sorted(expected)
    assert table.f_score.tolist() == reference_scores([expected[c][1] for c in names], bins)
    assert table.r_score.tolist() == reference_scores([-expected[c][0] for c in names], bins)
    if names:
        r_high = table.r_score > table.r_score.mean()
        assert all(group_of(code).recent == bool(h) for code, h in zip(
            table.group.tolist(), r_high, strict=True))
        assert np.all((table.m_score >= 1) & (table.m_score <= bins))
