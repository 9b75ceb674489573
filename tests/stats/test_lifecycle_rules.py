"""Lifecycle stage rules on hand-made features: each stage, precedence, window boundaries."""

from __future__ import annotations

import numpy as np
import pytest

from shequ.core.days import NEVER
from shequ.stats.lifecycle import (
    ABSENT,
    DEFAULT_CONFIG,
    STAGES,
    LifecycleConfig,
    StageFeatures,
    classify,
    entered,
    stage_counts,
    trailing_counts,
    transition_matrix,
)


def _one(since: int = 400, activity: int = 0, paid: int = 0, conversions: int = 0,
         config: LifecycleConfig = DEFAULT_CONFIG) -> str:
    features = StageFeatures(np.array([since]), np.array([activity]), np.array([paid]),
                             np.array([conversions]))
    code = int(classify(features, config)[0])
    return "absent" if code == ABSENT else STAGES[code]


def test_each_stage_from_its_behaviour() -> None:
    assert _one(since=-1, activity=5, paid=5) == "absent"
    assert _one(since=400) == "dormant"
    assert _one(since=3) == "new"
    assert _one(since=400, activity=1) == "active"
    assert _one(since=400, activity=1, paid=1) == "paying"
    assert _one(since=400, activity=1, paid=3) == "loyal"
    assert _one(since=400, activity=1, paid=1, conversions=1) == "advocate"


def test_precedence_from_the_top() -> None:
    # An advocate who also qualifies as loyal, new and active is an advocate.
    assert _one(since=0, activity=9, paid=9, conversions=4) == "advocate"
    # Conversions without a paid order do not make an advocate.
    assert _one(since=400, activity=3, conversions=4) == "active"
    # A new customer who paid has climbed: paying, not new.
    assert _one(since=2, activity=1, paid=1) == "paying"
    # A new customer who only browses stays new for the first new_days.
    assert _one(since=2, activity=4) == "new"
    # Past orders without any recent activity: lapsed, whatever the spend.
    assert _one(since=400, activity=0, paid=7, conversions=2) == "dormant"


def test_thresholds_are_inclusive_and_configurable() -> None:
    assert _one(since=29) == "new"
    assert _one(since=30) == "dormant"
    assert _one(since=400, activity=1, paid=2) == "paying"
    strict = LifecycleConfig(loyal_orders=5, new_days=7, advocate_conversions=3)
    assert _one(since=400, activity=1, paid=4, config=strict) == "paying"
    assert _one(since=400, activity=1, paid=5, config=strict) == "loyal"
    assert _one(since=7, config=strict) == "dormant"
    assert _one(since=400, activity=1, paid=1, conversions=2, config=strict) == "paying"


def test_bad_config_names_the_field() -> None:
    with pytest.raises(ValueError, match="engaged_days"):
        LifecycleConfig(engaged_days=0)
    with pytest.raises(ValueError, match="loyal_orders"):
        LifecycleConfig(loyal_orders=1)
    assert DEFAULT_CONFIG.lookback_days == 180


def test_trailing_counts_window_is_half_open() -> None:
    owners = [0, 0, 0, 1, 1, 2]
    days = [70, 71, 100, 100, 101, 40]
    # (70, 100]: day 70 falls out, 71 and 100 count; day 101 is in the future.
    assert trailing_counts(owners, days, 100, 30, 4).tolist() == [2, 1, 0, 0]
    assert trailing_counts(owners, days, 101, 30, 4).tolist() == [1, 2, 0, 0]


def test_trailing_counts_stop_from_the_until_day() -> None:
    owners, days = [0, 0, 1], [10, 12, 10]
    until = [NEVER, 15, 11]
    assert trailing_counts(owners, days, 14, 30, 2, until).tolist() == [2, 0]
    assert trailing_counts(owners, days, 15, 30, 2, until).tolist() == [1, 0]


def test_transition_matrix_counts_each_present_customer_once() -> None:
    rng = np.random.default_rng(3)
    before = rng.integers(-1, 6, size=1_000).astype(np.int8)
    after = rng.integers(-1, 6, size=1_000).astype(np.int8)
    after[before >= 0] = np.maximum(after[before >= 0], 0)  # nobody un-registers
    matrix = transition_matrix(before, after)
    assert matrix.shape == (6, 6)
    assert matrix.sum() == int(((before >= 0) & (after >= 0)).sum())
    assert matrix.sum(axis=1).tolist() == stage_counts(before).tolist()
    assert (matrix.sum(axis=0) + entered(before, after)).tolist() == stage_counts(after).tolist()
    for i in range(6):
        for j in range(6):
            assert matrix[i, j] == int(((before == i) & (after == j)).sum())


def test_transition_matrix_rejects_misaligned_days() -> None:
    with pytest.raises(ValueError, match="shape"):
        transition_matrix([0, 1], [0])
