"""CLI commands of the membership programme: evaluate days, per-tier figures, the rules."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Annotated

import typer

from shequ.core.clock import parse_day
from shequ.core.db import transaction
from shequ.core.errors import ShequError, ValidationFailed
from shequ.domains.membership import service as membership
from shequ.entrypoints.bootstrap import bootstrap, close
from shequ.entrypoints.cli_common import Home, err, fail, out, progress, settings_for

membership_app = typer.Typer(help="Membership tiers (docs/membership.md).",
                             no_args_is_help=True)
DayOption = Annotated[str | None, typer.Option("--day", help="Local day YYYY-MM-DD "
                                               "(default: yesterday)")]


def _days(day: str | None, day_from: str | None, day_to: str | None, yesterday: date
          ) -> list[date]:
    """The days asked for: ``--day``, or ``--from``/``--to`` (both included), else yesterday."""
    if day is not None and (day_from is not None or day_to is not None):
        raise ValidationFailed("conflicting_options", "give --day or --from/--to, not both",
                               "day")
    if day is not None:
        return [parse_day(day, "day")]
    first = parse_day(day_from, "from") if day_from is not None else yesterday
    last = parse_day(day_to, "to") if day_to is not None else yesterday
    if last < first:
        raise ValidationFailed("bad_range", f"--to {last} is before --from {first}", "to")
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


@membership_app.command("evaluate")
def evaluate(home: Home = None, day: DayOption = None,
             day_from: Annotated[str | None, typer.Option("--from", help="First local day")] = None,
             day_to: Annotated[str | None, typer.Option("--to", help="Last local day")] = None
             ) -> None:
    """Evaluate every customer's tier on each day, in order (one JSON report per day)."""
    wired = bootstrap(settings_for(home))
    try:
        days = _days(day, day_from, day_to, membership.due_day(wired))
        reports = []
        with progress() as bar:
            task = bar.add_task("evaluating tiers", total=len(days), info="")
            for each in days:
                reports.append(membership.evaluate(wired, each))
                bar.update(task, advance=1, info=f"{each} · {reports[-1].changes} changes")
    except ShequError as exc:
        raise fail(exc) from exc
    finally:
        close(wired)
    for report in reports:
        out.print(report.model_dump_json())


@membership_app.command("figures")
def figures(home: Home = None, day: DayOption = None) -> None:
    """Per-tier customers, spend share, spend multiple over non-members, repurchase rate."""
    wired = bootstrap(settings_for(home))
    try:
        when = parse_day(day, "day") if day is not None else membership.due_day(wired)
        with transaction(wired.sessions) as session:
            result = membership.figures(session, when, zone=wired.settings.zone)
    except ShequError as exc:
        raise fail(exc) from exc
    finally:
        close(wired)
    out.print(result.model_dump_json())


@membership_app.command("rules")
def rules(home: Home = None, install: Annotated[bool, typer.Option(
              "--install", help="File the default rules for tiers that have none")] = False
          ) -> None:
    """Show the tier rules (JSON, lowest tier first); ``--install`` files the defaults."""
    wired = bootstrap(settings_for(home))
    try:
        with transaction(wired.sessions, actor="cli", clock=wired.clock) as session:
            found = (membership.install_default_rules(session, wired.clock) if install
                     else membership.list_rules(session))
    finally:
        close(wired)
    if not found:
        err.print("no tier rules yet: run `shequ membership rules --install`")
    out.print(json.dumps([rule.model_dump(mode="json") for rule in found], ensure_ascii=False))


def register_membership_commands(app: typer.Typer) -> None:
    """Attach ``shequ membership …`` to the root CLI."""
    app.add_typer(membership_app, name="membership")
