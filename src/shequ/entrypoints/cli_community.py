"""CLI commands of the community domain: the ladder, the creator fund, core-creator
retention, hub figures and the population of the community from content."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from shequ.core.db import transaction
from shequ.core.errors import ShequError, ValidationFailed
from shequ.core.web import Services
from shequ.domains.community import service as community
from shequ.domains.community.schemas import CloseIn, LevelIn, RoundIn
from shequ.entrypoints.bootstrap import bootstrap, close
from shequ.entrypoints.cli_common import Home, err, fail, out, progress, settings_for

community_app = typer.Typer(help="Creators and hubs (docs/creators.md).", no_args_is_help=True)
ladder_app = typer.Typer(help="The KOC certification ladder.", no_args_is_help=True)
fund_app = typer.Typer(help="The creator fund.", no_args_is_help=True)
community_app.add_typer(ladder_app, name="ladder")
community_app.add_typer(fund_app, name="fund")

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


def _run(home: Home, work: Callable[[Session, Services], T], label: str | None = None) -> T:
    """Run ``work`` in one audited CLI transaction, with a progress line when labelled;
    domain errors are printed as ``field: reason`` and exit 1."""
    wired = bootstrap(settings_for(home))
    try:
        with transaction(wired.sessions, actor="cli", clock=wired.clock) as session:
            if label is None:
                return work(session, wired)
            with progress() as bar:
                task = bar.add_task(label, total=1, info="")
                result = work(session, wired)
                bar.update(task, advance=1, info="done")
            return result
    except ShequError as exc:
        raise fail(exc) from exc
    finally:
        close(wired)


def _time(raw: str | None, field: str) -> datetime | None:
    """An ISO 8601 instant with its offset, ``ValidationFailed`` naming ``field`` else."""
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise fail(ValidationFailed("bad_time", f"{raw!r} is not an ISO 8601 time",
                                    field)) from exc
    if value.tzinfo is None:
        raise fail(ValidationFailed("naive_time", f"{raw!r} needs an offset (e.g. +08:00)",
                                    field))
    return value


def _checked(model: type[M], values: dict[str, object]) -> M:
    """``model`` built from CLI values; the first validation error names its option."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        attr = ".".join(str(part) for part in first["loc"]) or None
        raise fail(ValidationFailed("invalid_option", first["msg"], attr)) from exc


def _emit(text: str) -> None:
    """One JSON line on stdout, verbatim (Rich markup would eat ``[null]``)."""
    out.print(text, markup=False, highlight=False)


def _print_json(value: object) -> None:
    _emit(json.dumps(value, ensure_ascii=False))


# --- ladder ------------------------------------------------------------------------------


@ladder_app.command("levels")
def ladder_levels(home: Home = None, install: Annotated[bool, typer.Option(
        "--install", help="File the default ladder and academy tasks where missing")] = False
                  ) -> None:
    """Show the levels and their criteria (JSON, lowest first)."""
    def work(session: Session, wired: Services) -> list[dict[str, object]]:
        if install:
            community.install_defaults(session, wired.clock)
        return [level.model_dump(mode="json") for level in community.list_levels(session)]

    found = _run(home, work)
    if not found:
        err.print("no levels yet: run `shequ community ladder levels --install`")
    _print_json(found)


@ladder_app.command("set")
def ladder_set(
    code: Annotated[str, typer.Argument(help="newcomer, certified, senior or core")],
    home: Home = None,
    name: Annotated[str | None, typer.Option(help="Level name")] = None,
    window_days: Annotated[int | None, typer.Option(help="Days counted for posts, "
                                                    "quality and orders")] = None,
    min_posts: Annotated[int | None, typer.Option()] = None,
    min_mean_quality: Annotated[float | None, typer.Option(help="0-100")] = None,
    min_orders: Annotated[int | None, typer.Option()] = None,
    min_academy_tasks: Annotated[int | None, typer.Option()] = None,
    required_tasks_done: Annotated[bool | None, typer.Option(
        "--required-tasks-done/--no-required-tasks-done")] = None,
    min_hub_days: Annotated[int | None, typer.Option()] = None,
) -> None:
    """Change criteria of a level (options not given keep their value)."""
    given = {"name": name, "window_days": window_days, "min_posts": min_posts,
             "min_mean_quality": min_mean_quality, "min_orders": min_orders,
             "min_academy_tasks": min_academy_tasks,
             "required_tasks_done": required_tasks_done, "min_hub_days": min_hub_days}

    def work(session: Session, wired: Services) -> dict[str, object]:
        current = next((level.model_dump(include=set(LevelIn.model_fields))
                        for level in community.list_levels(session) if level.code == code),
                       {"name": code})
        merged: dict[str, object] = {**current, **{key: value for key, value in given.items()
                                                   if value is not None}}
        data = _checked(LevelIn, merged)
        return community.put_level(session, wired.clock, code, data).model_dump(mode="json")

    _print_json(_run(home, work))


