"""Group buying (docs/group-buying.md): tiers, the group state machine with its orders and
refunds, refusals, idempotency, expiry, settlement and the per-offer figures, on SQLite."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import update
from sqlalchemy.orm import Session

from shequ.core.clock import FixedClock
from shequ.core.db import transaction
from shequ.core.errors import ShequError
from shequ.core.permissions import CLI_PRINCIPAL
from shequ.core.web import Services
from shequ.domains.campaigns import groups
from shequ.domains.campaigns.group_models import BuyingGroup, GroupMember, GroupOffer
from shequ.domains.campaigns.group_schemas import JoinIn, JoinOut, OfferIn, OpenIn, TierIn
from shequ.domains.catalog import service as catalog
from shequ.domains.catalog.schemas import BrandIn, ProductIn
from shequ.domains.customers import service as customers
from shequ.domains.customers.schemas import CustomerIn
from shequ.domains.orders import service as orders
from shequ.domains.orders.schemas import LineIn, OrderIn

PRICE = 10_000
TIERS = [{"size": 2, "percent_off": 10}, {"size": 3, "percent_off": 15},
         {"size": 5, "percent_off": 25}]


def seed(wired: Services, customer_count: int = 8, stock: int = 100) -> None:
    """A brand, product ``TEA`` (¥100, ``stock`` units) and customers c0…c{n-1}."""
    with transaction(wired.sessions, actor="test") as session:
        catalog.create_brand(session, BrandIn(external_id="b1", name="茶园"))
        catalog.create_product(session, wired.clock, CLI_PRINCIPAL, ProductIn(
            sku="TEA", name="明前龙井", brand_external_id="b1", price_fen=PRICE, stock=stock))
        for n in range(customer_count):
            customers.create_customer(session, wired.clock, CustomerIn(external_id=f"c{n}"))


def offer_in(wired: Services, *, code: str = "tea", stock: int = 40, hours: int = 24,
             limit: int = 2, tiers: list[dict[str, int]] | None = None,
             days: int = 10) -> OfferIn:
    now = wired.clock.now()
    return OfferIn.model_validate({
        "code": code, "title": "龙井拼团", "sku": "TEA", "tiers": tiers or TIERS,
        "hours": hours, "starts_at": now, "ends_at": now + timedelta(days=days),
        "stock": stock, "per_customer_limit": limit})


def make_offer(wired: Services, **options: Any) -> None:
    with transaction(wired.sessions) as session:
        groups.create_offer(session, wired.clock, offer_in(wired, **options))


def open_(wired: Services, customer: str, *, offer: str = "tea", quantity: int = 1,
          key: str | None = None) -> JoinOut:
    with transaction(wired.sessions) as session:
        return groups.open_group(session, wired.clock, OpenIn(
            offer=offer, customer_external_id=customer, quantity=quantity,
            idempotency_key=key or f"open-{customer}-{offer}"))


def join(wired: Services, group_id: int, customer: str, *, quantity: int = 1,
         key: str | None = None) -> JoinOut:
    with transaction(wired.sessions) as session:
        return groups.join_group(session, wired.clock, JoinIn(
            group_id=group_id, customer_external_id=customer, quantity=quantity,
            idempotency_key=key or f"join-{group_id}-{customer}"))


def refused(call: Any) -> str:
    with pytest.raises(ShequError) as caught:
        call()
    return caught.value.code


def stock_of(wired: Services) -> int:
    with transaction(wired.sessions) as session:
        return catalog.get_product(session, CLI_PRINCIPAL, "TEA").stock


def violations(wired: Services) -> dict[str, int]:
    with transaction(wired.sessions) as session:
        return groups.invariant_violations(session)


CLEAN = {"over_full_groups": 0, "member_count_mismatch": 0, "double_joins": 0,
         "negative_stock": 0, "stock_mismatch": 0, "refund_mismatch": 0,
         "succeeded_below_tier": 0}


def advance(wired: Services, delta: timedelta) -> None:
    assert isinstance(wired.clock, FixedClock)
    wired.clock.advance(delta)


# --- tiers -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("tiers", "code"), [
    ([(3, 10), (2, 15)], "tier_sizes_not_ascending"),
    ([(2, 10), (2, 15)], "tier_sizes_not_ascending"),
    ([(2, 20), (3, 15)], "tier_discounts_not_ascending"),
    ([(2, 10), (4, 10)], "tier_discounts_not_ascending"),
])
def test_tiers_must_ascend(services: Services, tiers: list[tuple[int, int]],
                           code: str) -> None:
    data = [TierIn(size=s, percent_off=p) for s, p in tiers]
    assert refused(lambda: groups.validate_tiers(data)) == code


@pytest.mark.parametrize("tier", [{"size": 1, "percent_off": 10},
                                  {"size": 2, "percent_off": 0},
                                  {"size": 2, "percent_off": 100}])
def test_tier_bounds(tier: dict[str, int]) -> None:
    with pytest.raises(ValidationError):
        TierIn.model_validate(tier)


def test_bad_offers_leave_nothing(services: Services) -> None:
    seed(services, stock=30)
    with transaction(services.sessions) as session:
        bad = offer_in(services).model_copy(update={"tiers": [TierIn(size=3, percent_off=5),
                                                              TierIn(size=2, percent_off=9)]})
        assert refused(lambda: groups.create_offer(session, services.clock, bad)) \
            == "tier_sizes_not_ascending"
        assert refused(lambda: groups.create_offer(
            session, services.clock, offer_in(services, stock=31))) == "insufficient_stock"
        assert groups.list_offers(session, services.clock) == []
    assert stock_of(services) == 30


def test_offer_takes_its_stock_once(services: Services) -> None:
    seed(services, stock=100)
    with transaction(services.sessions) as session:
        made = groups.create_offer(session, services.clock, offer_in(services, stock=40))
        again = groups.create_offer(session, services.clock, offer_in(services, stock=40))
        other = offer_in(services, stock=41)
        assert refused(lambda: groups.create_offer(session, services.clock, other)) \
            == "offer_exists"
    assert made.created
    assert not again.created
    assert (made.min_size, made.max_size, made.stock_left) == (2, 5, 40)
    assert made.unit_price_fen == PRICE
    assert made.status == "running"
    assert stock_of(services) == 60


# --- the state machine -----------------------------------------------------------------------

def test_a_full_group_succeeds_at_once_with_orders(services: Services) -> None:
    seed(services)
    make_offer(services)
    opened = open_(services, "c0")
    gid = opened.group.id
    assert opened.group.state == "open"
    assert opened.member.is_leader
    assert opened.member.paid_fen == PRICE
    assert opened.group.tier_size is None
    assert opened.group.next_tier_size == 2
    assert opened.group.seconds_left == 24 * 3600
    second = join(services, gid, "c1")
    assert (second.group.tier_size, second.group.percent_off) == (2, 10)
    for n in (2, 3):
        join(services, gid, f"c{n}")
    last = join(services, gid, "c4")
    assert last.group.state == "succeeded"
    assert last.group.member_count == 5
    assert (last.group.tier_size, last.group.percent_off) == (5, 25)
    assert last.group.seconds_left == 0
    for member in last.group.members:
        assert member.state == "ordered"
        assert member.discount_fen == member.refunded_fen == PRICE // 4
    with transaction(services.sessions) as session:
        for member in last.group.members:
            assert member.order_external_id is not None
            order = orders.get_order(session, CLI_PRINCIPAL, member.order_external_id)
            assert order.status == "paid"
            assert order.channel == "group_buying"
            assert (order.total_fen, order.discount_fen) == (PRICE * 3 // 4, PRICE // 4)
            assert order.customer_external_id == member.customer_external_id
        offer = groups.get_offer(session, services.clock, "tea")
    # 40 set aside, 5 sold through orders (back to the catalog and out again), 35 left.
    assert offer.stock_left == 35
    assert stock_of(services) == 60
    assert refused(lambda: join(services, gid, "c5")) == "group_full"
    assert violations(services) == CLEAN


def test_deadline_closes_by_the_smallest_tier(services: Services) -> None:
    seed(services)
    make_offer(services, hours=2)
    winners = open_(services, "c0").group.id
    join(services, winners, "c1")
    join(services, winners, "c2")
    losers = open_(services, "c3", quantity=2).group.id
    advance(services, timedelta(hours=1))
    assert refused(lambda: join(services, losers, "c4", quantity=3)) == "limit_reached"
    advance(services, timedelta(hours=1))
    assert refused(lambda: join(services, losers, "c4")) == "group_closed"
    report = groups.expire_groups(services)
    assert report == {"succeeded": 1, "expired": 1, "refunded": 1, "settled_offers": 0,
                      "failed": 0}
    assert groups.expire_groups(services) == {"succeeded": 0, "expired": 0, "refunded": 0,
                                              "settled_offers": 0, "failed": 0}
    with transaction(services.sessions) as session:
        won = groups.show_group(session, services.clock, winners)
        lost = groups.show_group(session, services.clock, losers)
        offer = groups.get_offer(session, services.clock, "tea")
    assert (won.state, won.tier_size, won.percent_off) == ("succeeded", 3, 15)
    assert all(m.refunded_fen == PRICE * 15 // 100 for m in won.members)
    assert lost.state == "refunded"
    assert lost.refunded_at is not None
    assert [(m.state, m.refunded_fen, m.paid_fen) for m in lost.members] == [
        ("refunded", 2 * PRICE, 2 * PRICE)]
    assert offer.stock_left == 40 - 3  # the expired group's 2 units came back
    assert refused(lambda: join(services, losers, "c4")) == "group_closed"
    assert violations(services) == CLEAN


def test_ended_offer_gives_its_stock_back(services: Services) -> None:
    seed(services)
    make_offer(services, hours=48, days=1)
    gid = open_(services, "c0").group.id
    join(services, gid, "c1")
    with transaction(services.sessions) as session:
        assert groups.show_group(session, services.clock, gid).deadline_at \
            == services.clock.now() + timedelta(days=1)  # capped at the offer's end
    advance(services, timedelta(days=1))
    assert refused(lambda: open_(services, "c2")) == "offer_ended"
    report = groups.expire_groups(services)
    assert (report["succeeded"], report["settled_offers"]) == (1, 1)
    with transaction(services.sessions) as session:
        offer = groups.get_offer(session, services.clock, "tea")
    assert (offer.stock_left, offer.returned_units, offer.status) == (0, 38, "ended")
    assert stock_of(services) == 100 - 2
    assert groups.expire_groups(services)["settled_offers"] == 0
    assert violations(services) == CLEAN


# --- refusals and idempotency ----------------------------------------------------------------

def test_refusals(services: Services) -> None:
    seed(services)
    make_offer(services, stock=3, limit=2)
    gid = open_(services, "c0").group.id
    assert refused(lambda: join(services, gid, "c0", key="other")) == "already_joined"
    assert refused(lambda: join(services, 999, "c1")) == "group_not_found"
    assert refused(lambda: join(services, gid, "nobody")) == "customer_not_found"
    assert refused(lambda: open_(services, "c0", quantity=2, key="k2")) == "limit_reached"
    join(services, gid, "c1", quantity=2)
    assert refused(lambda: join(services, gid, "c2")) == "offer_sold_out"
    with transaction(services.sessions) as session:
        groups.set_paused(session, services.clock, "tea", True)
    assert refused(lambda: open_(services, "c3")) == "offer_paused"
    with transaction(services.sessions) as session:
        later = offer_in(services, code="later2", stock=5)
        later = later.model_copy(update={"starts_at": later.starts_at + timedelta(days=1)})
        groups.create_offer(session, services.clock, later)
    assert refused(lambda: open_(services, "c3", offer="later2")) == "offer_not_started"
    assert refused(lambda: open_(services, "c3", offer="none")) == "offer_not_found"
    assert violations(services) == CLEAN


def test_replays_answer_the_first_request(services: Services) -> None:
    seed(services)
    make_offer(services)
    first = open_(services, "c0", key="o1")
    again = open_(services, "c0", key="o1")
    assert again.replayed
    assert not first.replayed
    assert again.group.id == first.group.id
    joined = join(services, first.group.id, "c1", key="j1")
    replay = join(services, first.group.id, "c1", key="j1")
    assert replay.replayed
    assert replay.member == joined.member
    assert refused(lambda: join(services, first.group.id, "c2", key="j1")) \
        == "idempotency_key_used"
    assert refused(lambda: open_(services, "c1", key="j1")) == "idempotency_key_used"
    with transaction(services.sessions) as session:
        shown = groups.show_group(session, services.clock, first.group.id)
        offer = groups.get_offer(session, services.clock, "tea")
    assert shown.member_count == 2
    assert offer.stock_left == 38


# --- figures ---------------------------------------------------------------------------------

def test_figures_on_a_tiny_dataset(services: Services) -> None:
    seed(services)
    # c0 bought before: not a new customer; everybody else is.
    with transaction(services.sessions) as session:
        orders.create_order(session, services.clock, OrderIn(
            external_id="before", customer_external_id="c0",
            lines=[LineIn(sku="TEA", quantity=1)]))
        orders.transition_order(session, services.clock, CLI_PRINCIPAL, "before", "paid")
    advance(services, timedelta(minutes=5))
    make_offer(services, hours=10)
    full = open_(services, "c0").group.id
    advance(services, timedelta(hours=1))
    for n in (1, 2, 3):
        join(services, full, f"c{n}")
    advance(services, timedelta(hours=1))
    join(services, full, "c4", quantity=2)  # fills: 2 h after opening
    small = open_(services, "c5").group.id
    join(services, small, "c6")
    lonely = open_(services, "c7").group.id
    advance(services, timedelta(hours=10))
    groups.expire_groups(services)
    with transaction(services.sessions) as session:
        found = groups.figures(session, services.clock, "tea")
        assert groups.show_group(session, services.clock, lonely).state == "refunded"
    assert (found.groups_opened, found.groups_open, found.groups_succeeded,
            found.groups_expired) == (3, 0, 2, 1)
    assert found.success_rate == pytest.approx(2 / 3)
    assert (found.members, found.successful_members, found.orders) == (8, 7, 7)
    assert found.new_customers == 7
    full_gmv = 6 * PRICE * 3 // 4  # five members, six units at 25 % off
    small_gmv = 2 * (PRICE - PRICE // 10)
    assert found.gmv_fen == full_gmv + small_gmv
    assert found.discount_fen == 6 * PRICE // 4 + 2 * PRICE // 10
    assert found.avg_units == pytest.approx(8 / 7)
    assert found.avg_order_fen == pytest.approx((full_gmv + small_gmv) / 7)
    # Time to the smallest tier (2): the full group's 2nd member came after 1 h, the small
    # group's at once; only the full group reached the largest tier.
    assert found.avg_fill_seconds == pytest.approx((3600 + 0) / 2)
    assert found.groups_filled == 1


# --- the API ---------------------------------------------------------------------------------

def test_api_flow(services: Services, client: TestClient,
                  admin_headers: dict[str, str]) -> None:
    seed(services)
    now = services.clock.now()
    body = {"code": "api", "title": "接口拼团", "sku": "TEA", "tiers": TIERS[:1], "hours": 6,
            "starts_at": now.isoformat(), "ends_at": (now + timedelta(days=3)).isoformat(),
            "stock": 10, "per_customer_limit": 1}
    made = client.post("/api/v1/group-buying/offers", json=body, headers=admin_headers)
    assert made.status_code == 201, made.text
    assert client.post("/api/v1/group-buying/offers", json=body,
                       headers=admin_headers).status_code == 200
    bad = {**body, "code": "bad", "tiers": [{"size": 3, "percent_off": 10},
                                            {"size": 2, "percent_off": 20}]}
    refusal = client.post("/api/v1/group-buying/offers", json=bad, headers=admin_headers)
    assert refusal.status_code == 422
    assert refusal.json()["code"] == "tier_sizes_not_ascending"
    opened = client.post("/api/v1/group-buying/groups", headers=admin_headers, json={
        "offer": "api", "customer_external_id": "c0", "idempotency_key": "a1"})
    assert opened.status_code == 201, opened.text
    gid = opened.json()["group"]["id"]
    listed = client.get("/api/v1/group-buying/offers/api/groups", headers=admin_headers)
    assert [g["id"] for g in listed.json()] == [gid]
    assert listed.headers["X-Total-Count"] == "1"
    join_body = {"group_id": gid, "customer_external_id": "c1", "idempotency_key": "a2"}
    url = f"/api/v1/group-buying/groups/{gid}/join"
    assert client.post(url, json=join_body, headers=admin_headers).status_code == 201
    assert client.post(url, json=join_body, headers=admin_headers).status_code == 200
    again = client.post(url, json={**join_body, "idempotency_key": "a3"},
                        headers=admin_headers)
    assert again.status_code == 409
    assert again.json()["code"] == "already_joined"
    assert client.post(url, json={**join_body, "customer_external_id": "c2",
                                  "idempotency_key": "a4"},
                       headers=admin_headers).json()["code"] == "group_full"
    shown = client.get(f"/api/v1/group-buying/groups/{gid}", headers=admin_headers).json()
    assert shown["state"] == "succeeded"
    assert shown["percent_off"] == 10
    figures = client.get("/api/v1/group-buying/offers/api/figures",
                         headers=admin_headers).json()
    assert figures["orders"] == 2
    assert figures["groups_succeeded"] == 1
    paused = client.post("/api/v1/group-buying/offers/api/pause", headers=admin_headers)
    assert paused.json()["status"] == "paused"
    expiry = client.post("/api/v1/group-buying/expiry", headers=admin_headers)
    assert expiry.status_code == 200
    assert expiry.json()["failed"] == 0
    assert client.get("/api/v1/group-buying/offers").status_code == 401


def test_session_helpers_share_one_transaction(session: Session, services: Services) -> None:
    """The service functions work inside a caller's transaction (the benchmark's use)."""
    seed(services)
    groups.create_offer(session, services.clock, offer_in(services))
    opened = groups.open_group(session, services.clock, OpenIn(
        offer="tea", customer_external_id="c0", idempotency_key="s1"))
    groups.join_group(session, services.clock, JoinIn(
        group_id=opened.group.id, customer_external_id="c1", idempotency_key="s2"))
    assert groups.invariant_violations(session) == CLEAN


def test_the_check_sees_tampering(services: Services) -> None:
    seed(services)
    make_offer(services, hours=1)
    gid = open_(services, "c0").group.id
    join(services, gid, "c1")
    lonely = open_(services, "c2").group.id
    advance(services, timedelta(hours=2))
    groups.expire_groups(services)
    assert violations(services) == CLEAN
    with transaction(services.sessions) as session:
        session.execute(update(BuyingGroup).where(BuyingGroup.id == gid)
                        .values(member_count=1, units=1))
        session.execute(update(GroupOffer).values(stock_left=GroupOffer.stock_left - 1))
        session.execute(update(GroupMember).where(GroupMember.group_id == lonely)
                        .values(refunded_fen=0))
    found = violations(services)
    assert found["member_count_mismatch"] == 1
    assert found["stock_mismatch"] == 1
    assert found["refund_mismatch"] == 1
    assert found["succeeded_below_tier"] == 1  # 1 member left in a succeeded group
