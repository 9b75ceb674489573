"""End to end through the CLI: the demo's planted payment drop raises a red alert on the
payment rate, and its e-mail reaches a real SMTP server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shequ.core.db import transaction
from shequ.core.permissions import CLI_PRINCIPAL
from shequ.core.settings import Settings
from shequ.domains.alerts import service as alerts
from shequ.domains.alerts.schemas import RuleIn
from shequ.entrypoints.bootstrap import bootstrap, close
from shequ.entrypoints.cli import app
from smtp_sink import smtp_server

runner = CliRunner()
DROP_DAYS = ("2026-10-26", "2026-10-27")


def test_planted_payment_drop_mails_a_red_alert(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    built = runner.invoke(app, ["demo", "--size", "small", "--no-serve", "--home", str(home),
                                "--end", "2026-11-20"])
    assert built.exit_code == 0, built.output

    # The demo stored the metrics and judged its starter rules: a red payment-rate alert.
    mailbox_cm = smtp_server()
    mailbox = mailbox_cm.__enter__()
    monkeypatch.setenv("SHEQU_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("SHEQU_SMTP_PORT", str(mailbox.port))
    wired = bootstrap(Settings(home=home))
    try:
        with transaction(wired.sessions, actor="cli") as session:
            page = alerts.list_alerts(session, CLI_PRINCIPAL, wired.settings.zone,
                                      metric="payment_rate", level="red")
            days = {a.bucket_start.astimezone(wired.settings.zone).date().isoformat()
                    for a in page.items}
            assert set(DROP_DAYS) & days
            alerts.create_rule(session, wired, CLI_PRINCIPAL, RuleIn(
                name="支付转化率邮件", metric="payment_rate", grain="day", mode="baseline",
                emails=["ops@shequ.test"]))
    finally:
        close(wired)

    refreshed = runner.invoke(app, ["metrics", "refresh", "--home", str(home),
                                    "--from", "2026-10-20", "--to", "2026-11-02"])
    assert refreshed.exit_code == 0, refreshed.output
    assert json.loads(refreshed.stdout.strip().splitlines()[-1])["values_written"] == 14 * 25 * 18

    try:
        judged = runner.invoke(app, ["alerts", "evaluate", "--home", str(home),
                                     "--from", "2026-10-20", "--to", "2026-11-02"])
    finally:
        mailbox_cm.__exit__(None, None, None)
    assert judged.exit_code == 0, judged.output
    report = json.loads(judged.stdout.strip().splitlines()[-1])
    assert report["delivery"]["failed"] == 0
    assert report["delivery"]["sent"] >= 1
    subjects = [str(message["Subject"]) for _, message in mailbox.messages]
    red = [s for s in subjects if s.startswith("[红色预警] 支付转化率")]
    assert red, subjects
    assert any(day in red[0] for day in DROP_DAYS)
    assert all(rcpts == ["ops@shequ.test"] for rcpts, _ in mailbox.messages)

    again = runner.invoke(app, ["alerts", "evaluate", "--home", str(home),
                                "--from", "2026-10-20", "--to", "2026-11-02"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout.strip().splitlines()[-1])["raised"] == 0  # idempotent


def test_cli_refuses_a_bad_day(tmp_path: Path) -> None:
    result = runner.invoke(app, ["metrics", "refresh", "--home", str(tmp_path / "h"),
                                 "--from", "2026-13-01"])
    assert result.exit_code == 1
    assert "from: '2026-13-01' is not a date" in result.output
