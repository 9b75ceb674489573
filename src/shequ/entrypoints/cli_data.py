"""CLI commands that move data or run servers: serve, demo, import, worker."""

from __future__ import annotations

import json
import secrets
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn
from rich.table import Table

from shequ.core import auth, migrate
from shequ.core.db import transaction
from shequ.core.errors import ShequError
from shequ.core.settings import Settings
from shequ.core.web import Services
from shequ.entrypoints.bootstrap import bootstrap, close
from shequ.entrypoints.cli_common import Home, err, fail, out, progress, settings_for
from shequ.entrypoints.registry import importers
from shequ.text.warmup import warm_up

DEMO_USER = "admin"


def _serve(settings: Settings, wired: Services, host: str, port: int, access_log: bool) -> None:
    from shequ.entrypoints.app import create_app
    from shequ.entrypoints.worker import build_queue, start_embedded_consumer

    warm_up()  # jieba and the text models load before the first request, not during it
    consumer = None
    if settings.resolved_queue_url.startswith("sqlite"):
        consumer = start_embedded_consumer(build_queue(wired))
    try:
        uvicorn.run(create_app(services=wired), host=host, port=port, access_log=access_log,
                    log_level="info", timeout_graceful_shutdown=5)
    finally:
        if consumer is not None:
            consumer.stop(graceful=True)
        close(wired)


def serve(home: Home = None, host: str = "127.0.0.1", port: int = 8000,
          access_log: bool = False) -> None:
    """Serve the API and the console (migrates the schema first)."""
    settings = settings_for(home)
    settings.ensure_home()
    migrate.upgrade(settings.resolved_database_url)
    err.print(f"shequ serving http://{host}:{port}/ (data in {settings.home.resolve()})")
    _serve(settings, bootstrap(settings), host, port, access_log)


def _reset_demo_login(wired: Services) -> str:
    password = secrets.token_urlsafe(9)
    with transaction(wired.sessions, actor="cli") as session:
        auth.ensure_user(session, wired.clock, username=DEMO_USER, password=password,
                         role="admin", display_name="演示管理员")
    return password


def _load_demo(wired: Services, size: str, seed: int, end: date) -> dict[str, Any]:
    from shequ.demo.loader import load_demo

    with progress() as bar:
        tasks: dict[str, Any] = {}

        def report(step: str, done: int, total: int) -> None:
            if step not in tasks:
                tasks[step] = bar.add_task(step, total=total or None, info="")
            bar.update(tasks[step], completed=done, info=f"{done:,}/{total:,}")

        return load_demo(wired, size=size, seed=seed, end=end, on_progress=report)


def demo(
    size: Annotated[str, typer.Option(help="small | default | large")] = "default",
    seed: Annotated[int, typer.Option(help="Same seed and end, same community")] = 7,
    end: Annotated[str | None, typer.Option(help="Last day of the 90-day window, YYYY-MM-DD "
                                            "(default: yesterday in the deployment time zone)")
                   ] = None,
    home: Home = None,
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve")] = True,
    host: str = "127.0.0.1",
    port: int = 8000,
) -> None:
    """Build a demo community on the embedded default and serve the console."""
    if size not in {"small", "default", "large"}:
        err.print("[red]error[/red]: --size must be small, default or large")
        raise typer.Exit(2)
    settings = settings_for(home)
    settings.ensure_home()
    migrate.upgrade(settings.resolved_database_url)
    wired = bootstrap(settings)
    marker = settings.home / "demo.json"
    if marker.exists():
        summary = json.loads(marker.read_text())
        err.print(f"demo community already built in {settings.home} ({summary['size']}, "
                  f"seed {summary['seed']}); reusing it")
    else:
        summary = _load_demo(wired, size, seed, _demo_end(settings, wired, end))
        marker.write_text(json.dumps(summary, ensure_ascii=False, indent=2, default=str))
        _print_summary(summary)
    password = _reset_demo_login(wired)
    out.print(f"console: http://{host}:{port}/console/  login: {DEMO_USER} / {password}")
    if serve_after:
        _serve(settings, wired, host, port, access_log=False)
    else:
        close(wired)


def _demo_end(settings: Settings, wired: Services, end: str | None) -> date:
    if end is None:
        return wired.clock.now().astimezone(settings.zone).date() - timedelta(days=1)
    try:
        return date.fromisoformat(end)
    except ValueError as exc:
        err.print(f"[red]error[/red]: --end must be a date like 2026-11-20, not {end!r}")
        raise typer.Exit(2) from exc


def _print_summary(summary: dict[str, Any]) -> None:
    table = Table("what", "rows", title=f"demo community ({summary['size']}, seed "
                  f"{summary['seed']})")
    for name, count in summary["counts"].items():
        table.add_row(name, f"{count:,}")
    err.print(table)
    moderation = summary.get("moderation")
    if moderation and moderation.get("auto_share") is not None:
        def minutes(key: str) -> str:
            value = moderation.get(key)
            return "–" if value is None else f"{value:,.1f} min"
        err.print(f"moderation: {moderation['submitted']:,} texts checked, "
                  f"{moderation['auto_share']:.1%} decided automatically; time to the final "
                  f"decision p50 {minutes('p50_minutes')}, p95 {minutes('p95_minutes')}; "
                  f"decided by a moderator p50 {minutes('human_p50_minutes')}, "
                  f"p95 {minutes('human_p95_minutes')}")
    _print_commerce(summary.get("commerce") or {})


