"""Tier qualification and the grace-period transition, by hand and against a scalar reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shequ.stats.membership import (
    CHANGE_REASONS,
    NO_GRACE,
    TIERS,
    Transition,
    assign_tiers,
    change_reasons,
    step,
)

THRESHOLDS = (1_000, 5_000, 20_000)


def test_tier_names() -> None:
    assert TIERS == ("silver", "gold", "black_gold")


def test_assign_tiers_at_and_around_each_threshold() -> None:
    values = [0, 999, 1_000, 4_999.5, 5_000, 19_999, 20_000, 10**9]
    assert assign_tiers(values, THRESHOLDS).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert assign_tiers(values, THRESHOLDS).dtype == np.int8


def test_assign_tiers_of_a_scalar_and_of_nothing() -> None:
    assert assign_tiers(7, [5]).tolist() == [1]
    assert assign_tiers([], THRESHOLDS).tolist() == []


@pytest.mark.parametrize(("thresholds", "message"), [
    ([], "thresholds must be a non-empty"),
    ([5, 5], "strictly ascending"),
    ([5, 1], "strictly ascending"),
    ([1, float("inf")], "finite"),
])  # fmt: skip
def test_assign_tiers_refuses_bad_thresholds(thresholds: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        assign_tiers([1], thresholds)


def test_assign_tiers_refuses_nan_values() -> None:
    with pytest.raises(ValueError, match="values must not contain NaN"):
        assign_tiers([1.0, float("nan")], THRESHOLDS)


def one(current: int, target: int, grace: int, today: int, grace_days: int | list[int] = 30
        ) -> tuple[int, int, bool, str]:
    after = step([current], [target], [grace], today, grace_days)
    reason = change_reasons([current], [grace], after)
    return (int(after.tier[0]), int(after.grace_until[0]), bool(after.changed[0]),
            CHANGE_REASONS[reason[0]])


def test_upgrade_takes_effect_at_once() -> None:
    assert one(1, 3, NO_GRACE, 100) == (3, NO_GRACE, True, "upgrade")
    assert one(0, 1, NO_GRACE, 100) == (1, NO_GRACE, True, "upgrade")


def test_falling_below_starts_the_grace_of_the_held_tier() -> None:
    assert one(2, 1, NO_GRACE, 100) == (2, 130, True, "grace_started")
    assert one(3, 0, NO_GRACE, 100, [10, 20, 60]) == (3, 160, True, "grace_started")


def test_during_grace_nothing_changes() -> None:
    assert one(2, 1, 130, 129) == (2, 130, False, "none")


def test_qualifying_again_cancels_the_grace() -> None:
    assert one(2, 2, 130, 120) == (2, NO_GRACE, True, "grace_cancelled")
    assert one(2, 3, 130, 120) == (3, NO_GRACE, True, "upgrade")


def test_end_of_grace_drops_to_the_tier_then_qualified_for() -> None:
    assert one(3, 1, 130, 130) == (1, NO_GRACE, True, "downgrade")
    assert one(3, 0, 130, 200) == (0, NO_GRACE, True, "downgrade")  # evaluated late


def test_no_grace_means_an_immediate_drop() -> None:
    assert one(2, 0, NO_GRACE, 100, 0) == (0, NO_GRACE, True, "downgrade")


def test_steady_members_do_not_change() -> None:
    assert one(0, 0, NO_GRACE, 100) == (0, NO_GRACE, False, "none")
    assert one(2, 2, NO_GRACE, 100) == (2, NO_GRACE, False, "none")


def test_step_refuses_inconsistent_input() -> None:
    with pytest.raises(ValueError, match="equal length"):
        step([1, 2], [1], [NO_GRACE, NO_GRACE], 1, 30)
    with pytest.raises(ValueError, match=r"target must hold tiers 0\.\.3"):
        step([1], [4], [NO_GRACE], 1, 30)
    with pytest.raises(ValueError, match="without a tier"):
        step([0], [0], [5], 1, 30)
    with pytest.raises(ValueError, match="grace_days must be one number or one per tier"):
        step([1], [1], [NO_GRACE], 1, [1, 2])
    with pytest.raises(ValueError, match="grace_days must not be negative"):
        step([1], [1], [NO_GRACE], 1, -1)


def reference(current: int, target: int, grace: int, today: int, grace_days: list[int]
              ) -> tuple[int, int]:
    """The rules of the module docstring, one member at a time."""
    if target >= current:
        return target, NO_GRACE
    if grace == NO_GRACE:
        length = grace_days[current - 1]
        return (target, NO_GRACE) if length == 0 else (current, today + length)
    if today >= grace:
        return target, NO_GRACE
    return current, grace


grace_lists = st.lists(st.integers(0, 40), min_size=3, max_size=3)


@st.composite
def states(draw: st.DrawFn) -> tuple[list[int], list[int], list[int], int, list[int]]:
    size = draw(st.integers(0, 30))
    today = draw(st.integers(0, 500))
    current = draw(st.lists(st.integers(0, 3), min_size=size, max_size=size))
    target = draw(st.lists(st.integers(0, 3), min_size=size, max_size=size))
    grace = [NO_GRACE if c == 0 or draw(st.booleans()) else draw(st.integers(0, 560))
             for c in current]
    return current, target, grace, today, draw(grace_lists)


@settings(max_examples=300, deadline=None)
@given(states())
def test_step_matches_the_reference_and_its_invariants(
        state: tuple[list[int], list[int], list[int], int, list[int]]) -> None:
    current, target, grace, today, grace_days = state
    after = step(current, target, grace, today, grace_days)
    expected = [reference(c, t, g, today, grace_days)
                for c, t, g in zip(current, target, grace, strict=True)]
    assert list(zip(after.tier.tolist(), after.grace_until.tolist(), strict=True)) == expected
    tier, goal = after.tier.astype(int), np.asarray(target, dtype=int)
    assert ((after.grace_until != NO_GRACE) == (tier > goal)).all()  # above target iff grace
    assert ((tier == goal) | (tier == np.asarray(current))).all()
    again = step(after.tier, target, after.grace_until, today, grace_days)
    assert not again.changed.any()  # the same day twice changes nothing
    reasons = change_reasons(current, grace, after)
    assert ((reasons != 0) == after.changed).all()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=1, max_size=80), grace_lists)
def test_daily_evaluation_never_holds_a_tier_past_its_grace(
        targets: list[int], grace_days: list[int]) -> None:
    state = Transition(np.zeros(1, np.int8), np.full(1, NO_GRACE, np.int64),
                       np.zeros(1, np.bool_))
    above_since: int | None = None
    for day, target in enumerate(targets):
        held = int(state.tier[0])
        state = step(state.tier, [target], state.grace_until, day, grace_days)
        tier = int(state.tier[0])
        if tier > target:
            above_since = day if above_since is None else above_since
            assert day - above_since < grace_days[held - 1]  # kept only within grace
            assert tier == held  # a grace never raises the tier
        else:
            above_since = None
            assert tier == target
