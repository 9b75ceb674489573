"""CLI commands of customer insight: refresh profiles and tags, show the value matrix and
one customer's 360° view (docs/customer-value.md)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import typer
from rich.table import Table

from shequ.core.clock import parse_day
from shequ.core.db import transaction
from shequ.core.errors import ShequError
from shequ.core.money import format_fen
from shequ.core.permissions import CLI_PRINCIPAL
from shequ.domains.insight import service as insight
from shequ.domains.insight import view
from shequ.entrypoints.bootstrap import bootstrap, close
from shequ.entrypoints.cli_common import Home, err, fail, out, progress, settings_for

insight_app = typer.Typer(help="Customer value profiles, tags and the 360° view "
                          "(docs/customer-value.md).", no_args_is_help=True)

AsOf = Annotated[str | None, typer.Option(
    "--as-of", help="Local day YYYY-MM-DD (default: the last day with orders or events)")]


def _as_of(raw: str | None) -> date | None:
    return None if raw is None else parse_day(raw, "as_of")


@insight_app.command("refresh")
def refresh(home: Home = None, as_of: AsOf = None, everything: Annotated[bool, typer.Option(
        "--all", help="Also evaluate membership tiers, lifecycle stages and refresh every "
                      "saved segment, in that order")] = False) -> None:
    """Recompute RFM, CLV, value tiers and tags of every customer (idempotent)."""
    wired = bootstrap(settings_for(home))
    try:
        with progress() as bar:
            task = bar.add_task("customer insight", total=1.0, info="")

            def moved(label: str, done: float) -> None:
                bar.update(task, completed=done, info=label)

            if everything:
                report = insight.refresh_everything(wired, as_of=_as_of(as_of),
                                                    on_progress=moved)
            else:
                report = insight.refresh(wired, as_of=_as_of(as_of), on_progress=moved)
    except ShequError as exc:
        raise fail(exc) from exc
    finally:
        close(wired)
    out.print(report.model_dump_json())


@insight_app.command("matrix")
def matrix(home: Home = None) -> None:
    """The five value tiers and the eight RFM groups with their figures."""
    wired = bootstrap(settings_for(home))
    try:
        with wired.sessions() as session:
            found = insight.value_matrix(session, CLI_PRINCIPAL)
    finally:
        close(wired)
    if not found.buyers:
        err.print("no profiles yet: run `shequ insight refresh` first")
        raise typer.Exit(1)
    for title, rows in (("value tiers", found.tiers), ("RFM groups", found.rfm_groups)):
        table = Table(title=f"{title} (as of {found.as_of})")
        for column in ("code", "name", "customers", "GMV share", "avg spend",
                       "× base", "repurchase"):
            table.add_column(column, justify="left" if column in ("code", "name") else "right")
        for row in rows:
            table.add_row(
                row.code, row.name, f"{row.customers:,}",
                "—" if row.gmv_share is None else f"{row.gmv_share:.1%}",
                "—" if row.average_spend_fen is None else format_fen(row.average_spend_fen),
                "—" if row.spend_multiple is None else f"{row.spend_multiple:.2f}",
                "—" if row.repurchase_rate is None else f"{row.repurchase_rate:.1%}")
        out.print(table)


@insight_app.command("customer")
def customer(external_id: str, home: Home = None) -> None:
    """One customer's 360° view as JSON (profile, tags, stage, tier, segments, orders,
    timeline and growth trajectory)."""
    wired = bootstrap(settings_for(home))
    try:
        with transaction(wired.sessions) as session:
            found = view.customer_360(wired, session, CLI_PRINCIPAL, external_id)
    except ShequError as exc:
        raise fail(exc) from exc
    finally:
        close(wired)
    out.print(found.model_dump_json())


def register_insight_commands(app: typer.Typer) -> None:
    """Attach ``shequ insight …`` to the root CLI."""
    app.add_typer(insight_app, name="insight")
