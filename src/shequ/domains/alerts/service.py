"""Alert use cases: rules, the evaluation of stored metric values, the alert history and
the delivery of notifications. Semantics in docs/alerts.md.

Evaluation is idempotent: one alert per (rule, bucket), updated in place on re-evaluation,
and a level is notified once per alert (only a higher level notifies again). Deliveries
run after the alert is committed, each claimed by a conditional UPDATE, so a failed or slow
receiver never rolls back an alert and two evaluations never send the same delivery twice.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shequ.analytics.metric_values import read_values
from shequ.analytics.rollup import local_date, local_day_bounds
from shequ.core.clock import Clock
from shequ.core.db import transaction
from shequ.core.errors import Conflict, ValidationFailed, not_found
from shequ.core.permissions import Principal
from shequ.core.web import Services
from shequ.domains.alerts import notify
from shequ.domains.alerts.models import LEVELS, Alert, AlertRule, Notification
from shequ.domains.alerts.schemas import (
    AlertDetail,
    AlertOut,
    AlertPage,
    DeliveryReport,
    EvaluationReport,
    Grain,
    Level,
    NotificationOut,
    RuleIn,
    RuleOut,
    RulePatch,
    Skipped,
    State,
)
from shequ.domains.events.service import event_store

__all__ = [
    "DEFAULT_Z", "MAD_SCALE", "SPREAD_FLOOR_ABSOLUTE", "SPREAD_FLOOR_RELATIVE", "Baseline",
    "Verdict", "acknowledge_alert", "baseline_of", "bucket_label", "comparable_buckets",
    "create_rule", "delete_rule", "deliver_pending", "evaluate", "evaluate_due", "get_alert",
    "get_rule", "judge", "list_alerts", "list_rules", "resolve_alert", "update_rule",
]

LEVEL_RANK = {"yellow": 1, "orange": 2, "red": 3}
DEFAULT_Z = {"yellow": 2.0, "orange": 3.0, "red": 4.0}
MAD_SCALE = 1.4826
SPREAD_FLOOR_RELATIVE = 0.01
SPREAD_FLOOR_ABSOLUTE = 1e-6
MAX_DELIVERY_ATTEMPTS = 12
STALE_CLAIM = timedelta(minutes=10)
MAX_BUCKETS = {"hour": 24 * 31, "day": 366}
STEP = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
EVALUATOR = "evaluation"
CONSOLE_PATH = "/console/alerts"
NEXT_STATES: dict[str, frozenset[str]] = {
    "open": frozenset({"acknowledged", "resolved"}),
    "acknowledged": frozenset({"resolved"}),
}
_EMAIL = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>.]+$")
_RULE_FIELDS = ("name", "metric", "grain", "mode", "direction", "yellow", "orange", "red",
                "baseline_weeks", "min_baseline_points", "webhook_url", "emails", "enabled")


# --- the metric catalogue ----------------------------------------------------------------

def _metrics() -> Mapping[str, Any]:
    """``shequ.analytics.metrics.METRICS``, imported when first needed."""
    from shequ.analytics.metrics import METRICS

    catalogue: Mapping[str, Any] = METRICS
    return catalogue


def _metric_info(name: str) -> dict[str, Any]:
    found = _metrics().get(name)
    if found is None:
        return {"name": name, "label_zh": name, "label_en": name, "unit": "ratio",
                "family": None}
    return {"name": name, "label_zh": found.label_zh, "label_en": found.label_en,
            "unit": found.unit, "family": found.family}


# --- the maths -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Baseline:
    """The median of the comparable past values, their robust spread, how many there were."""

    median: float
    spread: float
    points: int


def baseline_of(history: Sequence[float]) -> Baseline | None:
    """Median and spread of ``history``: spread = 1.4826 × MAD, floored at 1% of
    |median| and at 1e-6 so a flat history does not divide by zero. None when empty."""
    if not history:
        return None
    median = statistics.median(history)
    mad = statistics.median(abs(x - median) for x in history)
    spread = max(MAD_SCALE * mad, SPREAD_FLOOR_RELATIVE * abs(median), SPREAD_FLOOR_ABSOLUTE)
    return Baseline(float(median), float(spread), len(history))


@dataclass(frozen=True, slots=True)
class Verdict:
    """The level a value earns (None: no alert), the threshold crossed, the robust z."""

    level: str | None
    threshold: float | None
    score: float | None


def judge(mode: str, direction: str, thresholds: Mapping[str, float], value: float,
          baseline: Baseline | None) -> Verdict:
    """The level of ``value``: the most severe threshold it reaches.

    ``fixed``: ``below`` reaches a threshold at or under it, ``above`` at or over it.
    ``baseline``: the robust z ``(value - median) / spread`` reaches a threshold when
    ``-z`` (below), ``z`` (above) or ``|z|`` (both) is at least the threshold.
    """
    score = None if baseline is None else (value - baseline.median) / baseline.spread
    if mode == "baseline":
        if score is None:
            raise ValueError("a baseline rule needs a baseline")
        measure = {"below": -score, "above": score, "both": abs(score)}[direction]
        reached = [lvl for lvl in LEVELS if measure >= thresholds[lvl]]
    elif direction == "below":
        reached = [lvl for lvl in LEVELS if value <= thresholds[lvl]]
    else:
        reached = [lvl for lvl in LEVELS if value >= thresholds[lvl]]
    if not reached:
        return Verdict(None, None, score)
    level = max(reached, key=LEVEL_RANK.__getitem__)
    return Verdict(level, thresholds[level], score)


# --- rule validation -----------------------------------------------------------------------

def _staff_only(principal: Principal) -> None:
    principal.refuse_if_partner("platform_wide_alerts", "alerts watch platform-wide figures; "
                                "partners cannot see or change them")


def _invalid(exc: PydanticValidationError) -> ValidationFailed:
    first = exc.errors()[0]
    attr = ".".join(str(part) for part in first["loc"]) or None
    return ValidationFailed("invalid_rule", str(first["msg"]), attr)


def _checked_thresholds(mode: str, direction: str, given: dict[str, float | None]
                        ) -> dict[str, float]:
    values: dict[str, float] = {}
    for level in LEVELS:
        value = given[level]
        if value is None:
            if mode == "fixed":
                raise ValidationFailed("threshold_required", f"a fixed rule needs a {level} "
                                       "threshold (a metric value)", level)
            value = DEFAULT_Z[level]
        if mode == "baseline" and value <= 0:
            raise ValidationFailed("threshold_not_positive", f"{level} is a robust z-score "
                                   f"and must be above 0, got {value:g}", level)
        values[level] = value
    falling = mode == "fixed" and direction == "below"
    for milder, stricter in (("yellow", "orange"), ("orange", "red")):
        low, high = values[milder], values[stricter]
        if (falling and not high < low) or (not falling and not high > low):
            relation = "below" if falling else "above"
            raise ValidationFailed(
                "thresholds_out_of_order",
                f"{stricter} ({high:g}) must be strictly {relation} {milder} ({low:g}): "
                "thresholds get stricter from yellow to orange to red", stricter)
    return values


def _checked_channels(data: RuleIn, settings: Any) -> tuple[str | None, list[str]]:
    url = data.webhook_url
    if url is not None:
        parts = urlsplit(url)
        if (parts.scheme not in ("http", "https") or not parts.hostname or not url.isascii()
                or any(ch.isspace() for ch in url)):
            raise ValidationFailed("bad_webhook_url", "the webhook must be an http:// or "
                                   "https:// URL with a host (ASCII, percent-encoded)",
                                   "webhook_url")
    emails: list[str] = []
    for index, email in enumerate(data.emails):
        if not _EMAIL.match(email):
            raise ValidationFailed("bad_email", f"not an e-mail address: {email!r}",
                                   f"emails.{index}")
        if email.lower() not in {e.lower() for e in emails}:
            emails.append(email)
    if emails:
        disabled = notify.email_disabled_reason(settings)
        if disabled is not None:
            raise ValidationFailed("email_disabled", disabled, "emails")
    return url, emails


def _resolved(data: RuleIn, settings: Any) -> dict[str, Any]:
    """The stored fields of a valid rule, defaults filled in; raises on the first fault."""
    metrics = _metrics()
    metric = metrics.get(data.metric)
    if metric is None:
        raise ValidationFailed("unknown_metric", f"no metric {data.metric!r}; known: "
                               f"{', '.join(metrics)}", "metric")
    direction = data.direction or ("below" if metric.higher_is_better else "above")
    if data.mode == "fixed" and direction == "both":
        raise ValidationFailed("fixed_rule_one_direction", "a fixed rule watches one side "
                               "(below or above); use mode baseline for both", "direction")
    thresholds = _checked_thresholds(data.mode, direction, {
        "yellow": data.yellow, "orange": data.orange, "red": data.red})
    if not 2 <= data.baseline_weeks <= 12:
        raise ValidationFailed("baseline_weeks_out_of_range", "baseline_weeks must be 2 to "
                               f"12, got {data.baseline_weeks}", "baseline_weeks")
    points = data.min_baseline_points
    if points is None:
        points = min(3, data.baseline_weeks)
    if not 2 <= points <= data.baseline_weeks:
        raise ValidationFailed("min_points_out_of_range", "min_baseline_points must be 2 to "
                               f"baseline_weeks ({data.baseline_weeks}), got {points}",
                               "min_baseline_points")
    webhook_url, emails = _checked_channels(data, settings)
    return {"name": data.name, "metric": data.metric, "grain": data.grain, "mode": data.mode,
            "direction": direction, **thresholds, "baseline_weeks": data.baseline_weeks,
            "min_baseline_points": points, "webhook_url": webhook_url, "emails": emails,
            "enabled": data.enabled}


def _name_taken(session: Session, name: str, other_than: int | None = None) -> None:
    query = select(AlertRule.id).where(AlertRule.name == name)
    if other_than is not None:
        query = query.where(AlertRule.id != other_than)
    if session.scalar(query) is not None:
        raise Conflict("rule_name_taken", f"a rule named {name!r} exists", "name")


def _save(session: Session, rule: AlertRule) -> None:
    try:
        with session.begin_nested():
            session.add(rule)
            session.flush()
    except IntegrityError as exc:  # a concurrent request took the name first
        raise Conflict("rule_name_taken", f"a rule named {rule.name!r} exists",
                       "name") from exc


# --- rules -----------------------------------------------------------------------------------

def _rule(session: Session, rule_id: int) -> AlertRule:
    rule = session.get(AlertRule, rule_id)
    if rule is None:
        raise not_found("alert_rule", rule_id)
    return rule


def create_rule(session: Session, services: Services, principal: Principal,
                data: RuleIn) -> RuleOut:
    """File a new rule (validation codes in docs/alerts.md)."""
    _staff_only(principal)
    fields = _resolved(data, services.settings)
    _name_taken(session, data.name)
    now = services.clock.now()
    rule = AlertRule(**fields, created_at=now, updated_at=now)
    _save(session, rule)
    return RuleOut.model_validate(rule, from_attributes=True)


def update_rule(session: Session, services: Services, principal: Principal, rule_id: int,
                patch: RulePatch) -> RuleOut:
    """Change the fields ``patch`` sends; the whole rule is validated again.

    A new ``metric`` without a ``direction`` takes the metric's default direction, and a
    new ``mode`` without thresholds takes that mode's defaults (baseline) or needs them.
    The metric and grain of a rule that raised alerts are fixed.
    """
    _staff_only(principal)
    rule = _rule(session, rule_id)
    changes = patch.model_dump(exclude_unset=True)
    merged = {name: getattr(rule, name) for name in _RULE_FIELDS}
    if changes.get("metric", rule.metric) != rule.metric and "direction" not in changes:
        merged["direction"] = None
    if changes.get("mode", rule.mode) != rule.mode:
        for level in LEVELS:
            if level not in changes:
                merged[level] = None
    merged.update(changes)
    try:
        data = RuleIn.model_validate(merged)
    except PydanticValidationError as exc:
        raise _invalid(exc) from exc
    fields = _resolved(data, services.settings)
    _name_taken(session, data.name, other_than=rule.id)
    for name in ("metric", "grain"):
        if fields[name] != getattr(rule, name) and _has_alerts(session, rule.id):
            raise Conflict("rule_has_alerts", f"the {name} of a rule that raised alerts "
                           "cannot change (its alerts would lose their meaning); create a "
                           "new rule", name)
    for name, value in fields.items():
        if getattr(rule, name) != value:
            setattr(rule, name, value)
    if session.is_modified(rule):
        rule.updated_at = services.clock.now()
    _save(session, rule)
    return RuleOut.model_validate(rule, from_attributes=True)


def _has_alerts(session: Session, rule_id: int) -> bool:
    return session.scalar(select(Alert.id).where(Alert.rule_id == rule_id).limit(1)) is not None


def delete_rule(session: Session, principal: Principal, rule_id: int) -> None:
    """Delete a rule that never raised an alert; one with history can only be disabled."""
    _staff_only(principal)
    rule = _rule(session, rule_id)
    if _has_alerts(session, rule_id):
        raise Conflict("rule_has_alerts", "this rule has raised alerts; disable it "
                       "(enabled: false) to keep their history", "id")
    session.delete(rule)
    session.flush()


def get_rule(session: Session, principal: Principal, rule_id: int) -> RuleOut:
    """One rule."""
    _staff_only(principal)
    return RuleOut.model_validate(_rule(session, rule_id), from_attributes=True)


def list_rules(session: Session, principal: Principal, *, metric: str | None = None,
               grain: Grain | None = None, enabled: bool | None = None) -> list[RuleOut]:
    """The rules, by name."""
    _staff_only(principal)
    query = select(AlertRule).order_by(AlertRule.name)
    if metric is not None:
        query = query.where(AlertRule.metric == metric)
    if grain is not None:
        query = query.where(AlertRule.grain == grain)
    if enabled is not None:
        query = query.where(AlertRule.enabled == enabled)
    return [RuleOut.model_validate(rule, from_attributes=True)
            for rule in session.scalars(query)]


# --- buckets ---------------------------------------------------------------------------------

def _bucket_starts(grain: str, first: datetime, last: datetime, zone: ZoneInfo
                   ) -> list[datetime]:
    for attr, moment in (("bucket_start_from", first), ("bucket_start_to", last)):
        if moment.tzinfo is None:
            raise ValidationFailed("naive_bucket_start", "bucket starts are aware instants",
                                   attr)
        local = moment.astimezone(zone)
        aligned = (local.minute, local.second, local.microsecond) == (0, 0, 0)
        if grain == "day":
            aligned = moment == local_day_bounds(local.date(), local.date(), zone)[0]
        if not aligned:
            unit = "local midnight" if grain == "day" else "the start of a local hour"
            raise ValidationFailed("bucket_not_aligned", f"a {grain} bucket starts at {unit} "
                                   f"in {zone.key}, got {moment.isoformat()}", attr)
    if last < first:
        raise ValidationFailed("bad_bucket_range", "bucket_start_to is before "
                               "bucket_start_from", "bucket_start_to")
    if grain == "hour":
        count = int((last - first) / STEP["hour"]) + 1
        starts = [first.astimezone(UTC) + i * STEP["hour"] for i in range(count)]
    else:
        day = local_date(first, zone)
        count = (local_date(last, zone) - day).days + 1
        starts = [_day_start(day + timedelta(days=i), zone) for i in range(count)]
    if count > MAX_BUCKETS[grain]:
        raise ValidationFailed("bucket_range_too_long", f"at most {MAX_BUCKETS[grain]} "
                               f"{grain} buckets per evaluation, got {count}", "bucket_start_to")
    return starts


def _day_start(day: date, zone: ZoneInfo) -> datetime:
    return local_day_bounds(day, day, zone)[0]


def comparable_buckets(grain: str, bucket: datetime, weeks: int, zone: ZoneInfo
                       ) -> list[datetime]:
    """The buckets a baseline compares ``bucket`` with: the same local weekday (day) or
    weekday and wall-clock hour (hour) in each of the ``weeks`` previous weeks."""
    local = bucket.astimezone(zone)
    if grain == "day":
        return [_day_start(local.date() - timedelta(weeks=i), zone)
                for i in range(1, weeks + 1)]
    wall = local.replace(tzinfo=None)
    return [(wall - timedelta(weeks=i)).replace(tzinfo=zone).astimezone(UTC)
            for i in range(1, weeks + 1)]


def _bucket_end(grain: str, bucket: datetime, zone: ZoneInfo) -> datetime:
    if grain == "hour":
        return bucket + STEP["hour"]
    return _day_start(local_date(bucket, zone) + timedelta(days=1), zone)


def bucket_label(grain: str, bucket: datetime, zone: ZoneInfo) -> str:
    """The bucket in local time: ``2026-10-26`` or ``2026-10-26 14:00``."""
    local = bucket.astimezone(zone)
    return local.strftime("%Y-%m-%d") if grain == "day" else local.strftime("%Y-%m-%d %H:%M")


# --- evaluation ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Judged:
    rule_id: int
    bucket: datetime
    value: float
    baseline: Baseline | None
    verdict: Verdict


@dataclass
class _Tally:
    raised: int = 0
    updated: int = 0
    cleared: int = 0
    skipped: list[Skipped] = field(default_factory=list)


def _thresholds(rule: AlertRule) -> dict[str, float]:
    return {"yellow": rule.yellow, "orange": rule.orange, "red": rule.red}


def _judge_all(services: Services, grain: Grain, rules: Sequence[AlertRule],
               buckets: Sequence[datetime], tally: _Tally) -> list[_Judged]:
    zone = services.settings.zone
    weeks = max(rule.baseline_weeks for rule in rules)
    start = comparable_buckets(grain, buckets[0], weeks, zone)[-1]
    end = _bucket_end(grain, buckets[-1], zone)
    stored = read_values(event_store(services), sorted({rule.metric for rule in rules}),
                         grain, start, end)
    values = {(v.metric, v.bucket_start.astimezone(UTC)): v.value for v in stored}
    judged: list[_Judged] = []
    for rule in rules:
        for bucket in buckets:
            value = values.get((rule.metric, bucket))
            if value is None:
                tally.skipped.append(Skipped(rule_id=rule.id, bucket_start=bucket,
                                             reason="no_value"))
                continue
            past = [values.get((rule.metric, b))
                    for b in comparable_buckets(grain, bucket, rule.baseline_weeks, zone)]
            history = [v for v in past if v is not None]
            baseline = baseline_of(history) if len(history) >= rule.min_baseline_points \
                else None
            if rule.mode == "baseline" and baseline is None:
                tally.skipped.append(Skipped(rule_id=rule.id, bucket_start=bucket,
                                             reason="insufficient_baseline"))
                continue
            verdict = judge(rule.mode, rule.direction, _thresholds(rule), value, baseline)
            judged.append(_Judged(rule.id, bucket, value, baseline, verdict))
    return judged


def _locked_alert(session: Session, rule_id: int, bucket: datetime) -> Alert | None:
    return session.scalar(
        select(Alert).where(Alert.rule_id == rule_id, Alert.bucket_start == bucket)
        .with_for_update().execution_options(populate_existing=True))


def _figures(alert: Alert, item: _Judged, now: datetime) -> None:
    alert.value = item.value
    alert.baseline = None if item.baseline is None else item.baseline.median
    alert.spread = None if item.baseline is None else item.baseline.spread
    alert.baseline_points = 0 if item.baseline is None else item.baseline.points
    alert.score = item.verdict.score
    alert.evaluated_at = now
    if item.verdict.level is not None and item.verdict.threshold is not None:
        alert.level = item.verdict.level
        alert.threshold = item.verdict.threshold


def _targets(rule: AlertRule) -> list[tuple[str, str]]:
    found = [("webhook", rule.webhook_url)] if rule.webhook_url else []
    return found + [("email", email) for email in rule.emails or []]


def _insert_alert(session: Session, rule: AlertRule, item: _Judged, now: datetime
                  ) -> Alert | None:
    """Insert the alert of ``item``; None when a concurrent evaluation inserted it first."""
    alert = Alert(rule_id=rule.id, metric=rule.metric, grain=rule.grain,
                  bucket_start=item.bucket, state="open", raised_at=now)
    _figures(alert, item, now)
    try:
        with session.begin_nested():
            session.add(alert)
            session.flush()
    except IntegrityError:
        return None
    return alert


def _record(session: Session, rule: AlertRule, item: _Judged, now: datetime,
            tally: _Tally) -> None:
    """File the verdict on one bucket: raise, update or clear its alert and queue the
    notifications a new or higher level calls for."""
    alert = _locked_alert(session, rule.id, item.bucket)
    level = item.verdict.level
    if level is None:
        if alert is not None and alert.state != "resolved":
            _figures(alert, item, now)
            alert.state, alert.resolved_at, alert.resolved_by = "resolved", now, EVALUATOR
            alert.note = "cleared: the value is back within the thresholds"
            tally.cleared += 1
        return
    raised = None if alert is not None else _insert_alert(session, rule, item, now)
    if raised is not None:
        alert = raised
        tally.raised += 1
    else:
        alert = alert or _locked_alert(session, rule.id, item.bucket)
        if alert is None:  # the rule was deleted meanwhile
            return
        _figures(alert, item, now)
        tally.updated += 1
        if alert.state == "resolved" and alert.resolved_by == EVALUATOR:
            alert.state, alert.resolved_at, alert.resolved_by, alert.note = (
                "open", None, None, None)
    if alert.state != "resolved" and LEVEL_RANK[level] > LEVEL_RANK.get(
            alert.notified_level or "", 0):
        alert.notified_level = level
        session.add_all(Notification(alert_id=alert.id, level=level, channel=channel,
                                     target=target, status="pending", attempts=0,
                                     created_at=now) for channel, target in _targets(rule))
    session.flush()


def evaluate(services: Services, grain: Grain, bucket_start_from: datetime,
             bucket_start_to: datetime) -> EvaluationReport:
    """Judge every enabled ``grain`` rule on each bucket starting in
    ``[bucket_start_from, bucket_start_to]`` (both included), file the alerts, then deliver
    the notifications due (new ones and earlier failures)."""
    if grain not in STEP:
        raise ValidationFailed("unknown_grain", f"grain is hour or day, not {grain!r}", "grain")
    zone = services.settings.zone
    buckets = _bucket_starts(grain, bucket_start_from, bucket_start_to, zone)
    tally = _Tally()
    with transaction(services.sessions) as session:
        rules = list(session.scalars(select(AlertRule).where(
            AlertRule.grain == grain, AlertRule.enabled.is_(True)).order_by(AlertRule.id)))
    judged = _judge_all(services, grain, rules, buckets, tally) if rules else []
    by_id = {rule.id: rule for rule in rules}
    now = services.clock.now()
    with transaction(services.sessions, clock=services.clock) as session:
        for item in judged:  # rule then bucket order: racing evaluations lock alike
            _record(session, by_id[item.rule_id], item, now, tally)
    delivery = deliver_pending(services)
    return EvaluationReport(grain=grain, buckets=len(buckets), rules=len(rules),
                            raised=tally.raised, updated=tally.updated, cleared=tally.cleared,
                            skipped=tally.skipped, delivery=delivery)


def evaluate_days(services: Services, first: date, last: date) -> EvaluationReport:
    """Judge the daily rules on the local days ``first..last`` (deployment time zone)."""
    if last < first:
        raise ValidationFailed("bad_date_range", f"{last} is before {first}", "to")
    zone = services.settings.zone
    return evaluate(services, "day", _day_start(first, zone), _day_start(last, zone))


def evaluate_due(services: Services) -> list[EvaluationReport]:
    """The scheduled run: hourly rules on the last complete hour, daily rules on
    yesterday (local time of the deployment)."""
    zone = services.settings.zone
    local = services.clock.now().astimezone(zone)
    hour = local.replace(minute=0, second=0, microsecond=0).astimezone(UTC) - STEP["hour"]
    yesterday = _day_start(local.date() - timedelta(days=1), zone)
    return [evaluate(services, "hour", hour, hour), evaluate(services, "day", yesterday,
                                                             yesterday)]


# --- delivery --------------------------------------------------------------------------------

def _claimable(now: datetime) -> Any:
    return or_(Notification.status.in_(("pending", "failed")),
               and_(Notification.status == "sending",
                    Notification.claimed_at < now - STALE_CLAIM))


def _alert_out(alert: Alert, rule_name: str) -> AlertOut:
    return AlertOut.model_validate({
        **{c.key: getattr(alert, c.key) for c in Alert.__table__.columns},
        "rule_name": rule_name, "link": f"{CONSOLE_PATH}/{alert.id}"})


def _payload(services: Services, notification: Notification, alert: Alert,
             rule: AlertRule, now: datetime) -> dict[str, Any]:
    zone = services.settings.zone
    out = _alert_out(alert, rule.name)
    return {
        "event": "alert.notification",
        "delivery_id": notification.id,
        "sent_at": now.isoformat(),
        "alert": {
            "id": alert.id, "level": notification.level, "state": alert.state,
            "level_zh": notify.LEVEL_ZH[notification.level],
            "grain": alert.grain, "bucket_start": alert.bucket_start.isoformat(),
            "bucket_label": bucket_label(alert.grain, alert.bucket_start, zone),
            "value": alert.value, "threshold": _thresholds(rule)[notification.level],
            "baseline": alert.baseline, "spread": alert.spread, "score": alert.score,
            "baseline_points": alert.baseline_points, "link": out.link,
        },
        "rule": {"id": rule.id, "name": rule.name, "mode": rule.mode,
                 "direction": rule.direction, "thresholds": _thresholds(rule),
                 "baseline_weeks": rule.baseline_weeks},
        "metric": _metric_info(alert.metric),
    }


def _send(services: Services, channel: str, target: str,
          payload: Mapping[str, Any]) -> notify.Outcome:
    if channel == "webhook":
        return notify.send_webhook(target, payload, services.settings.secret_key,
                                   backoff=notify.BACKOFF_SECONDS)
    return notify.send_email(services.settings, target, notify.compose_email(payload),
                             backoff=notify.BACKOFF_SECONDS)


def _claim(services: Services, notification_id: int, now: datetime
           ) -> tuple[str, str, dict[str, Any]] | None:
    with transaction(services.sessions) as session:
        claimed = session.execute(
            update(Notification).where(Notification.id == notification_id, _claimable(now))
            .values(status="sending", claimed_at=now)
            .execution_options(synchronize_session=False))
        if claimed.rowcount == 0:  # type: ignore[attr-defined]
            return None  # another evaluation took it
        notification = session.get_one(Notification, notification_id)
        alert = session.get_one(Alert, notification.alert_id)
        rule = session.get_one(AlertRule, alert.rule_id)
        return (notification.channel, notification.target,
                _payload(services, notification, alert, rule, now))


def deliver_pending(services: Services) -> DeliveryReport:
    """Send every delivery that is due: queued, failed before (fewer than 12 tries so
    far) or claimed more than 10 minutes ago by a run that never reported back. Only
    deliveries of the alert's notified level are sent, never for a resolved alert."""
    now = services.clock.now()
    with transaction(services.sessions) as session:
        due = list(session.scalars(
            select(Notification.id).join(Alert, Alert.id == Notification.alert_id)
            .where(Alert.state != "resolved", Notification.level == Alert.notified_level,
                   Notification.attempts < MAX_DELIVERY_ATTEMPTS, _claimable(now))
            .order_by(Notification.id)))
    report = DeliveryReport()
    for notification_id in due:
        claimed = _claim(services, notification_id, now)
        if claimed is None:
            continue
        channel, target, payload = claimed
        outcome = _send(services, channel, target, payload)
        with transaction(services.sessions) as session:
            session.execute(
                update(Notification).where(Notification.id == notification_id)
                .values(status="sent" if outcome.ok else "failed",
                        attempts=Notification.attempts + max(outcome.attempts, 1),
                        error=outcome.error, sent_at=now if outcome.ok else None)
                .execution_options(synchronize_session=False))
        if outcome.ok:
            report.sent += 1
        else:
            report.failed += 1
    return report


