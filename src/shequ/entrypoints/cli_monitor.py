"""CLI commands of the monitoring loop: recompute metrics, evaluate alert rules."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Annotated

import typer

from shequ.core.clock import parse_day
from shequ.core.errors import ShequError
from shequ.domains.alerts import service as alerts
from shequ.domains.events import service as events
from shequ.entrypoints.bootstrap import bootstrap, close
from shequ.entrypoints.cli_common import Home, err, fail, out, settings_for

metrics_app = typer.Typer(help="The 18 core metrics (docs/metrics.md).", no_args_is_help=True)
alerts_app = typer.Typer(help="Alert rules and their evaluation (docs/alerts.md).",
                         no_args_is_help=True)



def _day(raw: str | None, default: date, field: str) -> date:
    return default if raw is None else parse_day(raw, field)


@metrics_app.command("refresh")
def metrics_refresh(home: Home = None, day_from: Annotated[str | None, typer.Option(
                        "--from", help="First local day YYYY-MM-DD (default: yesterday)")] = None,
                    day_to: Annotated[str | None, typer.Option(
                        "--to", help="Last local day YYYY-MM-DD (default: today)")] = None) -> None:
    """Recompute the hourly and daily values of the 18 metrics over local days (idempotent)."""
    wired = bootstrap(settings_for(home))
    try:
        today = wired.clock.now().astimezone(wired.settings.zone).date()
        first = _day(day_from, today - timedelta(days=1), "from")
        last = _day(day_to, today, "to")
        err.print(f"computing metrics for {first} … {last}")
        written = events.refresh_metrics(wired, first, last)
    except ShequError as exc:
        raise fail(exc) from exc
    finally:
        close(wired)
    out.print(json.dumps({"from": first.isoformat(), "to": last.isoformat(),
                          "values_written": written}))


@alerts_app.command("evaluate")
def alerts_evaluate(home: Home = None, day_from: Annotated[str | None, typer.Option(
                        "--from", help="First local day YYYY-MM-DD (default: yesterday)")] = None,
                    day_to: Annotated[str | None, typer.Option(
                        "--to", help="Last local day YYYY-MM-DD (default: yesterday)")] = None
                    ) -> None:
    """Judge the daily rules on each day of the range: file alerts, send notifications."""
    wired = bootstrap(settings_for(home))
    try:
        yesterday = wired.clock.now().astimezone(wired.settings.zone).date() - timedelta(days=1)
        report = alerts.evaluate_days(wired, _day(day_from, yesterday, "from"),
                                      _day(day_to, yesterday, "to"))
    except ShequError as exc:
        raise fail(exc) from exc
    finally:
        close(wired)
    out.print(report.model_dump_json())


def register_monitor_commands(app: typer.Typer) -> None:
    """Attach ``shequ metrics …`` and ``shequ alerts …`` to the root CLI."""
    app.add_typer(metrics_app, name="metrics")
    app.add_typer(alerts_app, name="alerts")
