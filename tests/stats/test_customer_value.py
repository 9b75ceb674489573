"""customer_value: the chain RFM → CLV → value tier on purchase lists."""

from __future__ import annotations

import numpy as np
import pytest

from shequ.stats.bgnbd import fit_bgnbd
from shequ.stats.clv import summarise
from shequ.stats.customer_value import ValueConfig, customer_value
from shequ.stats.rfm import rfm_table


def _synthetic(customers: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids, days, fen = [], [], []
    for c in range(customers):
        start = int(rng.integers(0, 200))
        rate = rng.gamma(0.8, 1 / 40)
        day = start
        while day <= 300:
            ids.append(c)
            days.append(day)
            fen.append(int(rng.integers(1_000, 50_000)))
            day += 1 + int(rng.exponential(1 / max(rate, 1e-3)))
            if rng.random() < 0.15:
                break
    return np.array(ids), np.array(days), np.array(fen)


def test_chain_matches_its_parts() -> None:
    ids, days, fen = _synthetic(600)
    value = customer_value(ids, days, fen, as_of=300)
    assert len(value) == len(np.unique(ids))
    rfm = rfm_table(ids, days, fen, as_of=300, window_days=365)
    assert np.array_equal(value.customer_ids, rfm.customer_ids)
    assert np.array_equal(value.r_score, rfm.r_score)
    assert np.array_equal(value.rfm_group, rfm.group)
    # The BG/NBD fit is the one on the weekly summary measured to the end of day 300.
    summary = summarise(ids, (days - days.min()) / 7.0, fen / 100.0,
                        calibration_end=(300 - days.min() + 1) / 7.0)
    params = fit_bgnbd(summary.x, summary.t_x, summary.T)
    assert value.bgnbd is not None
    assert value.bgnbd.r == pytest.approx(params.r, rel=1e-6)
    assert np.all(value.clv_fen >= 0)
    assert np.all((value.p_alive > 0) & (value.p_alive <= 1))
    assert set(np.unique(value.value_tier)) <= {1, 2, 3, 4, 5}
    # Orders and spend are all-time occasions up to as_of.
    assert value.orders.sum() == len(np.unique(np.stack([ids, days]), axis=1).T)
    assert value.spend_fen.sum() == fen.sum()


def test_buyers_outside_the_window_score_lowest() -> None:
    ids = np.array([1, 1, 2, 3])
    days = np.array([10, 11, 390, 395])
    fen = np.array([100, 200, 300, 400])
    value = customer_value(ids, days, fen, as_of=400,
                           config=ValueConfig(rfm_window_days=30))
    first = int(np.flatnonzero(value.customer_ids == 1)[0])
    assert value.frequency[first] == 0
    assert value.monetary_fen[first] == 0
    assert (value.r_score[first], value.f_score[first], value.m_score[first]) == (1, 1, 1)
    assert value.rfm_group[first] == "general_retain"
    assert value.orders[first] == 2
    assert value.spend_fen[first] == 300
    # Too few buyers to fit: CLV is left out, not guessed, and the note says why.
    assert np.isnan(value.clv_fen).all()
    assert value.bgnbd is None
    assert value.notes
    assert "CLV left out" in value.notes[0]


def test_purchases_after_as_of_are_ignored_and_same_day_merged() -> None:
    ids = np.array([1, 1, 1, 2])
    days = np.array([5, 5, 50, 6])
    fen = np.array([100, 50, 999, 10])
    value = customer_value(ids, days, fen, as_of=20)
    assert value.orders.tolist() == [1, 1]
    assert value.spend_fen.tolist() == [150, 10]
    assert value.recency_days.tolist() == [15, 14]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"amounts_fen": [-1, 2]}, "amounts_fen must not be negative"),
    ({"days": [1]}, "equal lengths"),
])
def test_bad_input_names_the_argument(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"customer_ids": [1, 2], "days": [1, 2], "amounts_fen": [1, 2]}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        customer_value(args["customer_ids"], args["days"], args["amounts_fen"],  # type: ignore[arg-type]
                       as_of=10)


def test_no_purchases_gives_an_empty_table() -> None:
    value = customer_value([], [], [], as_of=10)
    assert len(value) == 0
    assert value.value_tier.tolist() == []
    assert value.notes
