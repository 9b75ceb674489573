"""The ``shequ`` command line (Typer + Rich). Every command takes ``--home``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from shequ.core import auth, migrate
from shequ.core.db import transaction
from shequ.core.errors import ShequError
from shequ.core.permissions import PERMISSIONS, Role
from shequ.entrypoints.bootstrap import bootstrap, close
from shequ.entrypoints.cli_common import Home, err, fail, out, settings_for
from shequ.entrypoints.cli_community import community_app
from shequ.entrypoints.cli_content import content_app
from shequ.entrypoints.cli_data import register_data_commands
from shequ.entrypoints.cli_insight import register_insight_commands
from shequ.entrypoints.cli_lifecycle import register_lifecycle_commands
from shequ.entrypoints.cli_membership import register_membership_commands
from shequ.entrypoints.cli_moderation import moderate, moderation_app
from shequ.entrypoints.cli_monitor import register_monitor_commands
from shequ.entrypoints.cli_nlp import nlp_app
from shequ.entrypoints.cli_report import report_app
from shequ.entrypoints.cli_segments import register_segment_commands

app = typer.Typer(help="shequ 社区 — e-commerce community operations.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
user_app = typer.Typer(help="Console users.", no_args_is_help=True)
key_app = typer.Typer(help="API keys for apps and partners.", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(key_app, name="apikey")
@app.command("migrate")
def migrate_cmd(home: Home = None) -> None:
    """Create or upgrade the database schema (Alembic ``upgrade head``)."""
    settings = settings_for(home)
    settings.ensure_home()
    migrate.upgrade(settings.resolved_database_url)
    out.print(f"schema up to date at {settings.resolved_database_url}")


@user_app.command("create")
def user_create(
    username: Annotated[str, typer.Option(prompt=True)],
    role: Annotated[str, typer.Option(help=f"One of: {', '.join(r.value for r in Role)}")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True,
                                          confirmation_prompt=True)],
    brand: Annotated[list[int] | None, typer.Option(help="Brand id (partners; repeat)")] = None,
    home: Home = None,
) -> None:
    """Create a console user."""
    wired = bootstrap(settings_for(home))
    try:
        with transaction(wired.sessions, actor="cli") as session:
            user = auth.create_user(session, wired.clock, username=username, password=password,
                                    role=role, brand_ids=brand or [])
    except ShequError as exc:
        raise fail(exc) from exc
    finally:
        close(wired)
    out.print(f"created user {user.username} ({user.role.value}), id {user.id}")


@key_app.command("create")
def apikey_create(
    name: Annotated[str, typer.Option(help="What the key is for")],
    scope: Annotated[list[str], typer.Option(help=f"Repeat; e.g. events:write. "
                                             f"Known: {', '.join(sorted(PERMISSIONS))}")],
    brand: Annotated[list[int] | None, typer.Option(help="Partner key: brand id (repeat)")] = None,
    home: Home = None,
) -> None:
    """Issue an API key; the key is printed once, as the last line."""
    wired = bootstrap(settings_for(home))
    try:
        with transaction(wired.sessions, actor="cli") as session:
            issued = auth.create_api_key(session, wired.clock, name=name, scopes=scope,
                                         brand_ids=brand or None)
    except ShequError as exc:
        raise fail(exc) from exc
    finally:
        close(wired)
    err.print(f"API key {issued.id} '{issued.name}' scopes={','.join(issued.scopes)}; "
              "store it now, it is not shown again:")
    print(issued.secret)


@key_app.command("list")
def apikey_list(home: Home = None) -> None:
    """List API keys (without secrets)."""
    wired = bootstrap(settings_for(home))
    with transaction(wired.sessions) as session:
        rows = auth.list_api_keys(session)
    close(wired)
    table = Table("id", "name", "prefix", "scopes", "brands", "revoked")
    for r in rows:
        table.add_row(str(r["id"]), r["name"], r["prefix"], ",".join(r["scopes"]),
                      str(r["brand_ids"] or "all"), str(r["revoked_at"] or ""))
    out.print(table)


@key_app.command("revoke")
def apikey_revoke(key_id: int, home: Home = None) -> None:
    """Revoke an API key."""
    wired = bootstrap(settings_for(home))
    try:
        with transaction(wired.sessions, actor="cli") as session:
            auth.revoke_api_key(session, wired.clock, key_id)
    except ShequError as exc:
        raise fail(exc) from exc
    finally:
        close(wired)
    out.print(f"revoked key {key_id}")


register_data_commands(app)
register_monitor_commands(app)
register_insight_commands(app)
register_lifecycle_commands(app)
register_membership_commands(app)
register_segment_commands(app)
app.add_typer(content_app, name="content")
app.add_typer(community_app, name="community")
app.add_typer(report_app, name="report")
app.add_typer(nlp_app, name="nlp")
app.add_typer(moderation_app, name="moderation")
app.command("moderate")(moderate)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="shequ")


if __name__ == "__main__":
    main()
