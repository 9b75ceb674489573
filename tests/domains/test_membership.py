"""Membership tiers on real stores: rules, daily evaluation with grace, history, figures,
the API, the CLI, and concurrent evaluations on PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from conftest import bearer, make_key
from shequ.core.clock import FixedClock
from shequ.core.db import Base, transaction
from shequ.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from shequ.core.permissions import Principal
from shequ.core.settings import load_settings
from shequ.core.web import Services
from shequ.domains.catalog import service as catalog
from shequ.domains.content import service as content
from shequ.domains.customers import service as customers
from shequ.domains.membership import service
from shequ.domains.membership.models import EvaluationRun, Membership, TierChange
from shequ.domains.membership.schemas import TierRuleIn, TierRulesIn
from shequ.domains.orders import service as orders
from shequ.entrypoints.bootstrap import bootstrap, close
from shequ.entrypoints.cli_membership import membership_app

Headers = dict[str, str]
D0 = date(2025, 10, 1)  # first purchases; the clock stands at 2026-11-20


def at(day: date, hour: int = 12) -> datetime:
    """Noon (UTC) of ``day``: 20:00 in Shanghai, inside the same local day."""
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def load(services: Services, people: int, purchases: list[tuple[int, date, int, str]],
         reviews: Sequence[tuple[int, date]] = (), posts: Sequence[tuple[int, date]] = ()
         ) -> None:
    """Customers ``c1..cN`` and their orders ``(customer, day, fen, status)``, one product
    ``P1`` for reviews, and the content given; then the default rules."""
    when = at(D0 - timedelta(days=30))
    with transaction(services.sessions) as session:
        catalog.bulk_load(session, [{"external_id": "b1", "name": "花知晓"}], [], [
            {"sku": "P1", "name": "面霜", "brand_external_id": "b1", "price_fen": 9900,
             "stock": 100}])
        customers.bulk_load(session, [
            {"external_id": f"c{i}", "nickname": f"用户{i}", "gender": "f", "city": "上海",
             "birth_year": 1990, "registered_at": when, "acquisition_channel": "app"}
            for i in range(1, people + 1)], [])
        orders.bulk_load_orders(session, [
            {"external_id": f"o{n}", "customer_external_id": f"c{who}", "status": status,
             "channel": "app", "created_at": at(day), "paid_at": at(day),
             "shipped_at": None, "completed_at": None, "cancelled_at": None,
             "refunded_at": at(day) if status == "refunded" else None, "total_fen": fen,
             "discount_fen": 0, "coupon_code": None, "device_external_id": None,
             "shipping_address": None, "payment_account": None}
            for n, (who, day, fen, status) in enumerate(purchases)], [])
        content.bulk_load(session, [], [], [
            {"external_id": f"p{n}", "author_customer_external_id": f"c{who}", "title": "心得",
             "body": "很好用", "created_at": at(day)} for n, (who, day) in enumerate(posts)],
            [], [{"external_id": f"r{n}", "customer_external_id": f"c{who}", "sku": "P1",
                  "rating": 5, "text": "好", "created_at": at(day)}
                 for n, (who, day) in enumerate(reviews)])
        service.install_default_rules(session, services.clock)


def paid(who: int, day: date, yuan: int) -> tuple[int, date, int, str]:
    return who, day, yuan * 100, "paid"


def ids(services: Services) -> dict[str, int]:
    with transaction(services.sessions) as session:
        return customers.customer_ids_by_key(session, [f"c{i}" for i in range(1, 10)])


def tiers(services: Services) -> dict[str, str]:
    keys = {v: k for k, v in ids(services).items()}
    with transaction(services.sessions) as session:
        return {keys[c]: t for c, t in service.current_tiers(session).items()}


def history(services: Services, key: str) -> list[tuple[date, str, str, str]]:
    with transaction(services.sessions) as session:
        return [(c.day, c.from_tier, c.to_tier, c.reason)
                for c in service.tier_history(session, ids(services)[key])]


def change_rows(services: Services) -> int:
    with transaction(services.sessions) as session:
        return session.scalar(select(func.count()).select_from(TierChange)) or 0


# --- rules ---------------------------------------------------------------------------------


def test_default_rules_install_once(services: Services) -> None:
    with transaction(services.sessions) as session:
        first = service.install_default_rules(session, services.clock)
        again = service.install_default_rules(session, services.clock)
    assert [(r.code, r.name, r.threshold, r.grace_days) for r in first] == [
        ("silver", "银卡", 100_000, 30), ("gold", "金卡", 500_000, 30),
        ("black_gold", "黑金卡", 2_000_000, 30)]
    assert again == first
    assert [b.title for b in first[2].benefits][:4] == ["包邮", "生日礼", "专属客服", "优先购"]


def test_rule_changes_are_checked_against_the_other_tiers(services: Services) -> None:
    load(services, 1, [])
    gold = TierRuleIn(name="金卡", threshold=90_000)
    with transaction(services.sessions) as session, pytest.raises(ValidationFailed) as caught:
        service.put_rule(session, services.clock, "gold", gold)
    assert (caught.value.code, caught.value.attr) == ("thresholds_not_increasing", "threshold")
    assert "above the silver threshold (100000)" in caught.value.detail
    with transaction(services.sessions) as session, pytest.raises(ValidationFailed) as caught:
        service.put_rule(session, services.clock, "gold",
                         TierRuleIn(name="金卡", basis="points", threshold=5_000))
    assert (caught.value.code, caught.value.attr) == ("tiers_disagree", "basis")
    with transaction(services.sessions) as session, pytest.raises(NotFound):
        service.put_rule(session, services.clock, "diamond", gold)
    with transaction(services.sessions) as session:
        changed = service.put_rule(session, services.clock, "gold",
                                   TierRuleIn(name="金卡会员", threshold=600_000, grace_days=0))
    assert (changed.name, changed.threshold, changed.grace_days) == ("金卡会员", 600_000, 0)


# --- evaluation ----------------------------------------------------------------------------


def test_evaluation_ranks_on_twelve_month_net_spend(services: Services) -> None:
    day = date(2026, 11, 1)
    load(services, 6, [
        paid(1, day, 999), paid(2, day, 1_000), paid(3, day, 4_000), paid(3, day, 1_000),
        paid(4, day, 20_000), (5, day, 900_000, "refunded"),
        paid(6, day - timedelta(days=365), 50_000),  # one day too old for the window
    ])
    report = service.evaluate(services, day)
    assert (report.upgrades, report.members) == (3, {"silver": 1, "gold": 1, "black_gold": 1})
    assert report.customers == 4  # buyers of the window: no refund, nothing too old
    assert tiers(services) == {"c2": "silver", "c3": "gold", "c4": "black_gold"}
    assert history(services, "c3") == [(day, "none", "gold", "upgrade")]
    with transaction(services.sessions) as session:
        assert session.get(Membership, ids(services)["c3"]).qualified_value == 500_000


def test_the_same_day_twice_changes_nothing(services: Services) -> None:
    day = date(2026, 11, 1)
    load(services, 2, [paid(1, day, 6_000), paid(2, day, 1_000)])
    first = service.evaluate(services, day)
    again = service.evaluate(services, day)
    assert (first.changes, again.changes) == (2, 0)
    assert again.members == first.members
    assert change_rows(services) == 2
    with transaction(services.sessions) as session:
        run = session.get(EvaluationRun, day)
        assert (run.customers, run.changes) == (2, 2)


def test_grace_keeps_the_tier_then_drops_to_the_tier_then_qualified_for(
        services: Services) -> None:
    expiry = D0 + timedelta(days=365)  # the first purchase leaves the window this day
    load(services, 3, [
        paid(1, D0, 6_000), paid(1, expiry + timedelta(days=10), 1_200),  # gold → silver
        paid(2, D0, 25_000),  # black_gold → none in one step
        paid(3, D0, 6_000), paid(3, expiry + timedelta(days=20), 5_500),  # back in grace
    ])
    service.evaluate(services, D0)
    assert tiers(services) == {"c1": "gold", "c2": "black_gold", "c3": "gold"}
    report = service.evaluate(services, expiry)
    assert report.grace_started == 3
    with transaction(services.sessions) as session:
        assert session.get(Membership, ids(services)["c1"]).grace_until == expiry + timedelta(
            days=30)
    for offset in (10, 20, 29):
        service.evaluate(services, expiry + timedelta(days=offset))
    assert tiers(services) == {"c1": "gold", "c2": "black_gold", "c3": "gold"}
    end = service.evaluate(services, expiry + timedelta(days=30))
    assert (end.downgrades, end.members) == (2, {"silver": 1, "gold": 1, "black_gold": 0})
    assert tiers(services) == {"c1": "silver", "c3": "gold"}
    assert history(services, "c1") == [
        (D0, "none", "gold", "upgrade"), (expiry, "gold", "gold", "grace_started"),
        (expiry + timedelta(days=30), "gold", "silver", "downgrade")]
    assert history(services, "c2")[-1] == (expiry + timedelta(days=30), "black_gold", "none",
                                           "downgrade")
    assert history(services, "c3")[-1] == (expiry + timedelta(days=20), "gold", "gold",
                                           "grace_cancelled")


def test_days_are_evaluated_in_order(services: Services) -> None:
    load(services, 1, [paid(1, D0, 2_000)])
    service.evaluate(services, D0 + timedelta(days=3))
    with pytest.raises(Conflict) as caught:
        service.evaluate(services, D0)
    assert (caught.value.code, caught.value.attr) == ("day_before_last_evaluation", "day")
    with pytest.raises(ValidationFailed) as future:
        service.evaluate(services, date(2026, 11, 21))
    assert (future.value.code, future.value.attr) == ("day_in_future", "day")


def test_evaluation_needs_every_rule(services: Services) -> None:
    with pytest.raises(Conflict) as caught:
        service.evaluate(services, D0)
    assert caught.value.code == "tier_rules_missing"


def test_points_count_reviews_and_published_posts(services: Services) -> None:
    day = date(2026, 11, 1)
    load(services, 3, [paid(1, day, 900), paid(2, day, 900), paid(3, day, 100)],
         reviews=[(1, day), (1, day)], posts=[(2, day), (3, day - timedelta(days=400))])
    rule = {"basis": "points", "points_per_review": 50, "points_per_post": 100}
    with transaction(services.sessions) as session:
        service.put_rules(session, services.clock, TierRulesIn(
            silver=TierRuleIn(name="银卡", threshold=1_000, **rule),
            gold=TierRuleIn(name="金卡", threshold=5_000, **rule),
            black_gold=TierRuleIn(name="黑金卡", threshold=20_000, **rule)))
    report = service.evaluate(services, day)
    assert report.basis == "points"
    assert tiers(services) == {"c1": "silver", "c2": "silver"}  # 900 + 2×50, 900 + 100
    with transaction(services.sessions) as session:
        values = {c: session.get(Membership, i).qualified_value
                  for c, i in ids(services).items() if c in ("c1", "c2")}
    assert values == {"c1": 1_000, "c2": 1_000}


def test_evaluate_due_catches_up_to_yesterday_once(services: Services,
                                                    clock: FixedClock) -> None:
    load(services, 1, [paid(1, date(2026, 11, 17), 1_500)])
    service.evaluate(services, date(2026, 11, 16))
    done = service.evaluate_due(services)
    assert [r.day for r in done] == [date(2026, 11, 17), date(2026, 11, 18),
                                     date(2026, 11, 19)]
    assert service.evaluate_due(services) == []
    clock.advance(timedelta(days=1))
    assert [r.day for r in service.evaluate_due(services)] == [date(2026, 11, 20)]


# --- reads ---------------------------------------------------------------------------------


def test_member_shows_benefits_history_and_the_way_to_the_next_tier(
        services: Services) -> None:
    day = date(2026, 11, 1)
    load(services, 2, [paid(1, day, 1_500)])
    service.evaluate(services, day)
    with transaction(services.sessions) as session:
        one = service.member(session, ids(services)["c1"])
        other = service.member(session, ids(services)["c2"])
        with pytest.raises(NotFound):
            service.member(session, 999_999)
    assert (one.tier, one.tier_name, one.since, one.next_tier, one.missing_for_next) == (
        "silver", "银卡", day, "gold", 350_000)
    assert [b.code for b in one.benefits] == ["free_shipping", "birthday_gift"]
    assert [(h.from_tier, h.to_tier) for h in one.history] == [("none", "silver")]
    assert (other.tier, other.benefits, other.next_tier, other.missing_for_next) == (
        "none", [], "silver", 100_000)


def test_figures_compare_tiers_with_buyers_without_a_tier(services: Services) -> None:
    day = date(2026, 11, 1)
    load(services, 4, [paid(1, day, 100), paid(1, day, 300), paid(2, day, 200),
                       paid(3, day, 1_200), paid(3, day, 1_200), paid(4, day, 6_000)])
    service.evaluate(services, day)
    with transaction(services.sessions) as session:
        result = service.figures(session, day)
    rows = {r.tier: r for r in result.items}
    assert result.window_from == date(2025, 11, 2)
    assert (rows["none"].customers, rows["none"].average_spend_fen) == (2, 30_000)
    assert (rows["silver"].customers, rows["silver"].spend_fen) == (1, 240_000)
    assert rows["silver"].spend_multiple == pytest.approx(8.0)
    assert rows["gold"].spend_multiple == pytest.approx(20.0)
    assert rows["gold"].spend_share == pytest.approx(600_000 / 900_000)
    assert (rows["none"].repurchase_rate, rows["silver"].repurchase_rate) == (0.5, 1.0)
    assert (rows["black_gold"].customers, rows["black_gold"].spend_multiple) == (0, None)


def test_changes_page_by_id(services: Services) -> None:
    day = date(2026, 11, 1)
    load(services, 5, [paid(i, day, 1_000 * i) for i in range(1, 6)])
    service.evaluate(services, day)
    with transaction(services.sessions) as session:
        first = service.list_changes(session, day=day, limit=3)
        rest = service.list_changes(session, day=day, after=first.next_after, limit=3)
        none = service.list_changes(session, day=day + timedelta(days=1))
    assert (len(first.items), len(rest.items), rest.next_after, none.items) == (3, 2, None, [])
    assert [c.id for c in first.items + rest.items] == sorted(
        c.id for c in first.items + rest.items)


def test_partners_are_refused(services: Services) -> None:
    partner = Principal(kind="apikey", id=1, name="p", permissions=frozenset(
        {"membership:read"}), brand_ids=frozenset({1}))
    with transaction(services.sessions) as session, pytest.raises(PermissionDenied):
        service.list_rules(session, principal=partner)
    with pytest.raises(PermissionDenied):
        service.evaluate(services, D0, principal=partner)


# --- API -----------------------------------------------------------------------------------


@pytest.fixture
def writer(services: Services) -> Headers:
    return bearer(make_key(services, ["membership:read", "membership:write"]))


def test_api_rules_evaluate_member_changes(client: TestClient, services: Services,
                                           writer: Headers) -> None:
    day = date(2026, 11, 1)
    load(services, 2, [paid(1, day, 5_000)])
    rules = client.get("/api/v1/membership/rules", headers=writer).json()
    assert [r["code"] for r in rules] == ["silver", "gold", "black_gold"]
    evaluated = client.post(f"/api/v1/membership/evaluate?day={day}", headers=writer)
    assert evaluated.status_code == 200, evaluated.text
    assert (evaluated.json()["upgrades"], evaluated.json()["changes"]) == (1, 1)
    member = client.get(f"/api/v1/membership/members/{ids(services)['c1']}", headers=writer)
    assert (member.json()["tier"], member.json()["tier_name"]) == ("gold", "金卡")
    changes = client.get(f"/api/v1/membership/changes?day={day}", headers=writer).json()
    assert [(c["to_tier"], c["reason"]) for c in changes["items"]] == [("gold", "upgrade")]
    figures = client.get(f"/api/v1/membership/figures?day={day}", headers=writer).json()
    assert [r["customers"] for r in figures["items"]] == [0, 0, 1, 0]
    earlier = client.post("/api/v1/membership/evaluate?day=2026-10-01", headers=writer)
    assert (earlier.status_code, earlier.json()["attr"]) == (409, "day")
    ancient = client.get("/api/v1/membership/figures?day=0001-01-01", headers=writer)
    assert (ancient.status_code, ancient.json()["code"]) == (422, "day_out_of_range")


@pytest.mark.parametrize(("body", "attr"), [
    ({"name": "金卡", "threshold": 0}, "threshold"),
    ({"name": "金卡", "threshold": 600_000, "grace_days": 366}, "grace_days"),
    ({"name": "金卡", "threshold": 600_000,
      "benefits": [{"code": "gift", "title": "  "}]}, "benefits.0.title"),
    ({"name": "金卡", "threshold": 50_000}, "threshold"),  # below silver's ¥1,000
    ({"name": "金卡", "threshold": 600_000, "basis": "points"}, "basis"),
])  # fmt: skip
def test_api_bad_rules_name_the_field(client: TestClient, services: Services, writer: Headers,
                                      body: dict[str, Any], attr: str) -> None:
    load(services, 1, [])
    answer = client.put("/api/v1/membership/rules/gold", json=body, headers=writer)
    assert (answer.status_code, answer.json()["attr"]) == (422, attr), answer.text


def test_api_permissions(client: TestClient, services: Services) -> None:
    reader = bearer(make_key(services, ["membership:read"]))
    assert client.post("/api/v1/membership/evaluate", headers=reader).status_code == 403
    assert client.get("/api/v1/membership/rules", headers=reader).status_code == 200


# --- CLI -----------------------------------------------------------------------------------


def test_cli_rules_evaluate_range_and_figures(tmp_path: Path) -> None:
    runner = CliRunner()
    home = ["--home", str(tmp_path / "cli")]
    wired = bootstrap(load_settings(tmp_path / "cli"))
    Base.metadata.create_all(wired.extras["engine"])
    close(wired)
    installed = runner.invoke(membership_app, ["rules", "--install", *home])
    assert installed.exit_code == 0, installed.output
    assert '"black_gold"' in installed.stdout
    evaluated = runner.invoke(membership_app, ["evaluate", "--from", "2026-01-01", "--to",
                                               "2026-01-03", *home])
    assert evaluated.exit_code == 0, evaluated.output
    assert evaluated.stdout.count('"day"') == 3
    backwards = runner.invoke(membership_app, ["evaluate", "--day", "2026-01-02", *home])
    assert backwards.exit_code == 1
    assert "day_before_last_evaluation" in backwards.output
    figures = runner.invoke(membership_app, ["figures", "--day", "2026-01-03", *home])
    assert figures.exit_code == 0
    assert '"window_from":"2025-01-04"' in figures.stdout


# --- PostgreSQL ----------------------------------------------------------------------------


def evaluate_together(services: Services, day: date, threads: int = 4) -> list[int]:
    """Evaluate ``day`` from several threads at once; the changes each one wrote."""
    start = threading.Barrier(threads)
    reports: list[Any] = []
    failures: list[BaseException] = []

    def run() -> None:
        start.wait()
        try:
            reports.append(service.evaluate(services, day))
        except BaseException as exc:  # reported by the assertion below
            failures.append(exc)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert failures == []
    return sorted(report.changes for report in reports)


@pytest.mark.postgres
def test_concurrent_evaluations_write_each_change_once(pg_services: Services) -> None:
    pg = pg_services
    load(pg, 9, [paid(i, D0, 800 * i * i) for i in range(1, 10)])
    assert evaluate_together(pg, D0) == [0, 0, 0, 8]
    assert change_rows(pg) == 8
    assert tiers(pg) == {"c2": "silver", "c3": "gold", "c4": "gold"} | {
        f"c{i}": "black_gold" for i in range(5, 10)}  # ¥3,200, ¥7,200, ¥12,800, ≥ ¥20,000
    expiry = D0 + timedelta(days=365)  # conditional UPDATEs this time: every grace starts
    assert evaluate_together(pg, expiry) == [0, 0, 0, 8]
    assert evaluate_together(pg, expiry + timedelta(days=30)) == [0, 0, 0, 8]
    assert change_rows(pg) == 24
    assert tiers(pg) == {}
