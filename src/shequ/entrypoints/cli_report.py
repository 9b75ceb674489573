"""``shequ report …``: printable reports (HTML and PDF) generated from the data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shequ.core.db import transaction
from shequ.core.errors import ShequError
from shequ.core.permissions import CLI_PRINCIPAL
from shequ.domains.content import needs
from shequ.entrypoints.bootstrap import bootstrap, close
from shequ.entrypoints.cli_common import Home, err, fail, out, settings_for
from shequ.entrypoints.reports.needs import write_needs_report

report_app = typer.Typer(help="Printable reports (HTML + PDF).", no_args_is_help=True)


@report_app.command("needs")
def needs_cmd(
    quarter: Annotated[str | None, typer.Option(
        "--quarter", help="Quarter such as 2026Q3 (default: the last quarter with content)")
    ] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for the files")] = Path("."),
    home: Home = None,
) -> None:
    """The quarterly Needs White Paper: writes needs-<quarter>.html, .pdf and .json (its
    data), prints their paths."""
    wired = bootstrap(settings_for(home))
    zone = wired.settings.zone
    try:
        with transaction(wired.sessions) as session:
            chosen = quarter if quarter is not None else needs.default_quarter(session,
                                                                               zone=zone)
            err.print(f"analysing reviews and posts of {chosen} …")
            report = needs.needs_report(session, CLI_PRINCIPAL, chosen, zone=zone)
    except ShequError as exc:
        raise fail(exc) from exc
    finally:
        close(wired)
    err.print(f"rendering {report.counts.texts} texts into HTML and PDF …")
    for path in write_needs_report(report, out_dir):
        out.print(str(path))