def _print_commerce(commerce: dict[str, Any]) -> None:
    """One line per commerce area the demo built (docs/demo.md)."""
    lines = []
    if points := commerce.get("points"):
        lines.append(f"points: {points['earn_movements']:,} earnings, "
                     f"{points['redemptions']:,} rewards redeemed, "
                     f"{points['codes_verified']:,} store codes used")
    if groups := commerce.get("group_buying"):
        lines.append(f"group buying: {groups['groups']:,} groups on {groups['offers']} offers, "
                     f"{groups['succeeded']:,} succeeded, {groups['expired']:,} expired and "
                     f"refunded, {groups['new_customers']:,} new customers")
    if coupons := commerce.get("coupons"):
        lines.append(f"coupons: {coupons['issued']:,} issued on {coupons['templates']} "
                     f"templates, {coupons['redeemed']:,} redeemed at checkout")
    if referrals := commerce.get("referrals"):
        lines.append(f"referrals: {referrals['promoters']} promoters, "
                     f"{referrals['commissions']} commissions ({referrals['settled']} settled), "
                     f"invite task with {referrals['invitees']} invitees")
    if campaigns := commerce.get("campaigns"):
        conflicts = sum(campaigns["conflicts"].values())
        lines.append(f"campaigns: {campaigns['campaigns']} ({campaigns['esg']} ESG), "
                     f"{conflicts} calendar conflicts to look at")
    for line in lines:
        err.print(line)


def _import_events(wired: Services, path: Path, file_format: str) -> dict[str, Any]:
    from shequ.domains.events import service as events

    with progress() as bar:
        task = bar.add_task(f"events from {path.name}", total=None, info="")

        def report(rows: int, accepted: int, rejected: int) -> None:
            bar.update(task, completed=rows,
                       info=f"{rows:,} rows, {accepted:,} new, {rejected:,} rejected")

        if file_format == "taobao":
            return events.import_taobao(wired, path, on_progress=report)
        return events.import_file(wired, path, on_progress=report)


def import_cmd(
    kind: Annotated[str, typer.Argument(help="events, or an entity: products, customers, ...")],
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    skip_invalid: Annotated[bool, typer.Option(help="Keep the good rows of a file "
                                               "with bad ones")] = False,
    file_format: Annotated[str, typer.Option(
        "--format", help="events only: 'shequ' (our schema) or 'taobao' (the public "
        "UserBehavior log)")] = "shequ",
    home: Home = None,
) -> None:
    """Import an ERP/CRM/shop export (CSV, JSONL; events also Parquet)."""
    wired = bootstrap(settings_for(home))
    kinds = importers()
    try:
        if file_format not in {"shequ", "taobao"} or (file_format != "shequ" and kind != "events"):
            err.print("[red]error[/red]: --format is 'shequ' or 'taobao' (events only)")
            raise typer.Exit(2)
        if kind == "events":
            report = _import_events(wired, file, file_format)
        elif kind in kinds:
            with transaction(wired.sessions, actor="cli") as session:
                report = kinds[kind](session, file.name, file.read_bytes(),
                                     skip_invalid=skip_invalid).as_dict()
        else:
            err.print(f"[red]error[/red]: kind must be one of events, {', '.join(sorted(kinds))}")
            raise typer.Exit(2)
    except ShequError as exc:
        raise fail(exc) from exc
    finally:
        close(wired)
    _print_report(kind, report)
    if report.get("rejected_count") and not report.get("committed", True):
        raise typer.Exit(1)


def _print_report(kind: str, report: dict[str, Any]) -> None:
    rejected = report.get("rejected", [])
    for row in rejected[:50]:
        err.print(f"line {row['line']}: {row['field']}: {row['reason']}")
    if len(rejected) > 50:
        err.print(f"… and {report['rejected_count'] - 50} more rejected rows")
    if report.get("committed") is False:
        err.print(f"[red]nothing imported[/red]: {report['rejected_count']} bad row(s); fix them "
                  "or pass --skip-invalid to keep the good rows")
    summary = {k: v for k, v in report.items() if k != "rejected"}
    out.print(json.dumps({"kind": kind, **summary}, ensure_ascii=False))


def worker(home: Home = None) -> None:
    """Run the job consumer as its own process (with a Redis queue in production)."""
    from shequ.entrypoints.worker import build_queue

    settings = settings_for(home)
    wired = bootstrap(settings)
    queue = build_queue(wired)
    warm_up()
    err.print(f"shequ worker on {settings.resolved_queue_url}")
    try:
        queue.huey.create_consumer(workers=2, worker_type="thread", periodic=True).run()
    finally:
        close(wired)


def register_data_commands(app: typer.Typer) -> None:
    """Attach these commands to the root CLI."""
    app.command("serve")(serve)
    app.command("demo")(demo)
    app.command("import")(import_cmd)
    app.command("worker")(worker)
