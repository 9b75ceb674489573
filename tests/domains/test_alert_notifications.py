"""Alert notifications against real receivers: a local HTTP server for the signed webhook
(retries on 5xx, retry on the next evaluation) and a local SMTP server for e-mail."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import update
from test_alerts import (  # the two fixtures are used by name: fast_retries, receiver
    DROP_DAY,
    Receiver,
    day_start,
    deliveries,
    fast_retries_fixture,  # noqa: F401
    put,
    receiver_fixture,  # noqa: F401
    rule,
    stable_days,
)

from shequ.analytics.metrics import METRICS
from shequ.core.clock import FixedClock
from shequ.core.db import transaction
from shequ.core.web import Services
from shequ.domains.alerts import notify, service
from shequ.domains.alerts.models import Notification
from shequ.domains.alerts.schemas import EvaluationReport
from smtp_sink import Mailbox, free_port, smtp_server

BUCKET = day_start(DROP_DAY)


def payment_drop(services: Services) -> None:
    """Five weeks of a steady payment rate around 0.79, then 0.32 on the drop day."""
    days = stable_days(DROP_DAY - 35 * timedelta(days=1), DROP_DAY)
    days[DROP_DAY] = 0.32
    put(services, "day", {("payment_rate", day_start(d)): v for d, v in days.items()})


def evaluate(services: Services) -> EvaluationReport:
    return service.evaluate(services, "day", BUCKET, BUCKET)


# --- webhook --------------------------------------------------------------------------------

def test_webhook_is_signed_and_carries_the_alert(services: Services, receiver: Receiver
                                                 ) -> None:
    payment_drop(services)
    rule_id = rule(services, name="支付转化率下跌", webhook_url=receiver.url)
    report = evaluate(services)
    assert (report.raised, report.delivery.sent, report.delivery.failed) == (1, 1, 0)
    (got,) = receiver.requests
    expected = "sha256=" + hmac.new(services.settings.secret_key.encode(), got.body,
                                    hashlib.sha256).hexdigest()
    assert got.headers["x-shequ-signature"] == expected
    assert got.headers["content-type"] == "application/json; charset=utf-8"
    body = got.payload
    alert, metric = body["alert"], body["metric"]
    assert (alert["level"], alert["level_zh"], alert["value"]) == ("red", "红色预警", 0.32)
    assert alert["baseline"] == pytest.approx(0.79, abs=0.02)
    assert alert["score"] < -4
    assert alert["bucket_label"] == "2026-10-26"
    assert alert["link"] == f"/console/alerts/{alert['id']}"
    definition = METRICS["payment_rate"]
    assert (metric["name"], metric["label_zh"], metric["label_en"], metric["unit"]) == (
        "payment_rate", definition.label_zh, definition.label_en, definition.unit)
    assert (body["rule"]["id"], body["rule"]["name"], body["rule"]["direction"]) == (
        rule_id, "支付转化率下跌", "below")
    (delivery,) = deliveries(services)
    assert body["delivery_id"] == delivery.id
    assert (delivery.status, delivery.attempts, delivery.error, delivery.sent_at) == (
        "sent", 1, None, services.clock.now())
    assert notify.signature(got.body, "another secret") != expected


@pytest.mark.usefixtures("fast_retries")
def test_webhook_retries_a_server_error(services: Services, receiver: Receiver) -> None:
    payment_drop(services)
    rule(services, webhook_url=receiver.url)
    receiver.statuses = [500]
    evaluate(services)
    first, second = receiver.requests
    assert first.body == second.body
    assert first.headers["x-shequ-signature"] == second.headers["x-shequ-signature"]
    assert [(d.status, d.attempts, d.error) for d in deliveries(services)] == [("sent", 2, None)]


@pytest.mark.usefixtures("fast_retries")
def test_failed_delivery_keeps_the_alert_and_is_retried_next_time(
        services: Services, receiver: Receiver) -> None:
    payment_drop(services)
    rule(services, webhook_url=receiver.url)
    receiver.statuses = [503, 503, 503]
    report = evaluate(services)
    assert (report.raised, report.delivery.failed) == (1, 1)
    (failed,) = deliveries(services)
    assert (failed.status, failed.attempts, failed.error) == ("failed", 3,
                                                              "HTTP 503 Service Unavailable")
    again = evaluate(services)
    assert (again.raised, again.updated, again.delivery.sent) == (0, 1, 1)
    (sent,) = deliveries(services)
    assert (sent.id, sent.status, sent.attempts, sent.error) == (failed.id, "sent", 4, None)
    assert len(receiver.requests) == 4
    assert evaluate(services).delivery.sent == 0  # nothing left to send


@pytest.mark.usefixtures("fast_retries")
def test_client_errors_fail_at_once_and_retries_stop_after_twelve_tries(
        services: Services, receiver: Receiver) -> None:
    payment_drop(services)
    rule(services, webhook_url=receiver.url)
    receiver.statuses = [404]
    evaluate(services)
    assert [(d.status, d.attempts, d.error) for d in deliveries(services)] == [
        ("failed", 1, "HTTP 404 Not Found")]
    receiver.statuses = [500] * 100
    tries = [len(receiver.requests)]
    for _ in range(5):
        evaluate(services)
        tries.append(len(receiver.requests))
    assert tries == [1, 4, 7, 10, 13, 13]  # 1 + 4 rounds of 3 = 13 tries, then no more
    assert [(d.status, d.attempts) for d in deliveries(services)] == [("failed", 13)]


@pytest.mark.usefixtures("fast_retries")
def test_unreachable_receiver_is_recorded(services: Services) -> None:
    payment_drop(services)
    rule(services, webhook_url=f"http://127.0.0.1:{free_port()}/hook")
    report = evaluate(services)
    assert (report.raised, report.delivery.failed) == (1, 1)
    (delivery,) = deliveries(services)
    assert (delivery.status, delivery.attempts) == ("failed", 3)
    assert delivery.error is not None
    assert delivery.error.startswith("connection failed")


def test_send_webhook_backs_off_and_times_out(receiver: Receiver) -> None:
    waits: list[float] = []
    receiver.delay = 0.5
    outcome = notify.send_webhook(receiver.url, {"ping": 1}, "k", timeout=0.2,
                                  sleep=waits.append)
    assert (outcome.ok, outcome.attempts) == (False, 3)
    assert outcome.error is not None
    assert "timed out" in outcome.error
    assert waits == [0.5, 1.0]
    assert len(receiver.requests) == 3


def test_a_stale_claim_is_sent_again(services: Services, receiver: Receiver,
                                     clock: FixedClock) -> None:
    payment_drop(services)
    rule(services, webhook_url=receiver.url)
    receiver.statuses = [404]
    evaluate(services)
    with transaction(services.sessions) as session:  # a run that died while sending
        session.execute(update(Notification).values(status="sending",
                                                    claimed_at=clock.now()))
    clock.advance(timedelta(minutes=9))
    assert service.deliver_pending(services).sent == 0
    clock.advance(timedelta(minutes=2))
    assert service.deliver_pending(services).sent == 1
    assert [(d.status, d.attempts) for d in deliveries(services)] == [("sent", 2)]


# --- e-mail ---------------------------------------------------------------------------------

@pytest.fixture
def mailbox(services: Services) -> Iterator[Mailbox]:
    with smtp_server() as box:
        services.settings = services.settings.model_copy(update={
            "smtp_host": "127.0.0.1", "smtp_port": box.port, "smtp_from": "alerts@shequ.test"})
        yield box


def test_email_in_chinese_with_english_subtitle(services: Services, mailbox: Mailbox) -> None:
    payment_drop(services)
    rule(services, name="支付转化率下跌", emails=["ops@shequ.test", "Boss@shequ.test",
                                                 "boss@shequ.test"])
    report = evaluate(services)
    assert report.delivery.sent == 2  # the repeated address (any case) is sent to once
    assert sorted(rcpt for rcpts, _ in mailbox.messages for rcpt in rcpts) == [
        "Boss@shequ.test", "ops@shequ.test"]
    _rcpts, message = mailbox.messages[0]
    subject = str(message["Subject"])
    assert subject.startswith("[红色预警] 支付转化率 2026-10-26 32.0%")
    assert subject.endswith("Red alert: Payment rate")
    assert message["From"] == "alerts@shequ.test"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None
    assert html is not None
    plain = text.get_content()
    assert "红色预警:支付转化率" in plain
    assert "Red alert: Payment rate" in plain
    assert "当前值 / Value: 32.0%" in plain
    assert "规则 / Rule: 支付转化率下跌" in plain
    assert "/console/alerts/" in plain
    assert "<table" in html.get_content()
    assert "基线(中位数)" in html.get_content()
    assert [(d.channel, d.status, d.attempts) for d in deliveries(services)] == [
        ("email", "sent", 1), ("email", "sent", 1)]


def test_refused_email_is_recorded(services: Services, mailbox: Mailbox) -> None:
    payment_drop(services)
    rule(services, emails=["ops@shequ.test"])
    mailbox.refuse = "550 mailbox unavailable"
    report = evaluate(services)
    assert (report.raised, report.delivery.failed) == (1, 1)
    (delivery,) = deliveries(services)
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert delivery.error == "SMTP 550 mailbox unavailable"
    mailbox.refuse = None
    assert evaluate(services).delivery.sent == 1
    assert len(mailbox.messages) == 1


def test_email_switched_off_after_the_rule_was_made(services: Services, mailbox: Mailbox
                                                    ) -> None:
    payment_drop(services)
    rule(services, emails=["ops@shequ.test"])
    services.settings = services.settings.model_copy(update={"smtp_host": None})
    evaluate(services)
    (delivery,) = deliveries(services)
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert delivery.error is not None
    assert "SHEQU_SMTP_HOST" in delivery.error
    assert mailbox.messages == []
