"""The job queue: huey on SQLite under SHEQU_HOME by default, on Redis when configured.

On the embedded default the consumer runs inside ``shequ serve`` (the DuckDB events file
admits one writing process); with PostgreSQL events and a Redis queue, ``shequ worker``
runs it as a process of its own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from huey import Huey, RedisHuey, SqliteHuey, crontab
from huey.consumer import Consumer

from shequ.core.db import transaction
from shequ.core.permissions import CLI_PRINCIPAL
from shequ.core.web import Services
from shequ.domains.alerts import service as alerts
from shequ.domains.campaigns import service as campaigns
from shequ.domains.community import service as community
from shequ.domains.content import needs
from shequ.domains.content import service as content
from shequ.domains.events import service as events
from shequ.domains.insight import service as insight
from shequ.domains.lifecycle import service as lifecycle
from shequ.domains.loyalty import service as loyalty
from shequ.domains.membership import service as membership
from shequ.domains.moderation import incidents
from shequ.domains.segments import service as segments

log = logging.getLogger("shequ.worker")


@dataclass
class Queue:
    """A huey instance with shequ's tasks registered on it."""

    huey: Huey
    rollup_events: Any
    daily_rollup: Any
    refresh_metrics: Any
    evaluate_alerts: Any
    refresh_customers: Any
    refresh_segments: Any
    refresh_content: Any
    detect_crises: Any
    expire_points: Any
    expire_groups: Any
    settle_commissions: Any


def make_huey(queue_url: str, name: str = "shequ") -> Huey:
    """A huey for ``sqlite:///path`` or ``redis://host:port/db``."""
    if queue_url.startswith("sqlite:///"):
        return SqliteHuey(name, filename=queue_url.removeprefix("sqlite:///"), utc=True)
    if queue_url.startswith(("redis://", "rediss://")):
        return RedisHuey(name, url=queue_url, utc=True)
    raise ValueError(f"SHEQU_QUEUE_URL must be sqlite:///… or redis://…, not {queue_url!r}")


def _local_today(services: Services) -> date:
    return services.clock.now().astimezone(services.settings.zone).date()