# --- the alert history -----------------------------------------------------------------------

def _date_bound(day: date, attr: str, zone: ZoneInfo) -> datetime:
    if not date(2000, 1, 1) <= day <= date(2199, 12, 31):
        raise ValidationFailed("date_out_of_range", "dates run from 2000-01-01 to "
                               "2199-12-31", attr)
    return _day_start(day, zone)


def list_alerts(session: Session, principal: Principal, zone: ZoneInfo, *,
                state: State | None = None, level: Level | None = None,
                metric: str | None = None, rule_id: int | None = None,
                date_from: date | None = None, date_to: date | None = None,
                limit: int = 50, offset: int = 0) -> AlertPage:
    """Alerts, newest bucket first; ``date_from``/``date_to`` are local days of the
    bucket (inclusive)."""
    _staff_only(principal)
    query = select(Alert, AlertRule.name).join(AlertRule, AlertRule.id == Alert.rule_id)
    if date_from is not None and date_to is not None and date_to < date_from:
        raise ValidationFailed("bad_date_range", f"date_to {date_to} is before date_from "
                               f"{date_from}", "date_to")
    conditions: list[Any] = []
    if state is not None:
        conditions.append(Alert.state == state)
    if level is not None:
        conditions.append(Alert.level == level)
    if metric is not None:
        conditions.append(Alert.metric == metric)
    if rule_id is not None:
        conditions.append(Alert.rule_id == rule_id)
    if date_from is not None:
        conditions.append(Alert.bucket_start >= _date_bound(date_from, "date_from", zone))
    if date_to is not None:
        _date_bound(date_to, "date_to", zone)
        conditions.append(Alert.bucket_start < _day_start(date_to + timedelta(days=1), zone))
    query = query.where(*conditions)
    total = session.scalar(select(func.count()).select_from(
        select(Alert.id).where(*conditions).subquery())) or 0
    rows = session.execute(query.order_by(Alert.bucket_start.desc(), Alert.id.desc())
                           .limit(limit).offset(offset)).tuples()
    return AlertPage(total=total, items=[_alert_out(alert, name) for alert, name in rows])


