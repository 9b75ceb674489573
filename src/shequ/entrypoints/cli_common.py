"""Pieces every CLI command shares: consoles, ``--home``, error printing, progress bars,
reading a CSV / JSONL file (or standard input) with a ``text`` column."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from shequ.core.errors import ShequError, ValidationFailed
from shequ.core.importing import read_rows
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


def read_input(file: str) -> bytes:
    """The bytes of ``file``, or of standard input for ``-``."""
    if file == "-":
        return sys.stdin.buffer.read()
    path = Path(file)
    if not path.is_file():
        raise ValidationFailed("file_missing", f"{file} does not exist", "file")
    return path.read_bytes()


def _input_name(file: str, data: bytes) -> str:
    """A file name whose suffix tells ``read_rows`` the format (stdin: sniffed)."""
    if file != "-":
        return file
    start = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    return "stdin.jsonl" if start == b"{" else "stdin.csv"


def text_column(file: str, data: bytes) -> Iterator[str]:
    """The ``text`` value of every row, in order; a missing column or bad line is an error."""
    for line, record in read_rows(_input_name(file, data), data):
        if isinstance(record, str):
            raise ValidationFailed("bad_line", f"line {line}: {record}", "file")
        if "text" not in record:
            columns = ", ".join(sorted(record)) or "none"
            raise ValidationFailed("missing_column",
                                   f"line {line} has no 'text' column (columns: {columns})",
                                   "text")
        value: Any = record["text"]
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise ValidationFailed("invalid_text",
                                   f"line {line}: must be a string, not {type(value).__name__}",
                                   "text")
        yield value
