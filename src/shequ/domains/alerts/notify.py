"""Alert notifications: signed webhook POSTs and plain-text + HTML e-mails.

These functions only talk to the outside world and report what happened; recording the
outcome (and retrying on the next evaluation) is the service's job.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import smtplib
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from shequ.core.money import format_fen
from shequ.core.settings import Settings

SIGNATURE_HEADER = "X-Shequ-Signature"
WEBHOOK_TIMEOUT = 5.0
WEBHOOK_RETRIES = 2
BACKOFF_SECONDS = 0.5
SMTP_TIMEOUT = 10.0
LEVEL_ZH = {"yellow": "黄色预警", "orange": "橙色预警", "red": "红色预警"}
LEVEL_EN = {"yellow": "Yellow alert", "orange": "Orange alert", "red": "Red alert"}
LEVEL_COLOUR = {"yellow": "#d4a017", "orange": "#e8710a", "red": "#c5221f"}


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one delivery went: ``attempts`` tries made, ``error`` of the last failed try."""

    ok: bool
    attempts: int
    error: str | None = None


def signature(body: bytes, secret: str) -> str:
    """The ``X-Shequ-Signature`` value of ``body``: ``sha256=<hex HMAC-SHA256>``."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def payload_bytes(payload: Mapping[str, Any]) -> bytes:
    """The exact body that is signed and sent: compact UTF-8 JSON, keys sorted."""
    return json.dumps(payload, ensure_ascii=False, sort_keys=True,
                      separators=(",", ":")).encode()


def send_webhook(url: str, payload: Mapping[str, Any], secret: str, *,
                 timeout: float = WEBHOOK_TIMEOUT, retries: int = WEBHOOK_RETRIES,
                 backoff: float = BACKOFF_SECONDS,
                 sleep: Callable[[float], None] = time.sleep) -> Outcome:
    """POST ``payload`` as signed JSON to ``url``.

    A 2xx answer is success. A 5xx answer, a timeout or a connection error is retried
    ``retries`` times, waiting ``backoff``, then twice as long; any other answer fails at once.
    """
    body = payload_bytes(payload)
    headers = {"Content-Type": "application/json; charset=utf-8",
               "User-Agent": "shequ-alerts/1", SIGNATURE_HEADER: signature(body, secret)}
    error = "not attempted"
    for attempt in range(1, retries + 2):
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                answer.read()
                return Outcome(True, attempt)
        except urllib.error.HTTPError as exc:
            exc.close()
            error = f"HTTP {exc.code} {exc.reason}"
            if exc.code < 500:
                return Outcome(False, attempt, error)
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            error = f"connection failed: {reason}"
        if attempt <= retries:
            sleep(backoff * 2 ** (attempt - 1))
    return Outcome(False, retries + 1, error)


def format_value(value: float | None, unit: str) -> str:
    """A metric value for people: rates as percentages, money in yuan."""
    if value is None:
        return "—"
    if unit == "rate":
        return f"{value * 100:.1f}%"
    if unit == "fen":
        return format_fen(round(value))
    if unit == "seconds":
        return f"{value:,.1f} s"
    if unit == "count":
        return f"{value:,.0f}"
    return f"{value:,.2f}"


@dataclass(frozen=True, slots=True)
class Letter:
    subject: str
    text: str
    html: str


def compose_email(payload: Mapping[str, Any]) -> Letter:
    """The e-mail of a notification payload: Chinese first, each line with an English
    subtitle; the subject reads like ``[红色预警] 支付转化率 2026-10-26 · Red alert: …``."""
    alert, rule, metric = payload["alert"], payload["rule"], payload["metric"]
    level = alert["level"]
    unit = metric["unit"]
    value = format_value(alert["value"], unit)
    baseline = format_value(alert["baseline"], unit)
    threshold = (format_value(alert["threshold"], unit) if rule["mode"] == "fixed"
                 else f"z = {alert['threshold']:g}")
    score = "—" if alert["score"] is None else f"{alert['score']:+.2f}"
    subject = (f"[{LEVEL_ZH[level]}] {metric['label_zh']} {alert['bucket_label']} {value}"
               f" · {LEVEL_EN[level]}: {metric['label_en']}")
    grain_zh = "小时" if alert["grain"] == "hour" else "日"
    rows = [
        ("指标", "Metric", f"{metric['label_zh']} / {metric['label_en']}"),
        ("时段", "Period", f"{alert['bucket_label']} ({grain_zh} / {alert['grain']})"),
        ("当前值", "Value", value),
        ("基线(中位数)", "Baseline (median)", baseline),
        ("稳健 z 分数", "Robust z-score", score),
        ("触发阈值", "Threshold crossed", threshold),
        ("规则", "Rule", rule["name"]),
        ("控制台", "Console", alert["link"]),
    ]
    text_lines = [f"{LEVEL_ZH[level]}:{metric['label_zh']}", f"{LEVEL_EN[level]}: "
                  f"{metric['label_en']}", ""]
    text_lines += [f"{zh} / {en}: {shown}" for zh, en, shown in rows]
    text_lines += ["", "请在控制台确认(acknowledge)或解决(resolve)此预警。",
                   "Acknowledge or resolve this alert in the console."]
    cells = "".join(
        f"<tr><th align=\"left\">{html.escape(zh)}<br><small>{html.escape(en)}</small></th>"
        f"<td>{html.escape(str(shown))}</td></tr>" for zh, en, shown in rows)
    body = (f"<html><body><h2 style=\"color:{LEVEL_COLOUR[level]}\">"
            f"{html.escape(LEVEL_ZH[level])}:{html.escape(metric['label_zh'])}</h2>"
            f"<p><small>{html.escape(LEVEL_EN[level])}: {html.escape(metric['label_en'])}"
            f"</small></p><table cellpadding=\"4\">{cells}</table>"
            "<p>请在控制台确认或解决此预警。<br><small>Acknowledge or resolve this alert in "
            "the console.</small></p></body></html>")
    return Letter(subject, "\n".join(text_lines) + "\n", body)


def email_disabled_reason(settings: Settings) -> str | None:
    """Why e-mail cannot be sent with ``settings``, or None when it can."""
    if settings.smtp_host is None:
        return "e-mail is disabled: set SHEQU_SMTP_HOST to send alert e-mails"
    return None


def send_email(settings: Settings, to: str, letter: Letter, *,
               retries: int = WEBHOOK_RETRIES, backoff: float = BACKOFF_SECONDS,
               sleep: Callable[[float], None] = time.sleep) -> Outcome:
    """Send ``letter`` to ``to`` through the configured SMTP relay.

    Connection failures and temporary (4xx) SMTP answers are retried like webhooks; a
    permanent refusal fails at once.
    """
    disabled = email_disabled_reason(settings)
    if disabled is not None:
        return Outcome(False, 0, disabled)
    message = EmailMessage()
    message["Subject"] = letter.subject
    message["From"] = settings.smtp_from
    message["To"] = to
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="shequ.alerts")
    message.set_content(letter.text)
    message.add_alternative(letter.html, subtype="html")
    error = "not attempted"
    for attempt in range(1, retries + 2):
        try:
            _deliver(settings, message)
            return Outcome(True, attempt)
        except smtplib.SMTPResponseException as exc:
            text = exc.smtp_error.decode(errors="replace") if isinstance(
                exc.smtp_error, bytes) else str(exc.smtp_error)
            error = f"SMTP {exc.smtp_code} {text}"
            if exc.smtp_code >= 500:
                return Outcome(False, attempt, error)
        except smtplib.SMTPRecipientsRefused as exc:
            return Outcome(False, attempt, f"recipient refused: {exc.recipients}")
        except (smtplib.SMTPException, OSError) as exc:
            error = f"SMTP connection failed: {exc}"
        if attempt <= retries:
            sleep(backoff * 2 ** (attempt - 1))
    return Outcome(False, retries + 1, error)


def _deliver(settings: Settings, message: EmailMessage) -> None:
    assert settings.smtp_host is not None
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=SMTP_TIMEOUT) as smtp:
        if settings.smtp_starttls:
            smtp.starttls()
        if settings.smtp_user:
            password = settings.smtp_password.get_secret_value() if settings.smtp_password \
                else ""
            smtp.login(settings.smtp_user, password)
        smtp.send_message(message)