def _alert(session: Session, alert_id: int, *, lock: bool = False) -> tuple[Alert, str]:
    query = select(Alert, AlertRule.name).join(AlertRule, AlertRule.id == Alert.rule_id)
    query = query.where(Alert.id == alert_id)
    if lock:
        query = query.with_for_update(of=Alert).execution_options(populate_existing=True)
    found = session.execute(query).tuples().one_or_none()
    if found is None:
        raise not_found("alert", alert_id)
    return found


def get_alert(session: Session, principal: Principal, alert_id: int) -> AlertDetail:
    """One alert with its deliveries."""
    _staff_only(principal)
    alert, name = _alert(session, alert_id)
    deliveries = session.scalars(select(Notification).where(Notification.alert_id == alert_id)
                                 .order_by(Notification.id))
    return AlertDetail.model_validate({
        **_alert_out(alert, name).model_dump(),
        "notifications": [NotificationOut.model_validate(n, from_attributes=True)
                          for n in deliveries]})


def _transition(session: Session, clock: Clock, principal: Principal, alert_id: int,
                to: str, note: str | None) -> AlertOut:
    _staff_only(principal)
    alert, name = _alert(session, alert_id, lock=True)
    if alert.state == to:
        return _alert_out(alert, name)
    if to not in NEXT_STATES.get(alert.state, frozenset()):
        raise Conflict("illegal_transition", f"cannot go from {alert.state} to {to}",
                       "state")
    now = clock.now()
    if to == "acknowledged":
        alert.acknowledged_at, alert.acknowledged_by = now, principal.actor
    else:
        alert.resolved_at, alert.resolved_by = now, principal.actor
    alert.state = to
    if note is not None:
        alert.note = note
    session.flush()
    return _alert_out(alert, name)


