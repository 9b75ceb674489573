"""CLI commands for content safety: ``shequ moderate FILE`` and the ``moderation`` group
(the queue's figures, the managed lexicon) — docs/moderation.md."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.table import Table

from shequ.core import migrate
from shequ.core.clock import as_utc
from shequ.core.db import transaction
from shequ.core.errors import ShequError, ValidationFailed
from shequ.core.permissions import CLI_PRINCIPAL
from shequ.core.web import Services
from shequ.domains.moderation import incidents, service
from shequ.domains.moderation.incident_schemas import DetectIn
from shequ.domains.moderation.schemas import TermIn, VerdictOut
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
from shequ.text.lexicon import Lexicon

moderation_app = typer.Typer(help="Content safety: the review queue's figures and the "
                                  "managed lexicon (docs/moderation.md).",
                             no_args_is_help=True)
BATCH = 2048


def _wired(home: Path | None) -> Services:
    """The home's services with its schema brought up to date (a fresh home works)."""
    wired = bootstrap(settings_for(home))
    migrate.upgrade(wired.settings.resolved_database_url)
    return wired


def _line(verdict: VerdictOut) -> str:
    return json.dumps({
        "label": verdict.label, "categories": verdict.categories,
        "spans": [s.model_dump() for s in verdict.spans], "offensive": verdict.offensive,
        "level": verdict.level, "reasons": verdict.reasons}, ensure_ascii=False)


def moderate(file: Annotated[str, typer.Argument(help="CSV or JSONL with a 'text' column; "
                                                 "'-' reads standard input")],
             home: Home = None) -> None:
    """One JSON verdict per input row, in order, on standard output: ``label``
    (pass/review/block), ``categories``, ``spans`` (offsets of the original text),
    ``offensive`` (the classifier's probability), ``level`` and ``reasons``. The home's
    managed lexicon terms are used along with the shipped ones."""
    wired = _wired(home)
    try:
        data = read_input(file)
        with transaction(wired.sessions) as session:
            batch: list[str] = []
            for text in text_column(file, data):
                batch.append(text)
                if len(batch) >= BATCH:
                    _write(service.check_batch(session, batch))
                    batch = []
            if batch:
                _write(service.check_batch(session, batch))
    except ShequError as exc:
        raise fail(exc) from exc
    finally:
        close(wired)
    sys.stdout.flush()


def _write(verdicts: list[VerdictOut]) -> None:
    sys.stdout.write("\n".join(_line(v) for v in verdicts) + "\n")


def _minutes(value: float | None) -> str:
    return "–" if value is None else f"{value:,.1f} min"


@moderation_app.command("figures")
def figures(home: Home = None,
            days: Annotated[int, typer.Option(min=1, max=3650, help="Window ending now")] = 7,
            until: Annotated[datetime | None, typer.Option(
                help="End of the window (UTC; default: now)")] = None,
            as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False
            ) -> None:
    """Share decided automatically, time to the final decision, overturn rate and
    throughput per moderator, for the cases submitted in the window."""
    wired = _wired(home)
    try:
        end = as_utc(until) if until else wired.clock.now()
        with transaction(wired.sessions) as session:
            found = service.figures(session, wired.clock, CLI_PRINCIPAL,
                                    end - timedelta(days=days), end)
    except ShequError as exc:
        raise fail(exc) from exc
    finally:
        close(wired)
    if as_json:
        out.print_json(found.model_dump_json())
        return
    table = Table("figure", "value", title=f"moderation, {found.since:%Y-%m-%d} – "
                                           f"{found.until:%Y-%m-%d}")
    share = "–" if found.auto_share is None else f"{found.auto_share:.1%}"
    overturn = "–" if found.overturn_rate is None else f"{found.overturn_rate:.1%}"
    for name, value in (("submitted", f"{found.submitted:,}"),
                        ("decided automatically", share),
                        ("blocked / passed", f"{found.blocked:,} / {found.passed:,}"),
                        ("waiting", f"{found.waiting:,}"),
                        ("time to decision p50 / p95",
                         f"{_minutes(found.p50_minutes)} / {_minutes(found.p95_minutes)}"),
                        ("human decisions p50 / p95", f"{_minutes(found.human_p50_minutes)}"
                                                      f" / {_minutes(found.human_p95_minutes)}"),
                        ("appeals (overturned)", f"{found.appeals} ({overturn})"),
                        ("escalations", f"{found.escalations}")):
        table.add_row(name, value)
    out.print(table)
    if found.moderators:
        people = Table("moderator", "decisions", "per active hour", "median handling")
        for m in found.moderators:
            people.add_row(m.moderator, f"{m.decisions:,}", f"{m.per_hour:.1f}",
                           _minutes(m.median_handling_minutes))
        out.print(people)


@moderation_app.command("add-term")
def add_term(term: Annotated[str, typer.Argument(help="The term or allow-list phrase")],
             category: Annotated[str, typer.Option(
                 help="politics, pornography, violence, gambling, drugs, ads, fraud, abuse, "
                      "other, or allow (an allow-list phrase)")] = "other",
             severity: Annotated[int, typer.Option(min=1, max=3)] = 2,
             pinyin: Annotated[bool, typer.Option("--pinyin", help="Also match the term's "
                                                  "pinyin initials")] = False,
             note: str = "", home: Home = None) -> None:
    """Add a term to the managed lexicon (running servers pick it up within a second)."""
    wired = _wired(home)
    try:
        data = TermIn(term=term, category=category,
                      severity=severity, pinyin=pinyin, note=note)
        with transaction(wired.sessions, CLI_PRINCIPAL.actor, wired.clock) as session:
            made = service.add_term(session, wired.clock, CLI_PRINCIPAL, data)
    except ValidationError as exc:
        problem = exc.errors()[0]
        raise fail(ValidationFailed("invalid_term", problem["msg"],
                                    str(problem["loc"][0]))) from exc
    except ShequError as exc:
        raise fail(exc) from exc
    finally:
        close(wired)
    err.print(f"added term {made.id}: {made.term} ({made.category}, severity {made.severity})")


