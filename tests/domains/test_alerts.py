"""Alert rules, their evaluation over stored metric values, the alert history, over HTTP
and on SQLite and PostgreSQL (concurrent evaluations)."""

from __future__ import annotations

import json
import random
import statistics
import threading
import time as clock_time
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from conftest import bearer, make_key
from shequ.analytics.metric_values import Grain, MetricValue, write_values
from shequ.analytics.metrics import refresh
from shequ.core.audit import AuditEntry
from shequ.core.clock import FixedClock
from shequ.core.db import transaction
from shequ.core.errors import Conflict, PermissionDenied, ValidationFailed
from shequ.core.permissions import CLI_PRINCIPAL, PERMISSIONS, ROLE_PERMISSIONS, Principal, Role
from shequ.core.web import Services
from shequ.domains.alerts import service
from shequ.domains.alerts.models import Alert, Notification
from shequ.domains.alerts.schemas import RuleIn, RulePatch
from shequ.domains.events import service as events
from shequ.entrypoints.worker import build_queue

Headers = dict[str, str]
SHANGHAI = ZoneInfo("Asia/Shanghai")
DROP_DAY = date(2026, 10, 26)  # a Monday
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(), SHANGHAI).astimezone(UTC)


def local_day(instant: str) -> str:
    return datetime.fromisoformat(instant).astimezone(SHANGHAI).date().isoformat()


def put(services: Services, grain: Grain, values: Mapping[tuple[str, datetime], float | None]
        ) -> None:
    """Store metric values; every value of ``grain`` in the covered span is replaced."""
    starts = [bucket for _metric, bucket in values]
    rows = [MetricValue(metric, grain, bucket, value) for (metric, bucket), value in values.items()]
    write_values(events.event_store(services), grain, min(starts),
                 max(starts) + timedelta(seconds=1), rows, computed_at=services.clock.now())


def stable_days(first: date, last: date, level: float = 0.79, noise: float = 0.01,
                seed: int = 5) -> dict[date, float]:
    rng = random.Random(seed)
    return {first + i * DAY: level + rng.gauss(0, noise)
            for i in range((last - first).days + 1)}


def rule(services: Services, **fields: Any) -> int:
    fields.setdefault("name", f"rule-{uuid.uuid4().hex[:6]}")
    fields.setdefault("metric", "payment_rate")
    with transaction(services.sessions, actor="test") as session:
        return service.create_rule(session, services, CLI_PRINCIPAL, RuleIn(**fields)).id


def alerts_of(services: Services) -> list[Alert]:
    with transaction(services.sessions) as session:
        return list(session.scalars(select(Alert).order_by(Alert.bucket_start)))