def acknowledge_alert(session: Session, clock: Clock, principal: Principal, alert_id: int,
                      note: str | None = None) -> AlertOut:
    """open → acknowledged (someone is on it). Acknowledging again changes nothing."""
    return _transition(session, clock, principal, alert_id, "acknowledged", note)


def resolve_alert(session: Session, clock: Clock, principal: Principal, alert_id: int,
                  note: str | None = None) -> AlertOut:
    """open or acknowledged → resolved. Resolving again changes nothing."""
    return _transition(session, clock, principal, alert_id, "resolved", note)


# Rules a new community starts with (the demo installs them): the conversion steps and
# traffic, baseline mode (robust z against the same weekday of the last four weeks).
STARTER_RULES: tuple[tuple[str, str, float, float, float], ...] = (
    ("支付转化率异常", "payment_rate", 3.0, 4.0, 5.0),
    ("加购下单率异常", "cart_to_checkout_rate", 3.0, 4.0, 5.0),
    ("浏览加购率异常", "view_to_cart_rate", 3.0, 4.0, 5.0),
    ("访客数异常", "visitors", 3.0, 4.0, 5.0),
    ("跳出率异常", "bounce_rate", 3.0, 4.0, 5.0),
    ("成交额异常", "gmv_fen", 3.0, 4.0, 5.0),
)


def install_starter_rules(session: Session, services: Services,
                          principal: Principal) -> list[RuleOut]:
    """File the :data:`STARTER_RULES` that do not exist yet (by name); daily, baseline
    mode, no notification channels. Returns the rules filed."""
    existing = set(session.scalars(select(AlertRule.name)))
    filed = []
    for name, metric, yellow, orange, red in STARTER_RULES:
        if name not in existing:
            filed.append(create_rule(session, services, principal, RuleIn(
                name=name, metric=metric, grain="day", mode="baseline",
                yellow=yellow, orange=orange, red=red)))
    return filed
