"""CLI commands of saved segments: list, create, preview, refresh, members, export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError as PydanticValidationError
from rich.table import Table

from shequ.core.errors import ShequError, ValidationFailed
from shequ.core.permissions import CLI_PRINCIPAL
from shequ.domains.segments import service as segments
from shequ.domains.segments.schemas import RefreshReport, RefreshSummary, SegmentIn
from shequ.entrypoints.bootstrap import bootstrap, close
from shequ.entrypoints.cli_common import Home, err, fail, out, progress, settings_for

segments_app = typer.Typer(help="Saved customer segments (docs/segments.md).",
                           no_args_is_help=True)
RuleOption = Annotated[str, typer.Option("--rule", help="The rule: a JSON object, or the "
                                         "path of a JSON file holding one")]


def _rule(raw: str) -> dict[str, Any]:
    """The rule given inline (``{...}``) or as a file path."""
    text = raw
    if not raw.lstrip().startswith("{"):
        path = Path(raw)
        if not path.is_file():
            raise ValidationFailed("rule_not_found", f"no JSON object and no file {raw!r}",
                                   "rule")
        text = path.read_text(encoding="utf-8-sig")
    try:
        found = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationFailed("bad_json", f"the rule is not JSON: {exc}", "rule") from exc
    if not isinstance(found, dict):
        raise ValidationFailed("bad_rule", "the rule must be a JSON object", "rule")
    return found


def _segment_in(raw: dict[str, Any]) -> SegmentIn:
    try:
        return SegmentIn.model_validate(raw)
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        attr = ".".join(str(part) for part in first["loc"]) or None
        raise ValidationFailed("invalid_segment", str(first["msg"]), attr) from exc


@segments_app.command("list")
def list_cmd(home: Home = None, as_json: Annotated[bool, typer.Option(
                 "--json", help="One JSON object per line instead of a table")] = False,
             archived: Annotated[bool, typer.Option(help="List archived segments")] = False
             ) -> None:
    """The segments with their stored size and last refresh."""
    wired = bootstrap(settings_for(home))
    try:
        found = segments.list_segments(wired, CLI_PRINCIPAL, archived=archived)
    except ShequError as exc:
        raise fail(exc) from exc
    finally:
        close(wired)
    if as_json:
        for segment in found:
            out.print(segment.model_dump_json())
        return
    table = Table("id", "key", "name", "size", "refreshed at", "rule")
    for segment in found:
        table.add_row(str(segment.id), segment.key, segment.name,
                      "-" if segment.size is None else f"{segment.size:,}",
                      segment.refreshed_at.isoformat() if segment.refreshed_at else "-",
                      segment.summary)
    out.print(table)


@segments_app.command("create")
def create_cmd(name: Annotated[str, typer.Argument(help="The segment's name")],
               rule: RuleOption, home: Home = None,
               key: Annotated[str | None, typer.Option(help="The key (a-z, 0-9, - and _; "
                                                      "default: derived from the name)")] = None,
               description: Annotated[str, typer.Option(help="What it is for")] = "") -> None:
    """Save a segment and compute its members; prints the segment as JSON."""
    wired = bootstrap(settings_for(home))
    try:
        data = _segment_in({"name": name, "rule": _rule(rule), "key": key,
                            "description": description})
        created = segments.create_segment(wired, CLI_PRINCIPAL, data)
    except ShequError as exc:
        raise fail(exc) from exc
    finally:
        close(wired)
    out.print(created.model_dump_json())


@segments_app.command("preview")
def preview_cmd(rule: RuleOption, home: Home = None) -> None:
    """Size and first members of a rule, without saving it."""
    wired = bootstrap(settings_for(home))
    try:
        found = segments.preview(wired, CLI_PRINCIPAL, _rule(rule))
    except ShequError as exc:
        raise fail(exc) from exc
    finally:
        close(wired)
    out.print(found.model_dump_json())


def _refresh_with_bar(wired: Any, force: bool) -> RefreshSummary:
    with progress() as bar:
        task = bar.add_task("refreshing segments", total=None, info="")

        def report(done: int, total: int, last: RefreshReport) -> None:
            bar.update(task, completed=done, total=total,
                       info=f"{done}/{total} {last.key or last.segment_id}: {last.status}")

        return segments.refresh_all(wired, force=force, on_progress=report)


@segments_app.command("refresh")
def refresh_cmd(segment_id: Annotated[int | None, typer.Argument(
                    help="The segment to refresh (or --all)")] = None,
                home: Home = None,
                every: Annotated[bool, typer.Option("--all", help="Every active segment")] = False,
                force: Annotated[bool, typer.Option(help="Recompute even when the inputs "
                                                   "have not changed")] = False) -> None:
    """Bring members up to date, writing only the difference; prints the report as JSON."""
    if (segment_id is None) == (not every):
        err.print("[red]error[/red]: give a segment id or --all (not both)")
        raise typer.Exit(2)
    wired = bootstrap(settings_for(home))
    try:
        if segment_id is not None:
            result: RefreshReport | RefreshSummary = segments.refresh(
                wired, segment_id, principal=CLI_PRINCIPAL, force=force)
        else:
            result = _refresh_with_bar(wired, force)
    except ShequError as exc:
        raise fail(exc) from exc
    finally:
        close(wired)
    out.print(result.model_dump_json())


@segments_app.command("members")
def members_cmd(segment_id: Annotated[int, typer.Argument(help="The segment")],
                home: Home = None,
                limit: Annotated[int, typer.Option(help="How many (in id order)")] = 100,
                after: Annotated[str | None, typer.Option(
                    help="Start after this customer id")] = None) -> None:
    """Customer ids of the segment, one per line."""
    wired = bootstrap(settings_for(home))
    try:
        page = segments.members(wired, CLI_PRINCIPAL, segment_id, after=after,
                                limit=limit)
    except ShequError as exc:
        raise fail(exc) from exc
    finally:
        close(wired)
    for customer_id in page.items:
        out.print(customer_id, markup=False, highlight=False)
    if page.next_after is not None:
        err.print(f"more: --after {page.next_after}")


@segments_app.command("export")
def export_cmd(segment_id: Annotated[int, typer.Argument(help="The segment")],
               output: Annotated[Path, typer.Option("-o", "--output", dir_okay=False,
                                                    help="The CSV file to write")],
               home: Home = None) -> None:
    """Write the members with city, RFM group, value tier, lifecycle and tier as CSV."""
    wired = bootstrap(settings_for(home))
    try:
        _filename, chunks = segments.export_csv(wired, CLI_PRINCIPAL, segment_id)
        rows = -1  # the header line
        with output.open("w", encoding="utf-8", newline="") as handle:
            for chunk in chunks:
                handle.write(chunk)
                rows += chunk.count("\n")
    except ShequError as exc:
        raise fail(exc) from exc
    finally:
        close(wired)
    err.print(f"wrote {rows:,} members to {output}")


def register_segment_commands(app: typer.Typer) -> None:
    """Attach ``shequ segments …`` to the root CLI."""
    app.add_typer(segments_app, name="segments")