def deliveries(services: Services) -> list[Notification]:
    with transaction(services.sessions) as session:
        return list(session.scalars(select(Notification).order_by(Notification.id)))


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def payload(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """A real HTTP server on 127.0.0.1 recording webhook POSTs. It answers the statuses
    queued in ``statuses`` in turn, then 200; ``delay`` holds each answer back."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.statuses: list[int] = []
        self.delay = 0.0
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with lock:
                    outer.requests.append(Received(
                        {k.lower(): v for k, v in self.headers.items()}, body))
                    status = outer.statuses.pop(0) if outer.statuses else 200
                clock_time.sleep(outer.delay)
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/hook?token=abc"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def reference_level(history: list[float], value: float, thresholds: Mapping[str, float],
                    direction: str) -> tuple[str | None, float]:
    """Brute-force robust z and level, written out independently of the service."""
    med = statistics.median(history)
    mad = statistics.median([abs(x - med) for x in history])
    spread = max(1.4826 * mad, 0.01 * abs(med), 1e-6)
    z = (value - med) / spread
    measure = -z if direction == "below" else z if direction == "above" else abs(z)
    level = None
    for name in ("yellow", "orange", "red"):
        if measure >= thresholds[name]:
            level = name
    return level, z


@pytest.fixture(name="receiver")
def receiver_fixture() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture(name="fast_retries")
def fast_retries_fixture(monkeypatch: pytest.MonkeyPatch) -> None:
    from shequ.domains.alerts import notify

    monkeypatch.setattr(notify, "BACKOFF_SECONDS", 0.01)


# --- evaluation ---------------------------------------------------------------------------

def test_baseline_rule_turns_red_on_the_payment_drop(services: Services) -> None:
    days = stable_days(DROP_DAY - 35 * DAY, DROP_DAY + 2 * DAY)
    days[DROP_DAY] = 0.32
    put(services, "day", {("payment_rate", day_start(d)): v for d, v in days.items()})
    rule_id = rule(services, name="支付转化率下跌")
    report = service.evaluate(services, "day", day_start(DROP_DAY - 6 * DAY),
                              day_start(DROP_DAY + 2 * DAY))
    assert (report.buckets, report.rules, report.skipped) == (9, 1, [])
    expected = {}
    for d in (DROP_DAY + i * DAY for i in range(-6, 3)):
        history = [days[d - w * 7 * DAY] for w in range(1, 5)]
        level, z = reference_level(history, days[d], service.DEFAULT_Z, "below")
        if level is not None:
            expected[day_start(d)] = (level, z, statistics.median(history))
    found = {a.bucket_start: (a.level, a.score, a.baseline) for a in alerts_of(services)}
    assert found.keys() == expected.keys()
    assert found[day_start(DROP_DAY)][0] == "red"
    for bucket, (level, z, median) in expected.items():
        assert found[bucket][0] == level
        assert found[bucket][1] == pytest.approx(z)
        assert found[bucket][2] == pytest.approx(median)
    drop = next(a for a in alerts_of(services) if a.bucket_start == day_start(DROP_DAY))
    assert (drop.rule_id, drop.value, drop.threshold, drop.state) == (rule_id, 0.32, 4.0, "open")
    assert drop.baseline_points == 4
    assert report.raised == len(expected)


def test_fixed_thresholds_and_directions(services: Services) -> None:
    first = DROP_DAY
    pay = [0.75, 0.70, 0.65, 0.60, 0.55, 0.50, 0.49]
    bounce = [0.30, 0.40, 0.45, 0.50, 0.61, 0.90, 0.20]
    values: dict[tuple[str, datetime], float | None] = {}
    for i, (p, b) in enumerate(zip(pay, bounce, strict=True)):
        values[("payment_rate", day_start(first + i * DAY))] = p
        values[("bounce_rate", day_start(first + i * DAY))] = b
    put(services, "day", values)
    low = rule(services, mode="fixed", yellow=0.7, orange=0.6, red=0.5)
    high = rule(services, metric="bounce_rate", mode="fixed", yellow=0.4, orange=0.5, red=0.6)
    service.evaluate(services, "day", day_start(first), day_start(first + 6 * DAY))
    levels = {(a.rule_id, a.bucket_start): a.level for a in alerts_of(services)}
    assert {i: levels.get((low, day_start(first + i * DAY))) for i in range(7)} == {
        0: None, 1: "yellow", 2: "yellow", 3: "orange", 4: "orange", 5: "red", 6: "red"}
    assert {i: levels.get((high, day_start(first + i * DAY))) for i in range(7)} == {
        0: None, 1: "yellow", 2: "yellow", 3: "orange", 4: "red", 5: "red", 6: None}
    with transaction(services.sessions) as session:
        directions = {r.metric: r.direction for r in service.list_rules(session, CLI_PRINCIPAL)}
    assert directions == {"payment_rate": "below", "bounce_rate": "above"}


def test_hourly_baseline_compares_the_same_weekday_and_hour(services: Services) -> None:
    target = day_start(DROP_DAY) + 14 * HOUR  # Monday 22:00 in Shanghai
    values: dict[tuple[str, datetime], float | None] = {}
    for week in range(1, 5):
        values[("visitors", target - week * 7 * DAY)] = 100.0 + week
        values[("visitors", target - week * 7 * DAY + HOUR)] = 5.0  # other hours: quiet
    values[("visitors", target)] = 40.0
    values[("visitors", target + HOUR)] = 40.0
    put(services, "hour", values)
    rule(services, metric="visitors", grain="hour")
    report = service.evaluate(services, "hour", target, target + HOUR)
    assert report.skipped == []
    (alert,) = alerts_of(services)
    level, z = reference_level([101.0, 102.0, 103.0, 104.0], 40.0, service.DEFAULT_Z, "below")
    assert (alert.bucket_start, alert.level, alert.baseline) == (target, level, 102.5)
    assert alert.score == pytest.approx(z)


def test_comparable_buckets_follow_the_wall_clock_across_dst() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    bucket = datetime(2026, 11, 2, 9, 0, tzinfo=berlin).astimezone(UTC)  # after DST ended
    previous = service.comparable_buckets("hour", bucket, 2, berlin)
    assert [b.astimezone(berlin).strftime("%a %H:%M") for b in previous] == ["Mon 09:00"] * 2
    assert bucket - previous[0] == 7 * DAY  # 26 Oct: after the change on 25 Oct too
    assert previous[0] - previous[1] == 7 * DAY + HOUR  # this week spans the change
    spring = datetime(2026, 4, 1, 9, 0, tzinfo=berlin).astimezone(UTC)
    before = service.comparable_buckets("hour", spring, 1, berlin)[0]
    assert spring - before == 7 * DAY - HOUR  # 29 March: one wall-clock hour shorter
    days = service.comparable_buckets("day", day_start(DROP_DAY), 3, SHANGHAI)
    assert days == [day_start(DROP_DAY - w * 7 * DAY) for w in (1, 2, 3)]


def test_too_little_history_and_missing_values_are_skipped(services: Services) -> None:
    days = stable_days(DROP_DAY - 14 * DAY, DROP_DAY)
    days[DROP_DAY] = 0.2
    values: dict[tuple[str, datetime], float | None] = {
        ("payment_rate", day_start(d)): v for d, v in days.items()}
    values[("payment_rate", day_start(DROP_DAY + DAY))] = None  # a rate over zero checkouts
    put(services, "day", values)
    rule_id = rule(services)  # four weeks, at least three comparable days
    fixed = rule(services, mode="fixed", yellow=0.5, orange=0.4, red=0.3)
    report = service.evaluate(services, "day", day_start(DROP_DAY), day_start(DROP_DAY + DAY))
    reasons = {(s.rule_id, s.bucket_start, s.reason) for s in report.skipped}
    assert reasons == {(rule_id, day_start(DROP_DAY), "insufficient_baseline"),
                       (rule_id, day_start(DROP_DAY + DAY), "no_value"),
                       (fixed, day_start(DROP_DAY + DAY), "no_value")}
    (alert,) = alerts_of(services)  # a fixed rule needs no baseline
    assert (alert.rule_id, alert.level, alert.baseline, alert.score) == (fixed, "red", None, None)
    rule(services, name="two weeks", baseline_weeks=2)
    again = service.evaluate(services, "day", day_start(DROP_DAY), day_start(DROP_DAY))
    assert again.raised == 1


def test_disabled_and_other_grain_rules_are_not_evaluated(services: Services) -> None:
    put(services, "day", {("payment_rate", day_start(DROP_DAY)): 0.1})
    rule(services, mode="fixed", yellow=0.5, orange=0.4, red=0.3, enabled=False)
    rule(services, mode="fixed", yellow=0.5, orange=0.4, red=0.3, grain="hour")
    report = service.evaluate(services, "day", day_start(DROP_DAY), day_start(DROP_DAY))
    assert (report.rules, report.raised, alerts_of(services)) == (0, 0, [])


def test_reevaluation_updates_escalates_clears_and_reopens(services: Services,
                                                           receiver: Receiver) -> None:
    bucket = day_start(DROP_DAY)
    rule(services, mode="fixed", yellow=0.7, orange=0.6, red=0.5, webhook_url=receiver.url)

    def judge(value: float) -> None:
        put(services, "day", {("payment_rate", bucket): value})
        service.evaluate(services, "day", bucket, bucket)

    judge(0.65)
    judge(0.66)
    (alert,) = alerts_of(services)
    assert (alert.level, alert.value, alert.notified_level) == ("yellow", 0.66, "yellow")
    assert [r.payload["alert"]["level"] for r in receiver.requests] == ["yellow"]
    judge(0.45)
    judge(0.68)  # milder again: updated, not notified
    (alert,) = alerts_of(services)
    assert (alert.level, alert.notified_level, alert.state) == ("yellow", "red", "open")
    assert [r.payload["alert"]["level"] for r in receiver.requests] == ["yellow", "red"]
    assert [(d.level, d.status) for d in deliveries(services)] == [("yellow", "sent"),
                                                                   ("red", "sent")]
    judge(0.75)
    (alert,) = alerts_of(services)
    assert (alert.state, alert.resolved_by, alert.value) == ("resolved", "evaluation", 0.75)
    judge(0.55)
    (alert,) = alerts_of(services)
    assert (alert.state, alert.level, alert.resolved_at) == ("open", "orange", None)
    assert len(receiver.requests) == 2  # orange is below the red already notified


def test_resolved_by_a_person_stays_resolved(services: Services, receiver: Receiver) -> None:
    bucket = day_start(DROP_DAY)
    rule(services, mode="fixed", yellow=0.7, orange=0.6, red=0.5, webhook_url=receiver.url)
    put(services, "day", {("payment_rate", bucket): 0.65})
    service.evaluate(services, "day", bucket, bucket)
    (alert,) = alerts_of(services)
    with transaction(services.sessions, actor="test") as session:
        service.resolve_alert(session, services.clock, CLI_PRINCIPAL, alert.id, "补单后恢复")
    put(services, "day", {("payment_rate", bucket): 0.4})
    service.evaluate(services, "day", bucket, bucket)
    (alert,) = alerts_of(services)
    assert (alert.state, alert.level, alert.resolved_by, alert.note) == (
        "resolved", "red", "cli", "补单后恢复")
    assert len(receiver.requests) == 1


def test_evaluation_input_is_checked(services: Services) -> None:
    start = day_start(DROP_DAY)
    cases = [
        ("hour", start + timedelta(minutes=30), start + HOUR, "bucket_not_aligned",
         "bucket_start_from"),
        ("day", start, start + HOUR, "bucket_not_aligned", "bucket_start_to"),
        ("day", start, start - DAY, "bad_bucket_range", "bucket_start_to"),
        ("day", start, start + 400 * DAY, "bucket_range_too_long", "bucket_start_to"),
        ("hour", start.replace(tzinfo=None), start, "naive_bucket_start", "bucket_start_from"),
        ("week", start, start, "unknown_grain", "grain"),
    ]
    for grain, first, last, code, attr in cases:
        with pytest.raises(ValidationFailed) as caught:
            service.evaluate(services, grain, first, last)  # type: ignore[arg-type]
        assert (caught.value.code, caught.value.attr) == (code, attr)


def test_scheduled_run_judges_the_last_hour_and_yesterday(services: Services,
                                                          clock: FixedClock) -> None:
    # The clock reads 2026-11-20 16:00 in Shanghai (08:00 UTC).
    last_hour = clock.now() - HOUR
    yesterday = day_start(date(2026, 11, 19))
    put(services, "hour", {("payment_rate", last_hour): 0.1,
                           ("payment_rate", last_hour - HOUR): 0.1})
    put(services, "day", {("payment_rate", yesterday): 0.1,
                          ("payment_rate", yesterday - DAY): 0.1})
    rule(services, grain="hour", mode="fixed", yellow=0.5, orange=0.4, red=0.3)
    rule(services, grain="day", mode="fixed", yellow=0.5, orange=0.4, red=0.3)
    reports = service.evaluate_due(services)
    assert [(r.grain, r.buckets, r.raised) for r in reports] == [("hour", 1, 1), ("day", 1, 1)]
    assert [(a.grain, a.bucket_start) for a in alerts_of(services)] == [
        ("day", yesterday), ("hour", last_hour)]
    queue = build_queue(services, f"sqlite:///{services.settings.home}/queue.db",
                        name=f"alerts-{uuid.uuid4().hex[:8]}")
    due = queue.huey.read_periodic(datetime(2026, 11, 20, 3, 15))
    assert [t.name for t in due] == ["evaluate_alerts"]
    assert queue.evaluate_alerts.call_local() == 0  # the same buckets again: nothing new
    assert len(alerts_of(services)) == 2


# --- maths --------------------------------------------------------------------------------

def test_flat_history_uses_the_spread_floor() -> None:
    flat = service.baseline_of([0.8, 0.8, 0.8, 0.81])
    assert flat is not None
    assert (flat.median, flat.spread, flat.points) == (0.8, pytest.approx(0.008), 4)
    zeros = service.baseline_of([0.0, 0.0, 0.0])
    assert zeros is not None
    assert zeros.spread == 1e-6
    assert service.baseline_of([]) is None
    verdict = service.judge("baseline", "both", service.DEFAULT_Z, 0.8 + 0.025, flat)
    assert (verdict.level, verdict.threshold) == ("orange", 3.0)
    assert verdict.score == pytest.approx(0.025 / 0.008)


@settings(max_examples=200, deadline=None)
@given(history=st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=12),
       base=st.floats(-1e6, 1e6), step=st.floats(0, 1e6), direction=st.sampled_from(
           ["below", "above", "both"]))
def test_a_larger_deviation_never_lowers_the_level(history: list[float], base: float,
                                                    step: float, direction: str) -> None:
    baseline = service.baseline_of(history)
    assert baseline is not None
    rank = {None: 0, "yellow": 1, "orange": 2, "red": 3}
    sign = -1 if direction == "below" else 1
    near = baseline.median + sign * abs(base - baseline.median)
    far = near + sign * step
    level_near = service.judge("baseline", direction, service.DEFAULT_Z, near, baseline).level
    level_far = service.judge("baseline", direction, service.DEFAULT_Z, far, baseline).level
    assert rank[level_far] >= rank[level_near]
    expected, _z = reference_level(history, near, service.DEFAULT_Z, direction)
    assert level_near == expected


# --- rules --------------------------------------------------------------------------------

BAD_RULES: list[tuple[dict[str, Any], str, str]] = [
    ({"metric": "nope"}, "unknown_metric", "metric"),
    ({"mode": "fixed", "yellow": 0.7, "orange": 0.6}, "threshold_required", "red"),
    ({"mode": "fixed", "yellow": 0.6, "orange": 0.7, "red": 0.5}, "thresholds_out_of_order",
     "orange"),
    ({"mode": "fixed", "direction": "above", "yellow": 0.4, "orange": 0.5, "red": 0.5},
     "thresholds_out_of_order", "red"),
    ({"yellow": 3, "orange": 2}, "thresholds_out_of_order", "orange"),
    ({"red": 2.5}, "thresholds_out_of_order", "red"),  # orange keeps its default 3
    ({"yellow": 0}, "threshold_not_positive", "yellow"),
    ({"mode": "fixed", "direction": "both", "yellow": 1, "orange": 2, "red": 3},
     "fixed_rule_one_direction", "direction"),
    ({"baseline_weeks": 13}, "baseline_weeks_out_of_range", "baseline_weeks"),
    ({"baseline_weeks": 1}, "baseline_weeks_out_of_range", "baseline_weeks"),
    ({"baseline_weeks": 4, "min_baseline_points": 5}, "min_points_out_of_range",
     "min_baseline_points"),
    ({"min_baseline_points": 1}, "min_points_out_of_range", "min_baseline_points"),
    ({"webhook_url": "ftp://example.com/hook"}, "bad_webhook_url", "webhook_url"),
    ({"webhook_url": "https:///no-host"}, "bad_webhook_url", "webhook_url"),
    ({"webhook_url": "https://例子.cn/hook"}, "bad_webhook_url", "webhook_url"),
    ({"emails": ["ops@example.com", "not-an-address"]}, "bad_email", "emails.1"),
    ({"emails": ["ops@example.com"]}, "email_disabled", "emails"),
]


@pytest.mark.parametrize(("fields", "code", "attr"), BAD_RULES)
def test_bad_rules_name_the_field(client: TestClient, admin_headers: Headers,
                                  fields: dict[str, Any], code: str, attr: str) -> None:
    body = {"name": "r", "metric": "payment_rate", **fields}
    r = client.post("/api/v1/alerts/rules", json=body, headers=admin_headers)
    assert r.status_code == 422, r.text
    assert (r.json()["code"], r.json()["attr"]) == (code, attr)
    assert client.get("/api/v1/alerts/rules", headers=admin_headers).json() == []


def test_schema_errors_name_the_field(client: TestClient, admin_headers: Headers) -> None:
    for body, attr in (({"name": "r", "metric": "payment_rate", "colour": "red"}, "colour"),
                       ({"name": "r", "metric": "payment_rate", "grain": "week"}, "grain"),
                       ({"name": "", "metric": "payment_rate"}, "name")):
        r = client.post("/api/v1/alerts/rules", json=body, headers=admin_headers)
        assert (r.status_code, r.json()["attr"]) == (422, attr)
    rule_id = client.post("/api/v1/alerts/rules", json={"name": "r", "metric": "payment_rate"},
                          headers=admin_headers).json()["id"]
    r = client.patch(f"/api/v1/alerts/rules/{rule_id}", json={"name": None},
                     headers=admin_headers)
    assert (r.status_code, r.json()["code"], r.json()["attr"]) == (422, "invalid_rule", "name")


def test_rule_defaults_and_patch_semantics(services: Services) -> None:
    with transaction(services.sessions, actor="test") as session:
        made = service.create_rule(session, services, CLI_PRINCIPAL,
                                   RuleIn(name="x", metric="payment_rate", baseline_weeks=2))
    assert (made.mode, made.direction, made.grain) == ("baseline", "below", "day")
    assert (made.yellow, made.orange, made.red, made.min_baseline_points) == (2, 3, 4, 2)

    def patch(**fields: Any) -> Any:
        with transaction(services.sessions, actor="test") as session:
            return service.update_rule(session, services, CLI_PRINCIPAL, made.id,
                                       RulePatch(**fields))

    moved = patch(metric="bounce_rate")
    assert moved.direction == "above"  # follows the new metric
    assert patch(metric="payment_rate", direction="both").direction == "both"
    with pytest.raises(ValidationFailed) as caught:
        patch(mode="fixed")
    assert (caught.value.code, caught.value.attr) == ("fixed_rule_one_direction", "direction")
    with pytest.raises(ValidationFailed) as caught:
        patch(mode="fixed", direction="below")
    assert (caught.value.code, caught.value.attr) == ("threshold_required", "yellow")
    fixed = patch(mode="fixed", direction="below", yellow=0.7, orange=0.6, red=0.5)
    assert (fixed.mode, fixed.red) == ("fixed", 0.5)
    back = patch(mode="baseline")
    assert (back.yellow, back.orange, back.red) == (2, 3, 4)
    assert patch(enabled=False).enabled is False


def test_rule_names_are_unique(services: Services) -> None:
    rule(services, name="同名")
    other = rule(services, name="其他")
    with pytest.raises(Conflict) as caught:
        rule(services, name="同名")
    assert (caught.value.code, caught.value.attr) == ("rule_name_taken", "name")
    with (pytest.raises(Conflict) as caught,
          transaction(services.sessions, actor="test") as session):
        service.update_rule(session, services, CLI_PRINCIPAL, other, RulePatch(name="同名"))
    assert caught.value.code == "rule_name_taken"


# --- the alert history --------------------------------------------------------------------

@pytest.fixture
def one_alert(services: Services) -> int:
    put(services, "day", {("payment_rate", day_start(DROP_DAY)): 0.2})
    rule(services, mode="fixed", yellow=0.7, orange=0.6, red=0.5)
    service.evaluate(services, "day", day_start(DROP_DAY), day_start(DROP_DAY))
    (alert,) = alerts_of(services)
    return alert.id


@pytest.mark.parametrize(("path", "final"), [
    (["acknowledge", "acknowledge", "resolve", "resolve"], "resolved"),
    (["resolve"], "resolved"),
    (["acknowledge"], "acknowledged"),
])
def test_state_machine(client: TestClient, admin_headers: Headers, clock: FixedClock,
                       one_alert: int, path: list[str], final: str) -> None:
    stamps = []
    for step in path:
        clock.advance(timedelta(minutes=5))
        r = client.post(f"/api/v1/alerts/{one_alert}/{step}", json={"note": f"{step} 备注"},
                        headers=admin_headers)
        assert r.status_code == 200, r.text
        stamps.append((r.json()["acknowledged_at"], r.json()["resolved_at"]))
    got = client.get(f"/api/v1/alerts/{one_alert}", headers=admin_headers).json()
    assert got["state"] == final
    if "acknowledge" in path:
        assert got["acknowledged_at"] == stamps[0][0] is not None  # the first stamp is kept
        assert got["acknowledged_by"].startswith("apikey:")
    if final == "resolved":
        assert got["resolved_by"].startswith("apikey:")
        assert got["note"] == "resolve 备注"


def test_illegal_transitions(client: TestClient, services: Services, admin_headers: Headers,
                             one_alert: int) -> None:
    assert client.post(f"/api/v1/alerts/{one_alert}/resolve",
                       headers=admin_headers).status_code == 200
    r = client.post(f"/api/v1/alerts/{one_alert}/acknowledge", headers=admin_headers)
    assert r.status_code == 409
    assert (r.json()["code"], r.json()["attr"]) == ("illegal_transition", "state")
    assert "resolved" in r.json()["detail"]
    missing = client.post("/api/v1/alerts/9999/acknowledge", headers=admin_headers)
    assert (missing.status_code, missing.json()["code"]) == (404, "alert_not_found")
    with transaction(services.sessions) as session:
        audited = session.execute(select(AuditEntry.actor, AuditEntry.before, AuditEntry.after)
                                  .where(AuditEntry.entity == "alerts")).tuples().all()
    ((actor, before, after),) = audited  # the evaluation is not audited; the resolve is
    assert actor.startswith("apikey:")
    assert (before["state"], after["state"], after["resolved_by"]) == ("open", "resolved",
                                                                        actor)


def test_alert_list_filters(client: TestClient, services: Services, admin_headers: Headers
                            ) -> None:
    first = DROP_DAY
    put(services, "day", {("payment_rate", day_start(first)): 0.65,
                          ("payment_rate", day_start(first + DAY)): 0.45,
                          ("bounce_rate", day_start(first)): 0.9,
                          ("bounce_rate", day_start(first + DAY)): 0.9})
    rule(services, name="pay", mode="fixed", yellow=0.7, orange=0.6, red=0.5)
    rule(services, name="bounce", metric="bounce_rate", mode="fixed", yellow=0.4, orange=0.5,
         red=0.6)
    service.evaluate(services, "day", day_start(first), day_start(first + DAY))

    def listed(**params: Any) -> list[tuple[str, str, str]]:
        r = client.get("/api/v1/alerts", params=params, headers=admin_headers)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["total"] == len(body["items"]) or "limit" in params
        return [(a["rule_name"], local_day(a["bucket_start"]), a["level"])
                for a in body["items"]]

    assert len(listed()) == 4
    assert listed(metric="payment_rate") == [("pay", "2026-10-27", "red"),
                                             ("pay", "2026-10-26", "yellow")]
    assert listed(level="red", date_from="2026-10-27") == [("bounce", "2026-10-27", "red"),
                                                           ("pay", "2026-10-27", "red")]
    assert listed(date_to="2026-10-26") == [("bounce", "2026-10-26", "red"),
                                            ("pay", "2026-10-26", "yellow")]
    alert_id = client.get("/api/v1/alerts", params={"level": "yellow"},
                          headers=admin_headers).json()["items"][0]["id"]
    client.post(f"/api/v1/alerts/{alert_id}/acknowledge", headers=admin_headers)
    assert listed(state="acknowledged") == [("pay", "2026-10-26", "yellow")]
    assert listed(state="open", limit=1) == [("bounce", "2026-10-27", "red")]
    page = client.get("/api/v1/alerts", params={"limit": 1, "offset": 1},
                      headers=admin_headers).json()
    assert (page["total"], len(page["items"])) == (4, 1)
    bad = client.get("/api/v1/alerts", params={"date_from": "2026-10-27",
                                               "date_to": "2026-10-26"}, headers=admin_headers)
    assert (bad.status_code, bad.json()["code"], bad.json()["attr"]) == (
        422, "bad_date_range", "date_to")


# --- HTTP, permissions, audit -------------------------------------------------------------

def test_api_round_trip(client: TestClient, services: Services, admin_headers: Headers,
                        receiver: Receiver) -> None:
    body = {"name": "支付转化率红线", "metric": "payment_rate", "mode": "fixed",
            "yellow": 0.7, "orange": 0.6, "red": 0.5, "webhook_url": receiver.url}
    created = client.post("/api/v1/alerts/rules", json=body, headers=admin_headers)
    assert created.status_code == 201, created.text
    rule_out = created.json()
    assert (rule_out["direction"], rule_out["emails"], rule_out["enabled"]) == ("below", [],
                                                                                True)
    rule_id = rule_out["id"]
    again = client.post("/api/v1/alerts/rules", json=body, headers=admin_headers)
    assert (again.status_code, again.json()["code"]) == (409, "rule_name_taken")
    assert client.get(f"/api/v1/alerts/rules/{rule_id}", headers=admin_headers).json() == \
        rule_out
    patched = client.patch(f"/api/v1/alerts/rules/{rule_id}", json={"red": 0.45},
                           headers=admin_headers)
    assert (patched.status_code, patched.json()["red"]) == (200, 0.45)
    assert [r["name"] for r in client.get("/api/v1/alerts/rules", params={
        "metric": "payment_rate", "grain": "day"}, headers=admin_headers).json()] == [
        "支付转化率红线"]
    assert client.get("/api/v1/alerts/rules", params={"grain": "hour"},
                      headers=admin_headers).json() == []

    put(services, "day", {("payment_rate", day_start(DROP_DAY)): 0.4})
    service.evaluate(services, "day", day_start(DROP_DAY), day_start(DROP_DAY))
    (listed,) = client.get("/api/v1/alerts", headers=admin_headers).json()["items"]
    detail = client.get(f"/api/v1/alerts/{listed['id']}", headers=admin_headers).json()
    assert detail["link"] == f"/console/alerts/{listed['id']}"
    assert [(n["channel"], n["status"], n["attempts"], n["target"])
            for n in detail["notifications"]] == [("webhook", "sent", 1, receiver.url)]
    blocked = client.delete(f"/api/v1/alerts/rules/{rule_id}", headers=admin_headers)
    assert (blocked.status_code, blocked.json()["code"]) == (409, "rule_has_alerts")
    for change, attr in (({"metric": "visitors"}, "metric"), ({"grain": "hour"}, "grain")):
        fixed = client.patch(f"/api/v1/alerts/rules/{rule_id}", json=change,
                             headers=admin_headers)
        assert (fixed.status_code, fixed.json()["code"], fixed.json()["attr"]) == (
            409, "rule_has_alerts", attr)
    assert client.patch(f"/api/v1/alerts/rules/{rule_id}", json={"enabled": False},
                        headers=admin_headers).json()["enabled"] is False

    spare = client.post("/api/v1/alerts/rules", json={"name": "spare", "metric": "visitors"},
                        headers=admin_headers).json()["id"]
    assert client.delete(f"/api/v1/alerts/rules/{spare}",
                         headers=admin_headers).status_code == 204
    assert client.get(f"/api/v1/alerts/rules/{spare}", headers=admin_headers).status_code == 404

    with transaction(services.sessions) as session:
        audited = session.execute(select(AuditEntry.entity, AuditEntry.action, AuditEntry.after)
                                  .where(AuditEntry.entity == "alert_rules")
                                  .order_by(AuditEntry.id)).tuples().all()
    assert [(e, a) for e, a, _ in audited] == [
        ("alert_rules", "create"), ("alert_rules", "update"), ("alert_rules", "update"),
        ("alert_rules", "create"), ("alert_rules", "delete")]
    assert audited[0][2]["webhook_url"] == "***"  # robot URLs carry tokens
    assert audited[1][2] == {"red": 0.45}  # the clock stands still: updated_at unchanged


def test_roles_and_partners(client: TestClient, services: Services, one_alert: int) -> None:
    analyst = bearer(make_key(services, sorted(ROLE_PERMISSIONS[Role.ANALYST])))
    operator = bearer(make_key(services, sorted(ROLE_PERMISSIONS[Role.OPERATOR])))
    partner = bearer(make_key(services, sorted(ROLE_PERMISSIONS[Role.PARTNER]), brand_ids=[1]))
    body = {"name": "op", "metric": "visitors"}
    assert client.get("/api/v1/alerts", headers=analyst).status_code == 200
    assert client.get("/api/v1/alerts/rules", headers=analyst).status_code == 200
    assert client.post("/api/v1/alerts/rules", json=body, headers=analyst).status_code == 403
    assert client.post(f"/api/v1/alerts/{one_alert}/acknowledge",
                       headers=analyst).status_code == 403
    assert client.post("/api/v1/alerts/rules", json=body, headers=operator).status_code == 201
    assert client.post(f"/api/v1/alerts/{one_alert}/acknowledge",
                       headers=operator).status_code == 200
    for path in ("/api/v1/alerts", "/api/v1/alerts/rules", f"/api/v1/alerts/{one_alert}"):
        assert client.get(path, headers=partner).status_code == 403
    assert not ({"alerts:read", "alerts:write"} & (ROLE_PERMISSIONS[Role.MODERATOR]
                                                  | ROLE_PERMISSIONS[Role.PARTNER]))
    with pytest.raises(ValidationFailed):  # a partner key cannot even be given the scope
        make_key(services, ["alerts:read"], brand_ids=[1])
    branded = Principal(kind="user", id=9, name="p", permissions=PERMISSIONS,
                        brand_ids=frozenset({1}))
    with transaction(services.sessions) as session, pytest.raises(PermissionDenied) as caught:
        service.list_alerts(session, branded, SHANGHAI)
    assert caught.value.code == "platform_wide_alerts"


# --- concurrency on PostgreSQL ------------------------------------------------------------

@pytest.mark.postgres
def test_concurrent_evaluations_raise_and_notify_once(pg_services: Services,
                                                      receiver: Receiver) -> None:
    days = stable_days(DROP_DAY - 35 * DAY, DROP_DAY)
    days[DROP_DAY] = 0.32
    put(pg_services, "day", {("payment_rate", day_start(d)): v for d, v in days.items()})
    rule(pg_services, webhook_url=receiver.url)
    bucket = day_start(DROP_DAY)
    for threads in (2, 6):
        start = threading.Barrier(threads)

        def run(barrier: threading.Barrier) -> int:
            barrier.wait()
            return service.evaluate(pg_services, "day", bucket, bucket).raised

        with ThreadPoolExecutor(max_workers=threads) as pool:
            raised = list(pool.map(run, [start] * threads))
        assert sum(raised) == (1 if threads == 2 else 0)
    with transaction(pg_services.sessions) as session:
        assert session.scalar(select(func.count()).select_from(Alert)) == 1
        assert session.scalar(select(func.count()).select_from(Notification)) == 1
    assert [(d.status, d.attempts) for d in deliveries(pg_services)] == [("sent", 1)]
    assert len(receiver.requests) == 1
    assert receiver.requests[0].payload["alert"]["level"] == "red"


# --- with the real metrics ----------------------------------------------------------------

def test_alerts_on_metrics_computed_from_events(services: Services, receiver: Receiver
                                                ) -> None:
    rows = []
    for day, paid in ((DROP_DAY - DAY, 4), (DROP_DAY, 1)):  # 4 checkouts a day
        noon = datetime.combine(day, time(12), SHANGHAI).astimezone(UTC)
        for n in range(4):
            who = f"{day}-{n}"
            rows.append({"event_id": f"{who}-c", "name": "checkout", "ts": noon,
                         "customer_id": who, "session_id": who})
            if n < paid:
                rows.append({"event_id": f"{who}-p", "name": "payment", "ts": noon + HOUR,
                             "customer_id": who, "session_id": who})
    store = events.event_store(services)
    store.ingest_arrow(pa.Table.from_pylist(rows))
    assert refresh(store, DROP_DAY - DAY, DROP_DAY, "Asia/Shanghai", services.clock.now()) > 0
    rule(services, mode="fixed", yellow=0.7, orange=0.5, red=0.3, webhook_url=receiver.url)
    report = service.evaluate(services, "day", day_start(DROP_DAY - DAY), day_start(DROP_DAY))
    assert (report.raised, report.skipped) == (1, [])
    (alert,) = alerts_of(services)
    assert (alert.bucket_start, alert.value, alert.level) == (day_start(DROP_DAY), 0.25, "red")
    assert receiver.requests[0].payload["metric"]["label_zh"] == "支付转化率"