def build_queue(services: Services, queue_url: str | None = None, name: str = "shequ") -> Queue:
    """Register the jobs on a huey bound to ``services``."""
    huey = make_huey(queue_url or services.settings.resolved_queue_url, name)

    @huey.task(name="rollup_events")  # type: ignore[untyped-decorator]
    def rollup_events(day_from: str, day_to: str) -> int:
        return events.rollup(services, date.fromisoformat(day_from), date.fromisoformat(day_to))

    # Hourly, not daily: the rollup of yesterday and today is idempotent and cheap, and an
    # hourly run also catches late events that arrive after midnight.
    @huey.periodic_task(crontab(minute="10"), name="daily_rollup")  # type: ignore[untyped-decorator]
    def daily_rollup() -> int:
        today = _local_today(services)
        written = events.rollup(services, today - timedelta(days=1), today)
        log.info("daily rollup wrote %d rows", written)
        return written

    # At minute 5: the 18 metrics of yesterday and today (their ended hours and days), so
    # the alert evaluation at minute 15 reads fresh values.
    @huey.periodic_task(crontab(minute="5"), name="refresh_metrics")  # type: ignore[untyped-decorator]
    def refresh_metrics() -> int:
        today = _local_today(services)
        written = events.refresh_metrics(services, today - timedelta(days=1), today)
        log.info("metrics refresh wrote %d values", written)
        return written

    # At minute 15, after the metrics refresh: hourly rules on the last complete hour, daily
    # rules on yesterday. Re-judging yesterday every hour is idempotent and retries failed
    # notifications.
    @huey.periodic_task(crontab(minute="15"), name="evaluate_alerts")  # type: ignore[untyped-decorator]
    def evaluate_alerts() -> int:
        reports = alerts.evaluate_due(services)
        raised = sum(report.raised for report in reports)
        log.info("alert evaluation raised %d alerts", raised)
        return raised

    # Daily at 18:30 UTC (02:30 in Shanghai), when yesterday is complete: membership tiers,
    # lifecycle stages, then profiles and tags as of yesterday, then every segment.
    @huey.periodic_task(crontab(hour="18", minute="30"), name="refresh_customers")  # type: ignore[untyped-decorator]
    def refresh_customers() -> int:
        evaluated = membership.evaluate_due(services)
        lifecycle.refresh_due(services)
        report = insight.refresh(services, as_of=_local_today(services) - timedelta(days=1))
        summary = segments.refresh_all(services)
        log.info("customer refresh: %d membership day(s), %d buyers, %d segments refreshed",
                 len(evaluated), report.buyers, summary.refreshed)
        return report.buyers

    # Hourly at minute 25: segments whose inputs (events, dimensions, rule) changed since
    # their last refresh get their member difference written; the others are skipped.
    @huey.periodic_task(crontab(minute="25"), name="refresh_segments")  # type: ignore[untyped-decorator]
    def refresh_segments() -> int:
        summary = segments.refresh_due(services)
        log.info("segment refresh: %d refreshed, %d unchanged", summary.refreshed,
                 summary.unchanged)
        return int(summary.refreshed)

    # Daily at 19:00 UTC (03:00 in Shanghai): every post's originality, reach, conversion
    # and quality score, then the KOC ladder, which reads those scores, then the latest
    # quarter's needs report (recomputed only when its texts changed).
    @huey.periodic_task(crontab(hour="19", minute="0"), name="refresh_content")  # type: ignore[untyped-decorator]
    def refresh_content() -> int:
        report = content.refresh_scores(services, CLI_PRINCIPAL)
        changes = 0
        with transaction(services.sessions, actor="worker", clock=services.clock) as session:
            if community.list_levels(session):  # no ladder installed: nothing to evaluate
                changes = community.evaluate_ladder(session, services.clock).changes
        with transaction(services.sessions) as session:
            if report.posts:  # the latest quarter's needs report, stored for the console
                needs.needs_report(session, CLI_PRINCIPAL, needs.default_quarter(session),
                                   now=services.clock.now())
        log.info("content refresh: %d posts scored, %d ladder changes", report.posts, changes)
        return int(report.posts)

    # Hourly at minute 35: negative-sentiment bursts of the last 7 days per product, brand
    # and topic open or update crisis incidents (idempotent; docs/crisis.md).
    @huey.periodic_task(crontab(minute="35"), name="detect_crises")  # type: ignore[untyped-decorator]
    def detect_crises() -> int:
        with transaction(services.sessions, actor="worker", clock=services.clock) as session:
            report = incidents.detect_bursts(session, services.clock)
        log.info("crisis detection: %d bursts, %d incidents opened", len(report.bursts),
                 report.opened)
        return int(report.opened)

    # Daily at 16:12 UTC (00:12 in Shanghai): points lots past their expiry date are
    # expired, oldest first, one movement per lot (idempotent; docs/points.md).
    @huey.periodic_task(crontab(hour="16", minute="12"), name="expire_points")  # type: ignore[untyped-decorator]
    def expire_points() -> int:
        with transaction(services.sessions, actor="worker", clock=services.clock) as session:
            report = loyalty.expire(session, services.clock)
        log.info("points expiry: %d points of %d lots", report.points, report.lots)
        return int(report.points)

    # Every five minutes (minutes 3, 8, 13, …, clear of the other jobs): group-buying
    # groups past their deadline succeed or expire, expired groups are refunded, and ended
    # offers return their unsold units (each group in its own transaction; idempotent;
    # docs/group-buying.md).
    @huey.periodic_task(crontab(minute="3-59/5"), name="expire_groups")  # type: ignore[untyped-decorator]
    def expire_groups() -> int:
        report = campaigns.groups.expire_groups(services)
        log.info("group buying: %s", report)
        return int(report["succeeded"]) + int(report["expired"])

    # Daily at 16:20 UTC (00:20 in Shanghai): referral commissions whose return window has
    # passed are settled, each in its own transaction (docs/referrals.md).
    @huey.periodic_task(crontab(hour="16", minute="20"), name="settle_commissions")  # type: ignore[untyped-decorator]
    def settle_commissions() -> int:
        report = campaigns.referrals.settle_commissions(services)
        log.info("referral settlement: %s", report)
        return int(report.get("settled", 0))

    return Queue(huey=huey, rollup_events=rollup_events, daily_rollup=daily_rollup,
                 refresh_metrics=refresh_metrics, evaluate_alerts=evaluate_alerts,
                 refresh_customers=refresh_customers, refresh_segments=refresh_segments,
                 refresh_content=refresh_content, detect_crises=detect_crises,
                 expire_points=expire_points, expire_groups=expire_groups,
                 settle_commissions=settle_commissions)


def start_embedded_consumer(queue: Queue) -> Consumer:
    """Run the consumer on threads inside the current process (``shequ serve``)."""
    consumer = queue.huey.create_consumer(workers=1, worker_type="thread", periodic=True,
                                          check_worker_health=False)
    consumer.start()
    return consumer
