"""The five-tier value matrix: rules on hand-made customers, monotonicity, figures, errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shequ.stats.value_tiers import (
    DEFAULT_CONFIG,
    TIER_CODES,
    TIER_NAMES,
    GroupFigures,
    ValueTierConfig,
    assign_value_tiers,
    group_figures,
)

# Fixed CLV cuts make each hand-made customer's band independent of the others.
FIXED = ValueTierConfig(clv_cuts=(100.0, 500.0))


def _tier(r: int, f: int, m: int, clv: float, p_alive: float = 0.9,
          config: ValueTierConfig = FIXED) -> int:
    return int(assign_value_tiers([r], [f], [m], [clv], [p_alive], config=config)[0])


def test_codes_and_names() -> None:
    assert TIER_CODES == ("t1", "t2", "t3", "t4", "t5")
    assert set(TIER_NAMES) == set(TIER_CODES)
    assert TIER_NAMES["t1"] == ("核心高价值", "Core high value")
    assert TIER_NAMES["t5"][0] == "低价值"


@pytest.mark.parametrize(("scores", "clv", "expected"), [
    ((5, 5, 5), 900.0, 1),   # high realised, high predicted
    ((4, 4, 4), 500.0, 1),   # sum 12 and CLV 500 are both inclusive edges of "high"
    ((4, 4, 3), 500.0, 2),   # sum 11: mid realised
    ((5, 5, 5), 499.9, 2),   # mid predicted
    ((3, 3, 3), 100.0, 3),   # mid × mid
    ((5, 5, 5), 0.0, 3),     # high × low
    ((1, 1, 1), 900.0, 3),   # low × high
    ((3, 3, 2), 100.0, 4),   # sum 8: low realised × mid
    ((1, 2, 1), 99.0, 5),    # low × low
])  # fmt: skip
def test_grid_on_hand_made_customers(scores: tuple[int, int, int], clv: float,
                                     expected: int) -> None:
    assert _tier(*scores, clv) == expected


def test_dormant_customers_are_capped_but_never_raised() -> None:
    assert _tier(5, 5, 5, 900.0, p_alive=0.19) == 3
    assert _tier(5, 5, 5, 900.0, p_alive=0.2) == 1  # the threshold itself is not dormant
    assert _tier(1, 1, 1, 0.0, p_alive=0.0) == 5


def test_weights_move_the_realised_band() -> None:
    monetary_only = ValueTierConfig(realised_weights=(0.0, 0.0, 1.0), clv_cuts=(100.0, 500.0))
    assert _tier(1, 1, 5, 900.0, config=monetary_only) == 1
    assert _tier(1, 1, 5, 900.0) == 3


def test_default_bands_are_population_percentiles() -> None:
    # Ten customers with equal scores: CLV mid-rank percentiles 0.05 .. 0.95; the 50 % and
    # 80 % cuts put five in the low band, three in the middle, two in the high band.
    ones = np.full(10, 4)
    tiers = assign_value_tiers(ones, ones, ones, np.arange(10.0), np.ones(10))
    assert tiers.dtype == np.int8
    assert tiers.tolist() == [3, 3, 3, 3, 3, 2, 2, 2, 1, 1]


def test_equal_clv_share_a_band() -> None:
    fours = np.full(6, 4)
    tiers = assign_value_tiers(fours, fours, fours, [0, 0, 0, 0, 0, 7.0], np.ones(6))
    assert tiers.tolist() == [3, 3, 3, 3, 3, 1]  # five zeros sit at percentile 2.5/6


def test_empty_input_gives_empty_tiers() -> None:
    assert assign_value_tiers([], [], [], [], []).tolist() == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 5), st.integers(1, 5), st.integers(1, 5),
                          st.floats(0, 1000), st.floats(0, 1)), min_size=1, max_size=30),
       st.data())
def test_raising_clv_or_a_score_never_lowers_the_tier(
        customers: list[tuple[int, int, int, float, float]], data: st.DataObject) -> None:
    columns = [np.array(column) for column in zip(*customers, strict=True)]
    before = assign_value_tiers(*columns)
    who = data.draw(st.integers(0, len(customers) - 1))
    which = data.draw(st.integers(0, 4))
    raised = [column.copy() for column in columns]
    if which < 3:
        raised[which][who] = data.draw(st.integers(int(raised[which][who]), 5))
    elif which == 3:
        raised[3][who] += data.draw(st.floats(0, 1000))
    else:
        raised[4][who] = data.draw(st.floats(float(raised[4][who]), 1))
    after = assign_value_tiers(*raised)
    assert after[who] <= before[who]


@pytest.mark.parametrize(("arguments", "message"), [
    (([0], [1], [1], [1.0], [1.0]), "r_score must contain scores 1..5"),
    (([1], [6], [1], [1.0], [1.0]), "f_score must contain scores 1..5"),
    (([1], [1], [2.5], [1.0], [1.0]), "m_score must contain integer scores"),
    (([1], [1], [1], [-1.0], [1.0]), "clv must be finite and non-negative"),
    (([1], [1], [1], [np.nan], [1.0]), "clv must be finite and non-negative"),
    (([1], [1], [1], [1.0], [1.5]), r"p_alive must be within \[0, 1\]"),
    (([1, 2], [1], [1], [1.0], [1.0]), "must have equal lengths, got 2, 1, 1, 1, 1"),
])  # fmt: skip
def test_bad_input_names_the_argument(arguments: tuple[Any, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        assign_value_tiers(*arguments)


@pytest.mark.parametrize(("fields", "message"), [
    ({"realised_cuts": (4.0, 3.0)}, "realised_cuts must be a non-empty, strictly increasing"),
    ({"clv_percentiles": (0.5, 1.2)}, "clv_percentiles must lie in"),
    ({"clv_cuts": ()}, "clv_cuts must be a non-empty"),
    ({"grid": ((5, 4), (4, 3))}, "grid must have 3 rows"),
    ({"grid": ((5, 4, 3), (4, 3, 2), (3, 2, 6))}, "grid tiers must be 1..5"),
    ({"grid": ((5, 4, 3), (4, 3, 2), (3, 4, 1))}, "grid must not get worse"),
    ({"realised_weights": (1.0, -1.0, 1.0)}, "realised_weights must be three non-negative"),
    ({"dormant_p_alive": 2.0}, "dormant_p_alive must lie in"),
    ({"dormant_best_tier": 0}, "dormant_best_tier must be 1..5"),
    ({"bins": 1}, "bins must be at least 2"),
])  # fmt: skip
def test_bad_config_names_the_field(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ValueTierConfig(**fields)


def test_default_config_is_the_documented_grid() -> None:
    assert DEFAULT_CONFIG.grid == ((5, 4, 3), (4, 3, 2), (3, 2, 1))
    assert DEFAULT_CONFIG.realised_cuts == (3.0, 4.0)
    assert DEFAULT_CONFIG.clv_percentiles == (0.5, 0.8)
    assert (DEFAULT_CONFIG.dormant_p_alive, DEFAULT_CONFIG.dormant_best_tier) == (0.2, 3)


def test_group_figures_exact_on_a_small_example() -> None:
    # Given tier 1 with two customers, tier 5 (the base) with three, and nobody in tier 3.
    groups = [1, 5, 5, 1, 5]
    spend = [600.0, 10.0, 20.0, 400.0, 30.0]
    orders = [3, 1, 2, 1, 1]
    figures = group_figures(groups, spend, orders, base=5, labels=[1, 3, 5])
    assert figures == [
        GroupFigures(1, 2, 1000.0, 1000 / 1060, 500.0, 25.0, 0.5),
        GroupFigures(3, 0, 0.0, 0.0, None, None, None),
        GroupFigures(5, 3, 60.0, 60 / 1060, 20.0, 1.0, 1 / 3),
    ]


def test_group_figures_default_labels_and_undefined_values() -> None:
    figures = group_figures(np.array([2, 0, 2], dtype=np.int8), [0.0, 0.0, 0.0], [0, 0, 2],
                            base=0)
    assert [f.group for f in figures] == [0, 2]
    assert figures[1].gmv_share is None  # nobody spent anything
    assert figures[1].spend_multiple is None  # the base average is 0
    assert figures[1].repurchase_rate == 0.5


@pytest.mark.parametrize(("arguments", "message"), [
    (([1.5], [1.0], [1]), "groups must contain integers"),
    (([1], [-1.0], [1]), "spend must be finite and non-negative"),
    (([1], [1.0], [1.5]), "orders must contain whole order counts"),
    (([1], [1.0], [-1]), "orders must be finite and non-negative"),
    (([1, 2], [1.0], [1]), "groups, spend and orders must have equal lengths"),
])  # fmt: skip
def test_group_figures_bad_input(arguments: tuple[Any, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        group_figures(*arguments, base=1)


def test_group_figures_of_nobody_are_zero_rows() -> None:
    figures = group_figures([], [], [], base=0, labels=[0, 1])
    assert figures == [GroupFigures(0, 0, 0.0, None, None, None, None),
                       GroupFigures(1, 0, 0.0, None, None, None, None)]
