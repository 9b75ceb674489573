"""CLI commands for Chinese text: review sentiment scoring and a shop's own sentiment model."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from shequ.core.db import transaction
from shequ.core.errors import ShequError
from shequ.domains.content.sentiment_training import active_model, train_shop_model
from shequ.entrypoints.bootstrap import bootstrap, close
from shequ.entrypoints.cli_common import (
    Home,
    err,
    fail,
    out,
    read_input,
    settings_for,
    text_column,
)

nlp_app = typer.Typer(help="Chinese text: review sentiment (docs/sentiment.md).",
                      no_args_is_help=True)
BATCH = 4096


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
        data = read_input(file)
        model = active_model(settings.home)
        batch: list[str] = []
        for text in text_column(file, data):
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
