"""The job queue on both storages: enqueue the rollup, run it, read its result."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta

import pyarrow as pa
import pytest

from conftest import REDIS_URL, T0
from shequ.core.web import Services
from shequ.domains.events import service as events
from shequ.entrypoints.worker import Queue, build_queue


def _redis_or_skip() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {exc}")


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def queue(request: pytest.FixtureRequest, services: Services) -> Iterator[Queue]:
    name = f"shequ-test-{uuid.uuid4().hex[:8]}"
    if request.param == "redis":
        _redis_or_skip()
        built = build_queue(services, REDIS_URL, name=name)
    else:
        built = build_queue(services, f"sqlite:///{services.settings.home}/queue.db", name=name)
    yield built
    built.huey.flush()


def _events(n_per_day: dict[date, int]) -> pa.Table:
    rows = []
    for day, n in n_per_day.items():
        at = datetime.combine(day, T0.timetz()) - timedelta(hours=2)
        rows += [{"event_id": f"{day}-{i}", "name": "page_view", "ts": at,
                  "customer_id": f"c{i % 3}", "session_id": "s"} for i in range(n)]
    return pa.Table.from_pylist(rows)


def test_rollup_job_runs_through_the_queue(queue: Queue, services: Services) -> None:
    store = events.event_store(services)
    store.ingest_arrow(_events({date(2026, 11, 18): 4, date(2026, 11, 19): 7}))
    result = queue.rollup_events("2026-11-18", "2026-11-19")
    assert len(queue.huey) == 1  # enqueued, not run in-line
    task = queue.huey.dequeue()
    assert task is not None
    queue.huey.execute(task)
    assert result.get() > 0
    daily = store.to_arrow(store.table("events_daily")).to_pylist()
    per_day = {row["day"]: row["events"] for row in daily}
    assert per_day == {date(2026, 11, 18): 4, date(2026, 11, 19): 7}
    assert {row["customers"] for row in daily} == {3}


def test_rollup_is_scheduled_hourly(queue: Queue) -> None:
    due = queue.huey.read_periodic(datetime(2026, 11, 20, 3, 10))
    assert [t.name for t in due] == ["daily_rollup"]
    assert queue.huey.read_periodic(datetime(2026, 11, 20, 3, 11)) == []


def test_metrics_refresh_is_scheduled_before_the_alerts(queue: Queue,
                                                        services: Services) -> None:
    assert [t.name for t in queue.huey.read_periodic(datetime(2026, 11, 20, 3, 5))] == [
        "refresh_metrics"]
    store = events.event_store(services)
    store.ingest_arrow(_events({date(2026, 11, 19): 5}))
    written = queue.refresh_metrics.call_local()
    # Yesterday's 24 hours and day are over at the clock (16:00 in Shanghai); today's
    # 16 ended hours too: 18 metrics each.
    assert written == (24 + 1 + 16) * 18
    from shequ.analytics.metric_values import read_values

    start = datetime(2026, 11, 18, 16, tzinfo=T0.tzinfo)
    visitors = read_values(store, ["visitors"], "day", start, start + timedelta(days=1))
    assert [v.value for v in visitors] == [3.0]


def test_customer_jobs_are_scheduled(queue: Queue) -> None:
    # Daily at 18:30 UTC (02:30 in Shanghai): membership, lifecycle, profiles, segments.
    assert [t.name for t in queue.huey.read_periodic(datetime(2026, 11, 20, 18, 30))] == [
        "refresh_customers"]
    assert queue.huey.read_periodic(datetime(2026, 11, 20, 17, 30)) == []
    assert [t.name for t in queue.huey.read_periodic(datetime(2026, 11, 20, 3, 25))] == [
        "refresh_segments"]


def test_customer_refresh_job_runs_on_an_empty_shop(queue: Queue, services: Services) -> None:
    from shequ.core.db import transaction
    from shequ.domains.insight.models import ProfileRun
    from shequ.domains.segments import service as segments

    store = events.event_store(services)
    store.ingest_arrow(_events({date(2026, 11, 19): 5}))
    assert queue.refresh_customers.call_local() == 0  # events but no orders: no buyers
    with transaction(services.sessions) as session:
        run = session.query(ProfileRun).one()
    assert run.as_of == date(2026, 11, 19)
    assert run.customers == 0
    assert queue.refresh_segments.call_local() == 0
    assert segments.refresh_due(services).refreshed == 0


def test_content_job_is_scheduled_daily_and_runs_on_an_empty_shop(queue: Queue) -> None:
    # Daily at 19:00 UTC (03:00 in Shanghai): post scores, then the KOC ladder.
    assert [t.name for t in queue.huey.read_periodic(datetime(2026, 11, 20, 19, 0))] == [
        "refresh_content"]
    assert queue.huey.read_periodic(datetime(2026, 11, 20, 19, 1)) == []
    assert queue.refresh_content.call_local() == 0  # no posts yet


def test_crisis_detection_runs_hourly_on_an_empty_shop(queue: Queue) -> None:
    assert [t.name for t in queue.huey.read_periodic(datetime(2026, 11, 20, 7, 35))] == [
        "detect_crises"]
    assert queue.detect_crises.call_local() == 0  # no reviews or posts: nothing opens


def test_points_expiry_runs_daily_on_an_empty_shop(queue: Queue) -> None:
    assert [t.name for t in queue.huey.read_periodic(datetime(2026, 11, 20, 16, 12))] == [
        "expire_points"]
    assert queue.expire_points.call_local() == 0  # no points yet: nothing expires


def test_group_expiry_runs_every_five_minutes_clear_of_the_hourly_jobs(queue: Queue) -> None:
    for minute in (3, 8, 33, 58):
        assert [t.name for t in queue.huey.read_periodic(
            datetime(2026, 11, 20, 8, minute))] == ["expire_groups"]
    for minute in (0, 5, 10, 12, 15, 20, 25, 30, 35):
        assert "expire_groups" not in [t.name for t in queue.huey.read_periodic(
            datetime(2026, 11, 20, 8, minute))]
    assert queue.expire_groups.call_local() == 0  # no groups yet: nothing closes


def test_commission_settlement_runs_daily_on_an_empty_shop(queue: Queue) -> None:
    assert [t.name for t in queue.huey.read_periodic(datetime(2026, 11, 20, 16, 20))] == [
        "settle_commissions"]
    assert queue.settle_commissions.call_local() == 0  # no commissions yet
