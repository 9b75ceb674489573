"""CLI commands of content scoring: refresh every post's scores, print one post's score
(docs/content-quality.md)."""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import ValidationError

from shequ.core.db import transaction
from shequ.core.errors import ShequError, ValidationFailed
from shequ.core.permissions import CLI_PRINCIPAL
from shequ.domains.content import service as content
from shequ.domains.content.schemas import ScoreRefreshIn
from shequ.entrypoints.bootstrap import bootstrap, close
from shequ.entrypoints.cli_common import Home, fail, out, progress, settings_for

content_app = typer.Typer(help="Content quality scores (docs/content-quality.md).",
                          no_args_is_help=True)
Weight = Annotated[float | None, typer.Option(min=0.0, max=100.0)]


def _config(days: int, originality: float | None, reach: float | None,
            conversion: float | None) -> ScoreRefreshIn:
    weights = {name: value for name, value in (("originality", originality), ("reach", reach),
                                               ("conversion", conversion))
               if value is not None}
    try:
        return ScoreRefreshIn.model_validate({"attribution_days": days, "weights": weights})
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"]) or "weights"
        raise ValidationFailed("invalid_option", error["msg"], where) from None


@content_app.command("refresh-scores")
def refresh_scores(
    home: Home = None,
    attribution_days: Annotated[int, typer.Option(
        help="Days after a view in which a payment is credited to the post")] = 7,
    w_originality: Weight = None, w_reach: Weight = None, w_conversion: Weight = None,
) -> None:
    """Recompute every post's originality, reach, conversion and quality (idempotent)."""
    wired = bootstrap(settings_for(home))
    try:
        config = _config(attribution_days, w_originality, w_reach, w_conversion)
        with progress() as bar:
            task = bar.add_task("content scores", total=5, info="")

            def advance(label: str, done: int, steps: int) -> None:
                bar.update(task, completed=done, total=steps, info=label)

            report = content.refresh_scores(wired, CLI_PRINCIPAL, config, advance)
    except ShequError as exc:
        raise fail(exc) from exc
    finally:
        close(wired)
    out.print(report.model_dump_json())


@content_app.command("score")
def score(post_id: Annotated[str, typer.Argument(help="The post's external id")],
          home: Home = None) -> None:
    """Print a post's explained score and nearest sources as JSON."""
    wired = bootstrap(settings_for(home))
    try:
        with transaction(wired.sessions) as session:
            found = content.get_post_score(session, CLI_PRINCIPAL, post_id)
    except ShequError as exc:
        raise fail(exc) from exc
    finally:
        close(wired)
    out.print(found.model_dump_json(indent=2))