@ladder_app.command("evaluate")
def ladder_evaluate(home: Home = None, as_of: Annotated[str | None, typer.Option(
        "--as-of", help="ISO 8601 instant with offset (default: now)")] = None) -> None:
    """Give every creator their level and record the changes (JSON report)."""
    when = _time(as_of, "as_of")
    report = _run(home, lambda session, wired: community.evaluate_ladder(
        session, wired.clock, when), "evaluating the ladder")
    _emit(report.model_dump_json())


@ladder_app.command("show")
def ladder_show(creator: Annotated[str, typer.Argument(help="Creator external id")],
                home: Home = None) -> None:
    """A creator's level and the criteria checked (JSON)."""
    found = _run(home, lambda session, wired: community.standing(session, wired.clock,
                                                                 creator))
    _emit(found.model_dump_json())


# --- fund --------------------------------------------------------------------------------


@fund_app.command("create")
def fund_create(
    key: Annotated[str, typer.Option(help="Round key (the idempotency key of creation)")],
    name: Annotated[str, typer.Option(help="Round name")],
    period_start: Annotated[str, typer.Option("--from", help="ISO 8601 start, with offset")],
    period_end: Annotated[str, typer.Option("--to", help="ISO 8601 end, with offset")],
    budget_fen: Annotated[int, typer.Option(help="Budget in fen")],
    cap_fen: Annotated[int, typer.Option(help="Per-creator cap in fen")],
    min_score: Annotated[float, typer.Option(help="Least score to share")] = 0.0,
    home: Home = None,
) -> None:
    """Open a fund round (JSON); the same round again is returned unchanged."""
    data = _checked(RoundIn, {"key": key, "name": name,
                              "period_start": _time(period_start, "period_start"),
                              "period_end": _time(period_end, "period_end"),
                              "budget_fen": budget_fen, "cap_fen": cap_fen,
                              "min_score": min_score})
    created = _run(home, lambda session, wired: community.create_round(session, wired.clock,
                                                                       data))
    _emit(created.model_dump_json())


@fund_app.command("close")
def fund_close(key: Annotated[str, typer.Argument(help="Round key")],
               idempotency_key: Annotated[str, typer.Option(
                   help="Client key: closing again with it returns the same payouts")],
               home: Home = None) -> None:
    """Split the round's budget and write its payouts once (JSON)."""
    data = _checked(CloseIn, {"idempotency_key": idempotency_key})
    closed = _run(home, lambda session, wired: community.close_round(
        session, wired.clock, key, data), f"closing round {key}")
    _emit(closed.model_dump_json())


@fund_app.command("show")
def fund_show(key: Annotated[str | None, typer.Argument(help="Round key (none: list)")] = None,
              home: Home = None) -> None:
    """A round with its payouts, or every round without them (JSON)."""
    if key is None:
        rounds = _run(home, lambda session, wired: community.list_rounds(session))
        _print_json([each.model_dump(mode="json") for each in rounds])
        return
    found = _run(home, lambda session, wired: community.show_round(session, key))
    _emit(found.model_dump_json())


# --- retention, hubs, population ---------------------------------------------------------


@community_app.command("retention")
def retention(home: Home = None, months: Annotated[int, typer.Option(
        help="Months back, the current one included")] = 6) -> None:
    """Core-creator cohorts per month and the share still posting after (JSON)."""
    found = _run(home, lambda session, wired: community.core_retention(
        session, wired.clock, months=months, zone=wired.settings.zone),
        f"retention over {months} months")
    _emit(found.model_dump_json())


@community_app.command("hubs")
def hubs(hub: Annotated[str | None, typer.Argument(help="Hub external id (none: all)")] = None,
         home: Home = None, weeks: Annotated[int, typer.Option(help="Weeks of figures")] = 8
         ) -> None:
    """Hubs with members per role, or one hub's weekly figures and top creators (JSON)."""
    if hub is None:
        found = _run(home, lambda session, wired: community.list_hub_summaries(session))
        _print_json([each.model_dump(mode="json") for each in found])
        return
    metrics = _run(home, lambda session, wired: community.hub_metrics(
        session, wired.clock, hub, weeks=weeks, zone=wired.settings.zone))
    _emit(metrics.model_dump_json())


@community_app.command("populate")
def populate(home: Home = None, fund_round: Annotated[bool, typer.Option(
        "--fund-round/--no-fund-round", help="Also create and close a fund round")] = True
             ) -> None:
    """Install the defaults and derive memberships, academy credits, levels (and a fund
    round) from the content loaded (JSON report); running it again adds nothing."""
    report = _run(home, lambda session, wired: community.populate_from_content(
        session, wired.clock, fund_round=fund_round), "populating the community")
    _emit(report.model_dump_json())
