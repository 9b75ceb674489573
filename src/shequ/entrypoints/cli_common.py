"""Pieces every CLI command shares: consoles, ``--home``, error printing, progress bars."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from shequ.core.errors import ShequError
from shequ.core.settings import Settings, load_settings

out = Console(soft_wrap=True)  # JSON lines stay whole whatever the terminal width
err = Console(stderr=True)

Home = Annotated[Path | None, typer.Option("--home", envvar="SHEQU_HOME",
                                           help="Data directory (default ./shequ-data).")]


def settings_for(home: Path | None) -> Settings:
    """Settings for ``--home``, with a readable message instead of a traceback."""
    try:
        return load_settings(home)
    except ValueError as exc:
        err.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from exc


def fail(exc: ShequError) -> typer.Exit:
    """Print a domain error as ``field: reason`` and exit 1."""
    err.print(f"[red]error[/red] ({exc.code}): {exc}")
    return typer.Exit(1)


def progress() -> Progress:
    """A Rich progress bar on stderr (stdout stays clean for scripts)."""
    return Progress(TextColumn("{task.description}"), BarColumn(),
                    TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=err,
                    transient=False)