@moderation_app.command("queue")
def queue(home: Home = None,
          level: Annotated[int | None, typer.Option(min=1, max=3)] = None,
          limit: Annotated[int, typer.Option(min=1, max=500)] = 20) -> None:
    """The waiting cases, the one falling due first on top."""
    wired = _wired(home)
    try:
        with transaction(wired.sessions) as session:
            page = service.list_cases(session, wired.clock, CLI_PRINCIPAL, state="waiting",
                                      level=level, limit=limit)
    except ShequError as exc:
        raise fail(exc) from exc
    finally:
        close(wired)
    table = Table("case", "level", "due", "kind", "text", "reasons",
                  title=f"{page.total:,} waiting")
    for case in page.items:
        due = "–" if case.due_at is None else f"{case.due_at:%m-%d %H:%M}"
        table.add_row(str(case.id), str(case.level), due + (" late" if case.overdue else ""),
                      case.subject_kind, case.text[:40], "; ".join(case.reasons)[:60])
    out.print(table)



@moderation_app.command("detect")
def detect(home: Home = None,
           since: Annotated[datetime | None, typer.Option(
               help="Test windows ending after this (UTC; default: 7 days before --as-of)")]
           = None,
           as_of: Annotated[datetime | None, typer.Option(
               help="Texts up to this instant (UTC; default: now)")] = None) -> None:
    """Find negative-sentiment bursts per product, brand and topic and open or update
    crisis incidents (idempotent; docs/crisis.md)."""
    wired = _wired(home)
    try:
        data = DetectIn(since=as_utc(since) if since else None,
                        as_of=as_utc(as_of) if as_of else None)
        with transaction(wired.sessions, CLI_PRINCIPAL.actor, wired.clock) as session:
            report = incidents.detect_bursts(session, wired.clock, data)
    except ShequError as exc:
        raise fail(exc) from exc
    finally:
        close(wired)
    table = Table("scope", "window (UTC)", "observed", "expected", "p", "outcome",
                  title=f"{report.negative_texts:,} negative texts, {report.series:,} series "
                        f"tested; {report.opened} opened, {report.updated} updated")
    for b in report.bursts:
        table.add_row(f"{b.scope_kind} {b.scope_name}",
                      f"{b.window_start:%m-%d %H:00} – {b.window_end:%m-%d %H:00}",
                      str(b.observed), f"{b.expected:.2f}", f"{b.p_value:.1e}",
                      b.outcome + (f" {b.incident_key}" if b.incident_key else ""))
    out.print(table)


@moderation_app.command("incidents")
def list_incidents(home: Home = None,
                   open_only: Annotated[bool, typer.Option("--open", help="Not closed")]
                   = False) -> None:
    """Crisis incidents, newest first, with their state and SLA."""
    wired = _wired(home)
    try:
        with transaction(wired.sessions) as session:
            page = incidents.list_incidents(session, wired.clock, open_only=open_only,
                                            limit=500)
    except ShequError as exc:
        raise fail(exc) from exc
    finally:
        close(wired)
    table = Table("incident", "scope", "state", "owner", "opened", "respond by",
                  title=f"{page.total:,} incidents")
    for i in page.items:
        due = f"{i.sla_due_at:%m-%d %H:%M}" + (" breached" if i.sla_breached else "")
        table.add_row(i.key, f"{i.scope_kind} {i.scope_name}", i.state, i.owner or "–",
                      f"{i.opened_at:%Y-%m-%d %H:%M}", due)
    out.print(table)


@moderation_app.command("import-terms")
def import_terms(file: Annotated[Path, typer.Argument(help=".tsv/.csv (term, category[, "
                                                       "severity[, pinyin]]) or .txt")],
                 category: Annotated[str, typer.Option(help="Category of .txt lines")]
                 = "other",
                 severity: Annotated[int, typer.Option(min=1, max=3)] = 2,
                 home: Home = None) -> None:
    """Add a file of terms (and allow-list phrases) to the managed lexicon, all or nothing;
    terms already there are skipped. Errors name the line."""
    wired = _wired(home)
    try:
        if not file.is_file():
            raise ValidationFailed("file_missing", f"{file} does not exist", "file")
        parsed = Lexicon.from_file(file, category=category, severity=severity)
        rows = [TermIn(term=t.term, category=t.category,
                       severity=t.severity, pinyin=t.pinyin) for t in parsed.terms]
        rows += [TermIn(term=phrase, category="allow") for phrase in parsed.allow]
        with transaction(wired.sessions, CLI_PRINCIPAL.actor, wired.clock) as session:
            report = service.import_terms(session, wired.clock, CLI_PRINCIPAL, rows)
    except ValidationError as exc:
        problem = exc.errors()[0]
        raise fail(ValidationFailed("invalid_term", problem["msg"],
                                    str(problem["loc"][0]))) from exc
    except ShequError as exc:
        raise fail(exc) from exc
    finally:
        close(wired)
    err.print(f"{report.added} added, {report.skipped} already there; lexicon version "
              f"{report.version}")
