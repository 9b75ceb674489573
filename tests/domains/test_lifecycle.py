"""Lifecycle domain: stages of a hand-made community (every rule, day by day), the small
demo (planted lapsing customers, consistency of snapshots, series and transitions),
idempotence, concurrent refreshes on PostgreSQL, strategies, the API and the CLI."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select
from typer.testing import CliRunner

from conftest import bearer, make_key
from shequ.core.clock import FixedClock
from shequ.core.db import Base, transaction
from shequ.core.errors import PermissionDenied, ValidationFailed
from shequ.core.permissions import CLI_PRINCIPAL, PARTNER_ALLOWED, PERMISSIONS, Principal
from shequ.core.settings import Settings
from shequ.core.web import Services
from shequ.demo.loader import load_demo
from shequ.domains.catalog import service as catalog
from shequ.domains.content import service as content
from shequ.domains.customers import service as customers
from shequ.domains.events import service as events
from shequ.domains.lifecycle import service as lifecycle
from shequ.domains.lifecycle.models import LifecycleChange, LifecycleDaily
from shequ.domains.lifecycle.schemas import StrategyIn
from shequ.domains.orders import service as orders
from shequ.domains.segments import service as segments
from shequ.domains.segments.schemas import SegmentIn
from shequ.entrypoints.bootstrap import bootstrap, close
from shequ.entrypoints.cli_lifecycle import lifecycle_app

SHANGHAI = ZoneInfo("Asia/Shanghai")
D0 = date(2026, 6, 1)
LONG_AGO = datetime(2025, 1, 1, tzinfo=UTC)
END = date(2026, 11, 20)
CUTOFF = date(2026, 10, 22)  # day 60 of the demo window: the lapsing customers fall silent


def _at(offset: int, hour: int = 12) -> datetime:
    """Noon (Shanghai) of day D0 + offset, as UTC."""
    return datetime.combine(D0 + timedelta(days=offset), time(hour), SHANGHAI).astimezone(UTC)


def _order(key: str, customer: str, offset: int, *, refunded: int | None = None,
           sku: str = "SKU1") -> tuple[dict[str, Any], dict[str, Any]]:
    paid = _at(offset)
    order = {"external_id": key, "customer_external_id": customer,
             "status": "refunded" if refunded is not None else "paid", "channel": "app",
             "created_at": paid - timedelta(minutes=5), "paid_at": paid,
             "refunded_at": _at(refunded) if refunded is not None else None,
             "total_fen": 9900, "discount_fen": 0}
    return order, {"order_external_id": key, "sku": sku, "quantity": 1, "unit_price_fen": 9900}


def _views(rows: list[tuple[str, str, int]]) -> pa.Table:
    """post_view events (customer, post, day offset) at 10:00 Shanghai."""
    return pa.table({
        "event_id": [f"ev-{i}" for i in range(len(rows))],
        "name": ["post_view"] * len(rows),
        "ts": pa.array([_at(offset, 10) for _, _, offset in rows], pa.timestamp("us", "UTC")),
        "customer_id": [customer for customer, _, _ in rows],
        "page": [f"/post/{post}" for _, post, _ in rows],
        "properties": [json.dumps({"post_id": post}) for _, post, _ in rows],
    })


@pytest.fixture
def town(services: Services) -> Services:
    """A hand-made community whose stages are worked out by hand in the tests.

    - ``author`` paid once on day 10 and wrote post p1 about SKU1; ``fan`` viewed p1 on
      day 20 and bought SKU1 on day 22 (a conversion); ``late`` viewed it on day 20 and
      bought on day 30 (outside the 7 days: none); ``author`` viewed p1 on day 21 (its
      own view: activity, not a conversion).
    - ``loyal`` paid on days 1, 5 and 9; the day-9 order was refunded on day 12.
    - ``newbie`` registered on day 3 and did nothing.
    """
    people = [("author", LONG_AGO), ("fan", LONG_AGO), ("late", LONG_AGO),
              ("loyal", LONG_AGO), ("newbie", _at(3))]
    placed = [_order("o1", "author", 10), _order("o2", "fan", 22), _order("o3", "late", 30),
              _order("o4", "loyal", 1), _order("o5", "loyal", 5),
              _order("o6", "loyal", 9, refunded=12)]
    with transaction(services.sessions) as session:
        catalog.bulk_load(session, [{"external_id": "b1", "name": "花知晓"}],
                          [{"external_id": "c1", "name": "面霜"}],
                          [{"sku": "SKU1", "name": "面霜", "brand_external_id": "b1",
                            "category_external_id": "c1", "price_fen": 9900, "stock": 99}])
        customers.bulk_load(session, [{"external_id": key, "registered_at": at}
                                      for key, at in people], [])
        orders.bulk_load_orders(session, [o for o, _ in placed], [line for _, line in placed])
        content.bulk_load(session, [], [], [{
            "external_id": "p1", "author_customer_external_id": "author", "title": "好用",
            "body": "真的好用", "sku": "SKU1", "created_at": _at(0)}], [], [])
    events.event_store(services).ingest_arrow(_views([("fan", "p1", 20), ("late", "p1", 20),
                                                      ("author", "p1", 21)]))
    return services


def _ids(services: Services, *keys: str) -> list[int]:
    with transaction(services.sessions) as session:
        return [customers.get_customer(session, key).id for key in keys]


def _stage(services: Services, key: str, offset: int) -> str | None:
    (customer_id,) = _ids(services, key)
    with transaction(services.sessions) as session:
        return lifecycle.stage_of(session, customer_id, D0 + timedelta(days=offset))


def test_stages_follow_behaviour_day_by_day(town: Services) -> None:
    report = lifecycle.refresh(town, D0, D0 + timedelta(days=60))
    assert report.customers == 5
    expected: dict[str, dict[int, str | None]] = {
        "author": {0: "dormant", 9: "dormant", 10: "paying", 21: "paying", 22: "advocate",
                   50: "advocate", 51: "dormant"},
        "fan": {19: "dormant", 20: "active", 21: "active", 22: "paying", 51: "paying",
                52: "dormant"},
        "late": {20: "active", 29: "active", 30: "paying"},
        "loyal": {0: "dormant", 1: "paying", 8: "paying", 9: "loyal", 11: "loyal",
                  12: "paying", 38: "paying", 39: "dormant"},
        "newbie": {2: None, 3: "new", 32: "new", 33: "dormant"},
    }
    found = {key: {offset: _stage(town, key, offset) for offset in days}
             for key, days in expected.items()}
    assert found == expected


def test_history_and_current_stages(town: Services) -> None:
    lifecycle.refresh(town, D0, D0 + timedelta(days=60))
    author, newbie = _ids(town, "author", "newbie")
    with transaction(town.sessions) as session:
        path = [(c.day, c.from_stage, c.to_stage) for c in lifecycle.history(session, author)]
        current = lifecycle.current_stages(session)
        detail = lifecycle.customer_lifecycle(session, newbie)
    assert path == [(D0, None, "dormant"), (D0 + timedelta(days=10), "dormant", "paying"),
                    (D0 + timedelta(days=22), "paying", "advocate"),
                    (D0 + timedelta(days=51), "advocate", "dormant")]
    assert current[author] == "dormant"
    assert len(current) == 5
    assert detail.stage == "dormant"
    assert [c.to_stage for c in detail.history] == ["new", "dormant"]


def test_referrals_count_like_converting_ugc(town: Services) -> None:
    (loyal,) = _ids(town, "loyal")
    lifecycle.refresh(town, D0, D0 + timedelta(days=20),
                      referrals=[(loyal, D0 + timedelta(days=6))])
    assert _stage(town, "loyal", 5) == "paying"
    assert _stage(town, "loyal", 6) == "advocate"


def test_refresh_rejects_bad_ranges(town: Services) -> None:
    with pytest.raises(ValidationFailed, match="before") as caught:
        lifecycle.refresh(town, D0, D0 - timedelta(days=1))
    assert (caught.value.code, caught.value.attr) == ("bad_range", "to")
    with pytest.raises(ValidationFailed, match="at most 366") as caught:
        lifecycle.refresh(town, D0, D0 + timedelta(days=400))
    assert (caught.value.code, caught.value.attr) == ("range_too_long", "to")


def test_refresh_due_judges_yesterday(town: Services) -> None:
    # The clock stands at 2026-11-20 16:00 Shanghai: the job judges 2026-11-19.
    report = lifecycle.refresh_due(town)
    assert (report.first_day, report.last_day) == (date(2026, 11, 19), date(2026, 11, 19))
    with transaction(town.sessions) as session:
        counts = lifecycle.snapshot(session, date(2026, 11, 19)).counts
    assert counts == {"new": 0, "active": 0, "paying": 0, "loyal": 0, "advocate": 0,
                      "dormant": 5}


def test_data_window_needs_data(services: Services) -> None:
    with pytest.raises(ValidationFailed) as caught:
        lifecycle.data_window(services)
    assert (caught.value.code, caught.value.attr) == ("no_data", "from")


def test_data_window_spans_orders_and_events(town: Services) -> None:
    assert lifecycle.data_window(town) == (D0 + timedelta(days=1), D0 + timedelta(days=30))


def _changes(services: Services) -> list[tuple[int, date, str | None, str]]:
    with transaction(services.sessions) as session:
        return list(session.execute(
            select(LifecycleChange.customer_id, LifecycleChange.day,
                   LifecycleChange.from_stage, LifecycleChange.to_stage)
            .order_by(LifecycleChange.customer_id, LifecycleChange.day)).tuples())


def test_refresh_is_idempotent_and_ranges_compose(town: Services) -> None:
    last = D0 + timedelta(days=60)
    first_report = lifecycle.refresh(town, D0, last)
    whole = _changes(town)
    again = lifecycle.refresh(town, D0, last)
    assert again.changes_written == first_report.changes_written == len(whole)
    assert _changes(town) == whole
    # Re-judging a middle stretch, or the days before and after separately, gives the same
    # history as one refresh of the whole range.
    lifecycle.refresh(town, D0 + timedelta(days=15), D0 + timedelta(days=25))
    assert _changes(town) == whole
    lifecycle.refresh(town, D0 + timedelta(days=30), last)
    lifecycle.refresh(town, D0, D0 + timedelta(days=29))
    assert _changes(town) == whole


def test_refresh_patches_the_next_change_after_its_range(town: Services) -> None:
    # Days 21..60 first: each customer enters on day 21; judging days 0..20 afterwards
    # must turn those entries into real moves or drop them.
    lifecycle.refresh(town, D0 + timedelta(days=21), D0 + timedelta(days=60))
    lifecycle.refresh(town, D0, D0 + timedelta(days=20))
    patched = _changes(town)
    with transaction(town.sessions) as session:
        session.execute(delete(LifecycleChange))
    lifecycle.refresh(town, D0, D0 + timedelta(days=60))
    assert patched == _changes(town)


# --- the small demo --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Services, dict[str, Any]]]:
    """The small demo loaded once for this module, its window refreshed once."""
    home = tmp_path_factory.mktemp("lifecycle-demo")
    wired = bootstrap(Settings(home=home, environment="development"),
                      clock=FixedClock(datetime(2026, 11, 21, 2, tzinfo=UTC)))
    Base.metadata.create_all(wired.extras["engine"])
    summary = load_demo(wired, size="small", seed=7, end=END)
    first, last = lifecycle.data_window(wired)
    assert (first, last) == (date(2026, 8, 23), END)
    lifecycle.refresh(wired, first, last)
    yield wired, summary
    close(wired)


def test_demo_lapsing_customers_fall_dormant(demo: tuple[Services, dict[str, Any]]) -> None:
    wired, summary = demo
    keys = summary["planted"]["lapsing_customers"]["customer_external_ids"]
    ids = _ids(wired, *keys)
    with transaction(wired.sessions) as session:
        before = lifecycle.current_stages(session, CUTOFF - timedelta(days=1))
        after = lifecycle.current_stages(session, END)
        lapse_days = [next(c.day for c in reversed(lifecycle.history(session, i))
                           if c.to_stage == "dormant") for i in ids]
    assert len(ids) == 10
    # Six orders or more in days 0-59 and activity up to the cutoff: paying at least.
    assert {before[i] for i in ids} <= {"paying", "loyal", "advocate"}
    assert sum(before[i] in ("loyal", "advocate") for i in ids) >= 8
    # Silent from the cutoff: once their last activity leaves the 30-day window (at the
    # latest on day 89 = END) they are dormant, never active or paying in between.
    assert {after[i] for i in ids} == {"dormant"}
    assert all(CUTOFF <= day <= END for day in lapse_days)


def test_demo_snapshots_series_and_transitions_agree(
        demo: tuple[Services, dict[str, Any]]) -> None:
    wired, summary = demo
    with transaction(wired.sessions) as session:
        points = lifecycle.series(session, date(2026, 8, 23), END)
        snapshots = [lifecycle.snapshot(session, point.day) for point in points[::10]]
        matrix = lifecycle.transitions(session, date(2026, 10, 21), END)
        weekly = lifecycle.transition_series(session, date(2026, 10, 21), END)
        start = lifecycle.snapshot(session, date(2026, 10, 21))
        stop = lifecycle.snapshot(session, END)
    assert len(points) == 90
    assert [s.counts for s in snapshots] == [p.counts for p in points[::10]]
    assert stop.total == 500 + summary["counts"]["customers_signed_up"]  # + referral sign-ups
    assert all(count > 0 for stage, count in stop.counts.items() if stage != "advocate")
    rows = [sum(row) for row in matrix.matrix]
    columns = [sum(col) for col in zip(*matrix.matrix, strict=True)]
    assert rows == [start.counts[s] for s in matrix.stages]
    assert [c + matrix.entered[s] for c, s in zip(columns, matrix.stages, strict=True)] == \
        [stop.counts[s] for s in matrix.stages]
    # Nobody leaves the dormant state for "new": new is only for the first 30 days.
    assert matrix.matrix[5][0] == 0
    assert [(w.from_day, w.to_day) for w in weekly][:2] == [
        (date(2026, 10, 21), date(2026, 10, 28)), (date(2026, 10, 28), date(2026, 11, 4))]
    assert weekly[-1].to_day == END


def test_demo_ltv_by_stage(demo: tuple[Services, dict[str, Any]]) -> None:
    wired, summary = demo
    with transaction(wired.sessions) as session:
        stages = lifecycle.current_stages(session, END)
        ltv = {v.stage: v for v in lifecycle.ltv_by_stage(
            session, END, dict.fromkeys(stages, 1000), zone=SHANGHAI).stages}
    # Every demo order falls within 180 days of END: nobody new or merely active has a
    # paid order left standing, so their realised value is exactly zero.
    assert ltv["new"].avg_realised_fen == 0
    assert ltv["active"].avg_realised_fen == 0
    assert ltv["loyal"].avg_realised_fen > ltv["paying"].avg_realised_fen > 0
    assert {v.avg_predicted_clv_fen for v in ltv.values() if v.customers} == {1_000}
    assert sum(v.customers for v in ltv.values()) == 500 + summary["counts"][
        "customers_signed_up"]


# --- concurrency on PostgreSQL -------------------------------------------------------------

def _forget_stages(services: Services) -> None:
    with transaction(services.sessions) as session:
        session.execute(delete(LifecycleChange))
        session.execute(delete(LifecycleDaily))


def test_concurrent_refreshes_of_one_range_on_postgres(pg_services: Services) -> None:
    load_demo(pg_services, size="small", seed=7, end=END)
    _forget_stages(pg_services)  # the demo load judged the window already
    first, last = date(2026, 10, 1), END
    reports: list[Any] = []
    failures: list[BaseException] = []
    gate = threading.Barrier(3)

    def run() -> None:
        gate.wait()
        try:
            reports.append(lifecycle.refresh(pg_services, first, last))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len({r.changes_written for r in reports}) == 1
    together = _changes(pg_services)
    assert len(together) == reports[0].changes_written > 500
    with transaction(pg_services.sessions) as session:
        days = session.scalars(select(LifecycleDaily.day).distinct()).all()
    assert len(days) == (last - first).days + 1
    # The same rows as one refresh alone.
    _forget_stages(pg_services)
    lifecycle.refresh(pg_services, first, last)
    assert _changes(pg_services) == together


def test_concurrent_strategy_updates_on_postgres(pg_services: Services) -> None:
    gate = threading.Barrier(4)
    failures: list[BaseException] = []

    def put(index: int) -> None:
        gate.wait()
        try:
            with transaction(pg_services.sessions) as session:
                lifecycle.update_strategy(session, pg_services.clock, CLI_PRINCIPAL, "dormant",
                                          StrategyIn(action="sms", message=f"回来吧 {index}"))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=put, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    with transaction(pg_services.sessions) as session:
        dormant = next(s for s in lifecycle.strategies(session) if s.stage == "dormant")
    assert dormant.message in {f"回来吧 {i}" for i in range(4)}
    assert dormant.updated_by == CLI_PRINCIPAL.actor


# --- strategies ---------------------------------------------------------------------------

def test_strategies_default_install_and_update(services: Services) -> None:
    segments.create_segment(services, CLI_PRINCIPAL, SegmentIn(
        name="VIP", key="vip-2026", rule={"rfm_group": ["important_value"]}))
    with transaction(services.sessions) as session, pytest.raises(ValidationFailed) as caught:
        lifecycle.update_strategy(session, services.clock, CLI_PRINCIPAL, "loyal",
                                  StrategyIn(action="coupon", segment_key="vip-2027"))
    assert (caught.value.code, caught.value.attr) == ("unknown_segment", "segment_key")
    with transaction(services.sessions) as session:
        shown = lifecycle.strategies(session)
        assert [s.stage for s in shown] == ["new", "active", "paying", "loyal", "advocate",
                                            "dormant"]
        assert all(s.updated_at is None for s in shown)
        assert lifecycle.install_default_strategies(session) == 6
        assert lifecycle.install_default_strategies(session) == 0
        saved = lifecycle.update_strategy(session, services.clock, CLI_PRINCIPAL, "loyal",
                                          StrategyIn(action="coupon", channel="app",
                                                     segment_key="vip-2026",
                                                     message="会员日双倍积分"))
    assert saved.updated_at == services.clock.now()
    with transaction(services.sessions) as session:
        loyal = next(s for s in lifecycle.strategies(session) if s.stage == "loyal")
    assert (loyal.action, loyal.segment_key, loyal.message) == ("coupon", "vip-2026",
                                                                "会员日双倍积分")


# --- API and CLI ------------------------------------------------------------------------

def test_api_round_trip(town: Services, client: TestClient,
                        admin_headers: dict[str, str]) -> None:
    url = "/api/v1/lifecycle"
    refreshed = client.post(f"{url}/refresh?from=2026-06-01&to=2026-07-31",
                            headers=admin_headers)
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["customers"] == 5
    snap = client.get(f"{url}/snapshot?day=2026-06-23", headers=admin_headers).json()
    assert snap["counts"] == {"new": 1, "active": 1, "paying": 2, "loyal": 0,
                              "advocate": 1, "dormant": 0}
    moves = client.get(f"{url}/transitions?from=2026-06-23&to=2026-07-31",
                       headers=admin_headers).json()
    assert sum(map(sum, moves["matrix"])) == 5
    assert moves["matrix"][4][5] == 1  # the author: advocate → dormant
    weekly = client.get(f"{url}/transitions/series?from=2026-06-01&to=2026-06-29",
                        headers=admin_headers).json()
    assert len(weekly) == 4
    points = client.get(f"{url}/series?from=2026-06-01&to=2026-06-05",
                        headers=admin_headers).json()
    assert [p["day"] for p in points] == [f"2026-06-0{i}" for i in range(1, 6)]
    ltv = client.get(f"{url}/ltv?day=2026-06-23", headers=admin_headers).json()
    assert {s["stage"]: s["avg_realised_fen"] for s in ltv["stages"]}["advocate"] == 9900
    person = client.get(f"{url}/customers/author", headers=admin_headers).json()
    assert person["stage"] == "dormant"
    assert len(person["history"]) == 4
    assert client.get(f"{url}/customers/nobody", headers=admin_headers).status_code == 404
    put = client.put(f"{url}/strategies/dormant", headers=admin_headers,
                     json={"action": "sms", "channel": "sms", "message": "好久不见"})
    assert put.status_code == 200, put.text
    listed = client.get(f"{url}/strategies", headers=admin_headers).json()
    assert listed[5]["message"] == "好久不见"
    assert listed[5]["updated_by"].startswith("apikey:")


def test_api_errors_name_the_field(services: Services, client: TestClient,
                                   admin_headers: dict[str, str]) -> None:
    url = "/api/v1/lifecycle"
    bad_stage = client.put(f"{url}/strategies/vip", headers=admin_headers,
                           json={"action": "sms"})
    assert bad_stage.status_code == 422
    assert (bad_stage.json()["code"], bad_stage.json()["attr"]) == ("unknown_stage", "stage")
    bad_action = client.put(f"{url}/strategies/new", headers=admin_headers,
                            json={"action": "fax"})
    assert bad_action.status_code == 422
    assert "action" in (bad_action.json()["attr"] or "")
    bad_segment = client.put(f"{url}/strategies/new", headers=admin_headers,
                             json={"action": "push", "segment_key": "VIP 客户"})
    assert (bad_segment.status_code, bad_segment.json()["attr"]) == (422, "segment_key")
    backwards = client.get(f"{url}/transitions?from=2026-06-02&to=2026-06-01",
                           headers=admin_headers)
    assert (backwards.status_code, backwards.json()["attr"]) == (422, "to")
    empty = client.post(f"{url}/refresh?from=2026-06-02&to=2026-06-01", headers=admin_headers)
    assert empty.status_code == 422


def test_api_permissions(services: Services, client: TestClient) -> None:
    url = "/api/v1/lifecycle"
    reader = bearer(make_key(services, ["insight:read"]))
    assert client.get(f"{url}/snapshot?day=2026-06-01", headers=reader).status_code == 200
    assert client.put(f"{url}/strategies/new", headers=reader,
                      json={"action": "push"}).status_code == 403
    assert client.post(f"{url}/refresh?from=2026-06-01&to=2026-06-01",
                       headers=reader).status_code == 403
    other = bearer(make_key(services, sorted(PERMISSIONS - {"insight:read", "insight:write"})))
    assert client.get(f"{url}/strategies", headers=other).status_code == 403
    partner = bearer(make_key(services, sorted(PARTNER_ALLOWED), brand_ids=[1]))
    assert client.get(f"{url}/snapshot?day=2026-06-01", headers=partner).status_code == 403


def test_partners_are_refused_even_with_insight_permissions(services: Services) -> None:
    # Partner keys cannot hold insight scopes today; the service refuses them regardless.
    partner = Principal(kind="apikey", id=9, name="brand", permissions=PERMISSIONS,
                        brand_ids=frozenset({1}))
    with pytest.raises(PermissionDenied) as caught:
        lifecycle.refuse_partners(partner)
    assert caught.value.code == "platform_wide_lifecycle"
    with transaction(services.sessions) as session, pytest.raises(PermissionDenied):
        lifecycle.update_strategy(session, services.clock, partner, "new",
                                  StrategyIn(action="push"))


def test_cli_refresh_snapshot_and_transitions(town: Services) -> None:
    home = Path(town.settings.home)
    runner = CliRunner()
    # The CLI opens the event store itself: release this process's DuckDB handle first.
    close(town)
    done = runner.invoke(lifecycle_app, ["refresh", "--home", str(home), "--from",
                                         "2026-06-01", "--to", "2026-07-31"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout.strip().splitlines()[-1])["customers"] == 5
    snap = runner.invoke(lifecycle_app, ["snapshot", "--home", str(home), "--day", "2026-06-23"])
    assert snap.exit_code == 0, snap.output
    assert json.loads(snap.stdout.strip().splitlines()[-1])["counts"]["advocate"] == 1
    moves = runner.invoke(lifecycle_app, ["transitions", "--home", str(home), "--from",
                                          "2026-06-23", "--to", "2026-07-31"])
    assert moves.exit_code == 0, moves.output
    assert json.loads(moves.stdout.strip().splitlines()[-1])["matrix"][4][5] == 1
    whole = runner.invoke(lifecycle_app, ["refresh", "--home", str(home)])
    assert whole.exit_code == 0, whole.output
    report = json.loads(whole.stdout.strip().splitlines()[-1])
    assert (report["first_day"], report["last_day"]) == ("2026-06-02", "2026-07-01")
    bad = runner.invoke(lifecycle_app, ["snapshot", "--home", str(home), "--day", "soon"])
    assert bad.exit_code == 1
    assert "day" in bad.output
