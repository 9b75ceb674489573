"""Invite tasks (SPEC M3.2 "invite 3 to unlock"): counting on sign-up or on the first
paid order, every abuse reason recorded per invitee, the reward issued exactly once,
idempotent reports and order hooks, and the API."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from test_referrals import add_people, advance, buy, shop

from conftest import T0
from shequ.core.db import transaction
from shequ.core.errors import Conflict, NotFound, ValidationFailed
from shequ.core.web import Services
from shequ.domains.campaigns import invites
from shequ.domains.campaigns.referral_schemas import (
    InviteCounts,
    InviteeOut,
    InviteIn,
    InviteTaskIn,
)
from shequ.domains.customers import service as customers
from shequ.domains.customers.schemas import CustomerIn, DeviceIn
from shequ.domains.loyalty import service as loyalty
from shequ.domains.loyalty.models import PointsMovement
from shequ.domains.orders.service import OrderTransition

REWARD = 500


def task(wired: Services, code: str = "t1", counts: InviteCounts = "registered", goal: int = 3,
         days: int = 14) -> None:
    with transaction(wired.sessions) as session:
        invites.create_task(session, wired.clock, InviteTaskIn(
            code=code, name="邀请3位好友得积分", goal=goal, counts=counts,
            starts_at=T0 - timedelta(days=1), ends_at=T0 + timedelta(days=days),
            reward_points=REWARD))


def invite(wired: Services, inviter: str, invitee: str, code: str = "t1",
           device: str | None = None) -> InviteeOut:
    with transaction(wired.sessions) as session:
        return invites.record_invite(session, wired.clock, code, InviteIn(
            inviter=inviter, invitee=invitee, device_external_id=device))


def points(wired: Services, customer: str) -> int:
    with transaction(wired.sessions) as session:
        return loyalty.balance(session, customer).balance


def reasons(wired: Services, inviter: str, code: str = "t1") -> dict[str, str | None]:
    with transaction(wired.sessions) as session:
        shown = invites.progress(session, code, inviter)
    return {i.invitee: i.reason if i.state == "rejected" else i.state for i in shown.invitees}


def test_three_friends_unlock_the_reward_once(services: Services) -> None:
    shop(services, "boss", "f1", "f2", "f3", "f4")
    task(services)
    for friend in ("f1", "f2"):
        assert invite(services, "boss", friend).state == "counted"
    assert points(services, "boss") == 0
    invite(services, "boss", "f3")
    assert points(services, "boss") == REWARD
    invite(services, "boss", "f4")  # a fourth friend counts but earns nothing more
    assert points(services, "boss") == REWARD
    with transaction(services.sessions) as session:
        shown = invites.progress(session, "t1", "boss")
        assert (shown.counted, shown.goal, shown.rewarded) == (4, 3, True)
        assert session.scalar(select(func.count()).select_from(PointsMovement).where(
            PointsMovement.idempotency_key.like("invite:%"))) == 1
        listed = invites.list_tasks(session)
        assert (listed[0].inviters, listed[0].counted, listed[0].rewarded) == (1, 4, 1)


def test_every_abuse_reason_is_recorded(services: Services) -> None:
    shop(services, "boss", "dev_twin", "addr_twin", "pay_twin", "clean", "late")
    with transaction(services.sessions) as session:
        customers.create_customer(session, services.clock, CustomerIn(
            external_id="old", registered_at=T0 - timedelta(days=30)))
        customers.create_device(session, services.clock,
                                DeviceIn(external_id="phone-boss", customer_external_id="boss"))
    add_people(services, "ordered_before")
    buy(services, "pre", "ordered_before")       # an order before the invite
    buy(services, "boss-1", "boss", device="phone-2", address="上海市 徐汇区 漕溪北路 1号",
        payment="alipay:boss")
    advance(services, timedelta(minutes=1))
    task(services, counts="first_paid_order", days=3)
    invite(services, "boss", "boss")
    invite(services, "boss", "old")
    invite(services, "boss", "ordered_before")
    invite(services, "boss", "dev_twin", device="phone-boss")   # the inviter's own phone
    invite(services, "boss", "addr_twin", device="phone-a")
    invite(services, "boss", "pay_twin", device="phone-p")
    invite(services, "boss", "clean", device="phone-c")
    invite(services, "boss", "late", device="phone-l")
    assert reasons(services, "boss") == {
        "boss": "self_invite", "old": "existing_customer",
        "ordered_before": "existing_customer", "dev_twin": "shared_device",
        "addr_twin": "pending", "pay_twin": "pending", "clean": "pending", "late": "pending"}
    buy(services, "a-1", "addr_twin", address="上海市徐汇区漕溪北路1号")  # spaces differ
    buy(services, "p-1", "pay_twin", payment="alipay:boss")
    buy(services, "c-1", "clean", device="phone-c", address="北京市朝阳区", payment="wx:c")
    advance(services, timedelta(days=3))
    buy(services, "l-1", "late")
    assert reasons(services, "boss") == {
        "boss": "self_invite", "old": "existing_customer",
        "ordered_before": "existing_customer", "dev_twin": "shared_device",
        "addr_twin": "shared_address", "pay_twin": "shared_payment", "clean": "counted",
        "late": "outside_window"}
    with transaction(services.sessions) as session:
        shown = invites.progress(session, "t1", "boss")
    assert shown.counted == 1
    assert not shown.rewarded
    assert {i.invitee: i.order_external_id for i in shown.invitees}["clean"] == "c-1"


def test_shared_order_device_counts_as_shared(services: Services) -> None:
    shop(services, "boss", "twin")
    buy(services, "boss-1", "boss", device="tablet-9")
    task(services, counts="first_paid_order")
    invite(services, "boss", "twin")
    buy(services, "twin-1", "twin", device="tablet-9")
    assert reasons(services, "boss") == {"twin": "shared_device"}


def test_first_paid_order_counts_on_payment_only(services: Services) -> None:
    shop(services, "boss", "f1", "f2", "f3")
    task(services, counts="first_paid_order")
    for friend in ("f1", "f2", "f3"):
        assert invite(services, "boss", friend).state == "pending"
    buy(services, "o1", "f1", to="created")      # an unpaid order does not count
    buy(services, "o2", "f2")
    buy(services, "o3", "f3")
    assert reasons(services, "boss") == {"f1": "pending", "f2": "counted", "f3": "counted"}
    assert points(services, "boss") == 0
    buy(services, "o4", "f1")
    assert points(services, "boss") == REWARD
    buy(services, "o5", "f1")                    # a second order changes nothing
    assert points(services, "boss") == REWARD


def test_paid_hook_twice_does_nothing(services: Services) -> None:
    shop(services, "boss", "f1")
    task(services, counts="first_paid_order", goal=1)
    invite(services, "boss", "f1")
    paid = buy(services, "o1", "f1")
    with transaction(services.sessions) as session:
        buyer = customers.customer_ids_by_key(session, ["f1"])["f1"]
    moved = OrderTransition(order_id=paid.id, external_id="o1", customer_id=buyer,
                            from_status="created", to_status="paid", at=services.clock.now(),
                            total_fen=paid.total_fen or 0)
    for _ in range(2):
        with transaction(services.sessions) as session:
            invites._on_order(session, services.clock, moved)
    with transaction(services.sessions) as session:
        shown = invites.progress(session, "t1", "boss")
    assert (shown.counted, shown.rewarded) == (1, True)
    assert points(services, "boss") == REWARD


def test_reports_are_idempotent_and_checked(services: Services) -> None:
    shop(services, "boss", "rival", "f1")
    task(services)
    first = invite(services, "boss", "f1")
    again = invite(services, "boss", "f1")
    assert (again.replayed, again.state, again.invited_at) == (True, "counted",
                                                                first.invited_at)
    with pytest.raises(Conflict) as other:
        invite(services, "rival", "f1")
    assert other.value.code == "already_invited"
    with pytest.raises(NotFound) as missing:
        invite(services, "boss", "nobody")
    assert missing.value.attr == "invitee"
    advance(services, timedelta(days=15))
    add_people(services, "f2")
    with pytest.raises(Conflict) as closed:
        invite(services, "boss", "f2")
    assert closed.value.code == "task_closed"
    with transaction(services.sessions) as session:
        assert invites.progress(session, "t1", "boss").counted == 1


def test_task_terms_are_checked(services: Services) -> None:
    task(services)
    task(services)  # the same terms again: a replay
    with transaction(services.sessions) as session, pytest.raises(Conflict):
        invites.create_task(session, services.clock, InviteTaskIn(
            code="t1", name="other", goal=5, starts_at=T0, ends_at=T0 + timedelta(days=1),
            reward_points=1))
    with transaction(services.sessions) as session, pytest.raises(ValidationFailed) as bad:
        invites.create_task(session, services.clock, InviteTaskIn(
            code="t2", name="x", goal=1, starts_at=T0, ends_at=T0, reward_points=1))
    assert bad.value.attr == "ends_at"


def test_api(client: TestClient, services: Services, admin_headers: dict[str, Any]) -> None:
    shop(services, "boss", "f1")
    body = {"code": "t9", "name": "邀请好友", "goal": 1, "counts": "registered",
            "starts_at": T0.isoformat(), "ends_at": (T0 + timedelta(days=7)).isoformat(),
            "reward_points": 300}
    assert client.post("/api/v1/referrals/tasks", json=body,
                       headers=admin_headers).status_code == 201
    assert client.post("/api/v1/referrals/tasks", json=body,
                       headers=admin_headers).status_code == 200
    made = client.post("/api/v1/referrals/tasks/t9/invites",
                       json={"inviter": "boss", "invitee": "f1"}, headers=admin_headers)
    assert made.status_code == 201
    assert made.json()["state"] == "counted"
    assert client.post("/api/v1/referrals/tasks/t9/invites", json={
        "inviter": "boss", "invitee": "f1"}, headers=admin_headers).status_code == 200
    mine = client.get("/api/v1/referrals/tasks/t9/progress/boss", headers=admin_headers).json()
    assert (mine["counted"], mine["goal"], mine["rewarded"]) == (1, 1, True)
    board = client.get("/api/v1/referrals/tasks/t9", headers=admin_headers).json()
    assert board["task"]["rewarded"] == 1
    assert board["inviters"][0]["inviter"] == "boss"
    assert client.get("/api/v1/referrals/tasks", headers=admin_headers).json()[0]["code"] == "t9"
    assert client.get("/api/v1/referrals/tasks/nope", headers=admin_headers).status_code == 404
    assert points(services, "boss") == 300
