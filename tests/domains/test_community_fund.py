"""The creator fund: the budget split (exact figures and hypothesis properties), rounds
created and closed exactly once, the API, and concurrent closes on PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from test_community_ladder import PARTNER, P, seed

from conftest import T0, bearer, make_key
from shequ.core.db import transaction
from shequ.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from shequ.core.web import Services
from shequ.domains.community import service
from shequ.domains.community.models import FundPayout
from shequ.domains.community.schemas import CloseIn, RoundIn

Headers = dict[str, str]


# --- the split -----------------------------------------------------------------------------


def test_split_is_proportional_then_water_filled() -> None:
    # ¥1,000 over scores 6:3:1 with a ¥400 cap: 600 is cut to 400, the 200 it loses goes
    # to the others 3:1 (300 + 150 = 450 > 400: capped too), the last gets the rest.
    assert service.split_budget(100_000, 40_000, [6, 3, 1]) == [40_000, 40_000, 20_000]
    assert service.split_budget(100_000, 100_000, [6, 3, 1]) == [60_000, 30_000, 10_000]
    # Largest remainder: 100 fen over three equal scores gives the odd fen to the first.
    assert service.split_budget(100, 1_000, [1, 1, 1]) == [34, 33, 33]
    assert service.split_budget(100, 1_000, [1, 2, 1]) == [25, 50, 25]
    # Caps bind everyone: the payouts are what the caps allow, less than the budget.
    assert service.split_budget(100_000, 10_000, [5, 1]) == [10_000, 10_000]
    assert service.split_budget(100_000, 10_000, []) == []
    with pytest.raises(ValueError, match="positive"):
        service.split_budget(100, 10, [1, 0])


scores = st.lists(st.floats(min_value=0.01, max_value=1e6, allow_nan=False), min_size=1,
                  max_size=40)


@settings(max_examples=200, deadline=None)
@given(budget=st.integers(0, 10**10), cap=st.integers(1, 10**9), values=scores)
def test_split_properties(budget: int, cap: int, values: list[float]) -> None:
    paid = service.split_budget(budget, cap, values)
    assert sum(paid) == min(budget, cap * len(values))
    assert all(0 <= amount <= cap for amount in paid)
    for i, a in enumerate(values):
        for j, b in enumerate(values):
            if a > b:
                assert paid[i] >= paid[j]
            elif a == b:
                assert abs(paid[i] - paid[j]) <= 1


# --- rounds --------------------------------------------------------------------------------

#: Scores over the last 30 days: c1 10 × 80 = 800, c2 4 × 50 = 200, c3 2 × 25 = 50;
#: c5 posts but is no creator; c4 posted long ago.
POSTS = ([P(1, d, "tech", 80) for d in range(1, 11)] + [P(2, d, "tech", 50) for d in (2, 4, 6, 8)]
         + [P(3, d, "food", 25) for d in (3, 5)] + [P(5, 4, None, 90), P(4, 60, None, 90)])


def round_in(key: str = "r1", **changes: Any) -> RoundIn:
    body: dict[str, Any] = {"key": key, "name": "十一月基金",
                            "period_start": T0 - timedelta(days=30), "period_end": T0,
                            "budget_fen": 100_000, "cap_fen": 60_000, "min_score": 100}
    return RoundIn.model_validate(body | changes)


def test_close_splits_the_budget_and_writes_the_ledger_once(services: Services) -> None:
    seed(services, POSTS)
    with transaction(services.sessions) as session:
        opened = service.create_round(session, services.clock, round_in())
        assert (opened.state, opened.payouts, opened.replayed) == ("open", [], False)
        again = service.create_round(session, services.clock, round_in())
        assert again.replayed
        with pytest.raises(Conflict) as taken:
            service.create_round(session, services.clock, round_in(budget_fen=5))
        assert (taken.value.code, taken.value.attr) == ("round_key_taken", "key")
    with transaction(services.sessions) as session:
        closed = service.close_round(session, services.clock, "r1",
                                     CloseIn(idempotency_key="close-1"))
    # c3 (50) is under the minimum score; 800:200 of ¥1,000 with a ¥600 cap → 600 + 400
    assert [(p.creator_external_id, p.score, p.amount_fen) for p in closed.payouts] == [
        ("cr1", 800, 60_000), ("cr2", 200, 40_000)]
    assert (closed.state, closed.paid_fen, closed.replayed) == ("closed", 100_000, False)
    with transaction(services.sessions) as session:
        replay = service.close_round(session, services.clock, "r1",
                                     CloseIn(idempotency_key="close-1"))
        assert replay.replayed
        assert replay.payouts == closed.payouts
        with pytest.raises(Conflict) as other:
            service.close_round(session, services.clock, "r1", CloseIn(idempotency_key="x"))
        assert (other.value.code, other.value.attr) == ("round_closed", "idempotency_key")
        with pytest.raises(NotFound):
            service.close_round(session, services.clock, "nope", CloseIn(idempotency_key="y"))
        assert session.scalar(select(func.count()).select_from(FundPayout)) == 2
        assert service.show_round(session, "r1") == closed
        assert [r.key for r in service.list_rounds(session)] == ["r1"]


def test_a_close_key_serves_one_round_only(services: Services) -> None:
    seed(services, POSTS)
    with transaction(services.sessions) as session:
        service.create_round(session, services.clock, round_in("r1"))
        service.create_round(session, services.clock, round_in("r2", min_score=0))
        service.close_round(session, services.clock, "r1", CloseIn(idempotency_key="k"))
        with pytest.raises(Conflict) as reused:
            service.close_round(session, services.clock, "r2", CloseIn(idempotency_key="k"))
        assert reused.value.code == "idempotency_key_used"
        # r2 admits every creator: 800:200:50 of ¥1,000, cap ¥600 → 600, 320, 80
        second = service.close_round(session, services.clock, "r2", CloseIn(
            idempotency_key="k2"))
    assert [p.amount_fen for p in second.payouts] == [60_000, 32_000, 8_000]


def test_rounds_refuse_bad_terms_and_partners(services: Services) -> None:
    seed(services, [])
    with pytest.raises(ValueError, match="period_end"):
        round_in(period_end=T0 - timedelta(days=40))
    with transaction(services.sessions) as session:
        with pytest.raises(ValidationFailed) as future:
            service.create_round(session, services.clock, round_in(
                period_end=T0 + timedelta(days=1)))
        assert (future.value.code, future.value.attr) == ("period_not_over", "period_end")
        with pytest.raises(PermissionDenied):
            service.create_round(session, services.clock, round_in(), principal=PARTNER)


# --- API -----------------------------------------------------------------------------------


def test_api_create_close_show(client: TestClient, services: Services) -> None:
    seed(services, POSTS)
    writer = bearer(make_key(services, ["community:read", "community:write"]))
    body = round_in().model_dump(mode="json")
    made = client.post("/api/v1/community/fund/rounds", json=body, headers=writer)
    assert made.status_code == 201, made.text
    assert client.post("/api/v1/community/fund/rounds", json=body,
                       headers=writer).status_code == 200
    bad = client.post("/api/v1/community/fund/rounds", json=body | {"budget_fen": 0},
                      headers=writer)
    assert (bad.status_code, bad.json()["attr"]) == (422, "budget_fen")
    close = client.post("/api/v1/community/fund/rounds/r1/close",
                        json={"idempotency_key": "c1"}, headers=writer)
    assert (close.status_code, close.json()["paid_fen"]) == (200, 100_000), close.text
    again = client.post("/api/v1/community/fund/rounds/r1/close",
                        json={"idempotency_key": "c1"}, headers=writer)
    assert again.json()["payouts"] == close.json()["payouts"]
    shown = client.get("/api/v1/community/fund/rounds/r1", headers=writer).json()
    assert shown["state"] == "closed"
    reader = bearer(make_key(services, ["community:read"]))
    assert client.post("/api/v1/community/fund/rounds/r1/close", json={
        "idempotency_key": "c1"}, headers=reader).status_code == 403


# --- PostgreSQL ----------------------------------------------------------------------------


def close_together(services: Services, round_key: str, keys: list[str]
                   ) -> tuple[list[Any], list[Any]]:
    """Close ``round_key`` from one thread per idempotency key at once: (answers, errors)."""
    start = threading.Barrier(len(keys))
    answers: list[Any] = []
    errors: list[BaseException] = []

    def run(key: str) -> None:
        start.wait()
        try:
            with transaction(services.sessions) as session:
                answers.append(service.close_round(session, services.clock, round_key,
                                                   CloseIn(idempotency_key=key)))
        except BaseException as exc:  # inspected by the caller
            errors.append(exc)

    workers = [threading.Thread(target=run, args=(key,)) for key in keys]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    return answers, errors


def payout_rows(services: Services) -> int:
    with transaction(services.sessions) as session:
        return session.scalar(select(func.count()).select_from(FundPayout)) or 0


@pytest.mark.postgres
def test_concurrent_closes_pay_once(pg_services: Services) -> None:
    pg = pg_services
    seed(pg, POSTS)
    with transaction(pg.sessions) as session:
        service.create_round(session, pg.clock, round_in("r1"))
        service.create_round(session, pg.clock, round_in("r2"))
    # The same idempotency key four times at once: one close, three replays of it.
    answers, errors = close_together(pg, "r1", ["same"] * 4)
    assert errors == []
    assert sorted(answer.replayed for answer in answers) == [False, True, True, True]
    assert len({tuple(p.amount_fen for p in answer.payouts) for answer in answers}) == 1
    assert payout_rows(pg) == 2
    # Four different keys at once: one wins, three are refused.
    answers, errors = close_together(pg, "r2", ["a", "b", "c", "d"])
    assert len(answers) == 1
    assert sorted(type(exc).__name__ for exc in errors) == ["Conflict"] * 3
    assert payout_rows(pg) == 4
