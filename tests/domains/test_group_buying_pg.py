"""Group buying under real concurrent transactions on PostgreSQL: groups never over their
size, nobody in a group twice, stock never below zero, member counts equal member rows,
expiry racing joins and other expiry runs."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from test_group_buying import CLEAN, advance, make_offer, open_, seed, stock_of, violations

from shequ.core.db import transaction
from shequ.core.errors import ShequError
from shequ.core.web import Services
from shequ.domains.campaigns import groups
from shequ.domains.campaigns.group_models import BuyingGroup, GroupMember
from shequ.domains.campaigns.group_schemas import ExpiryReport, JoinIn

pytestmark = pytest.mark.postgres


def race(wired: Services, count: int, work: Callable[[Session, int], object]) -> list[str]:
    """``work(session, n)`` in ``count`` threads at once, each in its own transaction; each
    outcome is "ok" or the refusal's code."""
    start = threading.Barrier(count)

    def one(n: int) -> str:
        start.wait()
        try:
            with transaction(wired.sessions, actor=f"test:{n}") as session:
                work(session, n)
        except ShequError as exc:
            return exc.code
        return "ok"

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def joiner(wired: Services, group_id: int, customer: str, key: str
           ) -> Callable[[Session], object]:
    data = JoinIn(group_id=group_id, customer_external_id=customer, idempotency_key=key)
    return lambda session: groups.join_group(session, wired.clock, data)


def group_rows(wired: Services) -> list[BuyingGroup]:
    with transaction(wired.sessions) as session:
        return list(session.scalars(select(BuyingGroup).order_by(BuyingGroup.id)))


def test_forty_eight_joiners_on_three_groups(pg_services: Services) -> None:
    pg = pg_services
    seed(pg, customer_count=30)
    make_offer(pg, stock=40, limit=1)  # groups of 5, one unit per customer per offer
    ids = [open_(pg, f"c{n}").group.id for n in range(3)]
    # Customers c3…c18 each try three times at once: their "own" group under two keys (a
    # double join) and the next group (over the per-customer limit). 12 seats are free.
    plan = [(ids[n % 16 % 3] if n < 32 else ids[(n % 16 + 1) % 3], f"c{3 + n % 16}",
             f"k{n}") for n in range(48)]
    outcomes = race(pg, 48, lambda s, n: joiner(pg, *plan[n])(s))
    tally = Counter(outcomes)
    assert tally["ok"] == 12, tally
    assert set(tally) <= {"ok", "group_full", "already_joined", "limit_reached"}, tally
    rows = group_rows(pg)
    assert [(g.state, g.member_count) for g in rows] == [("succeeded", 5)] * 3
    with transaction(pg.sessions) as session:
        per_customer = Counter(session.scalars(select(GroupMember.customer_id)))
        assert max(per_customer.values()) == 1  # the limit held across groups
        assert session.scalar(select(func.count()).select_from(GroupMember)) == 15
        offer = groups.get_offer(session, pg.clock, "tea")
    assert offer.stock_left == 40 - 15
    assert stock_of(pg) == 100 - 40
    assert violations(pg) == CLEAN


def test_the_last_units_go_once(pg_services: Services) -> None:
    pg = pg_services
    seed(pg, customer_count=50)
    make_offer(pg, stock=6, limit=1)
    ids = [open_(pg, f"c{n}").group.id for n in range(2)]  # 4 units left, 8 seats
    outcomes = race(pg, 44, lambda s, n: joiner(pg, ids[n % 2], f"c{2 + n}", f"j{n}")(s))
    tally = Counter(outcomes)
    assert tally["ok"] == 4, tally
    assert tally["offer_sold_out"] >= 20, tally
    assert set(tally) <= {"ok", "offer_sold_out", "group_full"}, tally
    with transaction(pg.sessions) as session:
        assert groups.get_offer(session, pg.clock, "tea").stock_left == 0
    assert sum(g.member_count for g in group_rows(pg)) == 6
    assert violations(pg) == CLEAN


def test_one_key_from_many_threads_joins_once(pg_services: Services) -> None:
    pg = pg_services
    seed(pg, customer_count=4)
    make_offer(pg, stock=10, limit=1)
    gid = open_(pg, "c0").group.id
    answers: list[Any] = []
    outcomes = race(pg, 12, lambda s, n: answers.append(joiner(pg, gid, "c1", "same")(s)))
    assert outcomes == ["ok"] * 12
    assert sorted(a.replayed for a in answers) == [False] + [True] * 11
    assert {a.member.joined_at for a in answers} == {answers[0].member.joined_at}
    assert [g.member_count for g in group_rows(pg)] == [2]
    assert violations(pg) == CLEAN


def test_expiry_races_joins_and_itself(pg_services: Services) -> None:
    pg = pg_services
    seed(pg, customer_count=70)
    make_offer(pg, stock=80, limit=3, hours=2)
    # Ten groups that will be due: five with two members (succeed), five alone (expire).
    due = [open_(pg, f"c{n}").group.id for n in range(10)]
    for n, gid in enumerate(due[:5]):
        joiner_key = f"pre{n}"
        with transaction(pg.sessions) as session:
            joiner(pg, gid, f"c{10 + n}", joiner_key)(session)
    advance(pg, timedelta(hours=1))
    fresh = [open_(pg, f"c{20 + n}").group.id for n in range(6)]
    advance(pg, timedelta(hours=1, minutes=30))  # the first ten are past their deadline
    reports: list[dict[str, int]] = []

    def work(session: Session, n: int) -> object:
        if n < 8:  # the worker job, several runs at once (its own transactions)
            reports.append(groups.expire_groups(pg))
            return None
        # 32 joins: four per fresh group plus tries at the due (closed) groups.
        target = fresh[n % 6] if n % 4 else due[n % 10]
        return joiner(pg, target, f"c{30 + n - 8}", f"r{n}")(session)

    outcomes = race(pg, 40, work)
    assert outcomes[:8] == ["ok"] * 8
    assert set(outcomes[8:]) <= {"ok", "group_closed", "group_full"}, outcomes
    total = Counter[str]()
    for report in reports:
        total.update(report)
    assert (total["succeeded"], total["expired"], total["failed"]) == (5, 5, 0)
    leftover = groups.expire_groups(pg)
    assert total["refunded"] + leftover["refunded"] == 5
    rows = {g.id: g for g in group_rows(pg)}
    assert Counter(rows[g].state for g in due) == {"succeeded": 5, "refunded": 5}
    assert all(rows[g].state in {"open", "succeeded"} for g in fresh)
    assert sum(rows[g].member_count for g in fresh) == 6 + outcomes[8:].count("ok")
    assert violations(pg) == CLEAN
    assert ExpiryReport.model_validate(groups.expire_groups(pg)) == ExpiryReport()
