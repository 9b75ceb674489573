"""CLI commands for Chinese text: review sentiment scoring and a shop's own sentiment model."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from shequ.core.db import transaction
from shequ.core.errors import ShequError, ValidationFailed
from shequ.core.importing import read_rows
from shequ.domains.content.sentiment_training import active_model, train_shop_model
from shequ.entrypoints.bootstrap import bootstrap, close
from shequ.entrypoints.cli_common import Home, err, fail, out, settings_for

nlp_app = typer.Typer(help="Chinese text: review sentiment (docs/sentiment.md).",
                      no_args_is_help=True)
BATCH = 4096


def _input_name(file: str, data: bytes) -> str:
    """A file name whose suffix tells ``read_rows`` the format (stdin: sniffed)."""
    if file != "-":
        return file
    start = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    return "stdin.jsonl" if start == b"{" else "stdin.csv"


def _texts(file: str, data: bytes) -> Iterator[str]:
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


def _write_scores(texts: list[str], model: Any) -> None:
    lines = []
    for probability in model.predict_proba(texts):
        value = float(probability)
        lines.append(json.dumps({"label": "pos" if value >= 0.5 else "neg",
                                 "score": round(value, 6)}))
    sys.stdout.write("\n".join(lines) + "\n")


@nlp_app.command("sentiment")
def sentiment(file: Annotated[str, typer.Argument(help="CSV or JSONL with a 'text' column; "
                                                  "'-' reads standard input")],
              home: Home = None) -> None:
    """Score each row: one JSON line ``{"label": "pos"|"neg", "score": P(positive)}`` per
    input row, in order (the home's own model when it has one)."""
    settings = settings_for(home)
    try:
        if file == "-":
            data = sys.stdin.buffer.read()
        else:
            path = Path(file)
            if not path.is_file():
                raise ValidationFailed("file_missing", f"{file} does not exist", "file")
            data = path.read_bytes()
        model = active_model(settings.home)
        batch: list[str] = []
        for text in _texts(file, data):
            batch.append(text)
            if len(batch) >= BATCH:
                _write_scores(batch, model)
                batch = []
        if batch:
            _write_scores(batch, model)
    except ShequError as exc:
        raise fail(exc) from exc
    sys.stdout.flush()


@nlp_app.command("train-sentiment")
def train_sentiment(
    home: Home = None,
    held_out: Annotated[float, typer.Option(help="Share of reviews kept for measuring")] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed of the held-out split")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Save even when the default model "
                                        "is more accurate on the held-out reviews")] = False,
    min_per_class: Annotated[int, typer.Option(help="Least reviews rated 1-2 and rated 4-5")]
    = 200,
) -> None:
    """Train the shop's sentiment model from its rated reviews (1-2 stars negative, 4-5
    positive) and keep it only if it beats the default on held-out reviews."""
    wired = bootstrap(settings_for(home))
    try:
        with err.status("training the shop's sentiment model") as status, \
                transaction(wired.sessions) as session:
            report = train_shop_model(
                session, wired.settings.home, held_out=held_out, seed=seed, force=force,
                min_per_class=min_per_class,
                status=lambda message: status.update(f"sentiment: {message}"))
    except ShequError as exc:
        raise fail(exc) from exc
    finally:
        close(wired)
    table = Table("model", "held-out accuracy", "macro-F1", title=(
        f"{report.positives} positive / {report.negatives} negative reviews "
        f"({report.neutral_skipped} rated 3 skipped); {report.held_out_rows} held out"))
    table.add_row("shop", f"{report.shop_model.accuracy:.4f}", f"{report.shop_model.macro_f1:.4f}")
    table.add_row("default", f"{report.default_model.accuracy:.4f}",
                  f"{report.default_model.macro_f1:.4f}")
    err.print(table)
    err.print(report.reason + (f": {report.path}" if report.path else ""))
    out.print(report.model_dump_json())
