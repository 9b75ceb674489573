"""CLI commands of the customer lifecycle: refresh stages, print a snapshot or transitions."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated

import typer
from rich.table import Table

from shequ.core.clock import parse_day
from shequ.core.db import transaction
from shequ.core.errors import ShequError
from shequ.core.web import Services
from shequ.domains.lifecycle import service as lifecycle
from shequ.entrypoints.bootstrap import bootstrap, close
from shequ.entrypoints.cli_common import Home, err, fail, out, progress, settings_for

lifecycle_app = typer.Typer(help="Customer lifecycle stages (docs/lifecycle.md).",
                            no_args_is_help=True)
FromDay = Annotated[str | None, typer.Option("--from", help="First local day YYYY-MM-DD")]
ToDay = Annotated[str | None, typer.Option("--to", help="Last local day YYYY-MM-DD")]


def _range(wired: Services, day_from: str | None, day_to: str | None) -> tuple[date, date]:
    """The days given, the data window's bounds for those omitted."""
    if day_from is not None and day_to is not None:
        return parse_day(day_from, "from"), parse_day(day_to, "to")
    first, last = lifecycle.data_window(wired)
    return (parse_day(day_from, "from") if day_from is not None else first,
            parse_day(day_to, "to") if day_to is not None else last)


@lifecycle_app.command("refresh")
def refresh(home: Home = None, day_from: FromDay = None, day_to: ToDay = None) -> None:
    """Judge every customer's stage on each day of the range (default: the data window)
    and store the changes (idempotent)."""
    wired = bootstrap(settings_for(home))
    try:
        first, last = _range(wired, day_from, day_to)
        with progress() as bar:
            task = bar.add_task("lifecycle", total=(last - first).days + 1, info="")

            def advance(done: int, days: int) -> None:
                bar.update(task, completed=done, info=f"{done}/{days} days")

            report = lifecycle.refresh(wired, first, last, on_progress=advance)
    except ShequError as exc:
        raise fail(exc) from exc
    finally:
        close(wired)
    out.print(report.model_dump_json())


@lifecycle_app.command("snapshot")
def snapshot(home: Home = None, day: Annotated[str | None, typer.Option(
                 "--day", help="Local day YYYY-MM-DD (default: yesterday)")] = None) -> None:
    """Customers per stage on a day."""
    wired = bootstrap(settings_for(home))
    try:
        yesterday = wired.clock.now().astimezone(wired.settings.zone).date() - timedelta(days=1)
        when = parse_day(day, "day") if day is not None else yesterday
        with transaction(wired.sessions) as session:
            found = lifecycle.snapshot(session, when)
    except ShequError as exc:
        raise fail(exc) from exc
    finally:
        close(wired)
    table = Table("stage", "customers", title=f"lifecycle on {found.day}")
    for stage, count in found.counts.items():
        table.add_row(stage, str(count))
    err.print(table)
    out.print(found.model_dump_json())


@lifecycle_app.command("transitions")
def transitions(day_from: Annotated[str, typer.Option("--from", help="Earlier local day")],
                day_to: Annotated[str, typer.Option("--to", help="Later local day")],
                home: Home = None) -> None:
    """The stage-to-stage matrix between two days (rows: from, columns: to)."""
    wired = bootstrap(settings_for(home))
    try:
        first: date = parse_day(day_from, "from")
        last: date = parse_day(day_to, "to")
        with transaction(wired.sessions) as session:
            found = lifecycle.transitions(session, first, last)
    except ShequError as exc:
        raise fail(exc) from exc
    finally:
        close(wired)
    table = Table("from \\ to", *found.stages, title=f"{found.from_day} → {found.to_day}")
    for stage, row in zip(found.stages, found.matrix, strict=True):
        table.add_row(stage, *(str(count) for count in row))
    err.print(table)
    out.print(found.model_dump_json())


def register_lifecycle_commands(app: typer.Typer) -> None:
    """Attach ``shequ lifecycle …`` to the root CLI."""
    app.add_typer(lifecycle_app, name="lifecycle")
