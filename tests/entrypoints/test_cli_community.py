"""``shequ community …``: the ladder, the fund, retention, hubs and population, on a home
directory of its own (the real clock)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from typer.testing import CliRunner

from shequ.core.db import Base, transaction
from shequ.core.settings import load_settings
from shequ.domains.content.models import Creator, Hub, Post, PostScore
from shequ.domains.customers import service as customers
from shequ.domains.customers.models import Customer
from shequ.entrypoints.bootstrap import bootstrap, close
from shequ.entrypoints.cli import app
from shequ.entrypoints.cli_community import community_app


def prepare(home: Path) -> None:
    """Tables, customers c1-c3, hub ``tech``, creators cr1 (c1) and cr2 (c2) in it, and
    posts of the last days: c1 six of quality 80, c2 two of quality 40."""
    now = datetime.now(UTC)
    wired = bootstrap(load_settings(home))
    Base.metadata.create_all(wired.extras["engine"])
    try:
        with transaction(wired.sessions) as session:
            customers.bulk_load(session, [
                {"external_id": f"c{i}", "nickname": f"用户{i}", "gender": "f", "city": "上海",
                 "birth_year": 1990, "registered_at": now - timedelta(days=300),
                 "acquisition_channel": "app"} for i in (1, 2, 3)], [])
            known = dict(session.execute(select(Customer.external_id, Customer.id))
                         .tuples().all())
            hub = Hub(external_id="tech", name="科技评测局")
            session.add(hub)
            session.flush()
            session.add_all(Creator(external_id=f"cr{i}", customer_id=known[f"c{i}"],
                                    display_name=f"创作者{i}", level="KOC", hub_id=hub.id,
                                    joined_at=now - timedelta(days=100)) for i in (1, 2))
            posts = [(1, 80.0)] * 6 + [(2, 40.0)] * 2
            rows = [Post(external_id=f"p{n}", customer_id=known[f"c{who}"], hub_id=hub.id,
                         content_type="review", title="心得", body="很好用",
                         created_at=now - timedelta(days=n + 1), status="published")
                    for n, (who, _) in enumerate(posts)]
            session.add_all(rows)
            session.flush()
            session.add_all(PostScore(post_id=row.id, quality=quality, views=100,
                                      attributed_orders=1)
                            for row, (_, quality) in zip(rows, posts, strict=True))
    finally:
        close(wired)


def test_cli_ladder_fund_retention_hubs(tmp_path: Path) -> None:
    runner = CliRunner()
    home = ["--home", str(tmp_path / "cli")]
    prepare(tmp_path / "cli")
    levels = runner.invoke(community_app, ["ladder", "levels", "--install", *home])
    assert levels.exit_code == 0, levels.output
    assert [level["code"] for level in json.loads(levels.stdout)] == [
        "newcomer", "certified", "senior", "core"]
    bad = runner.invoke(community_app, ["ladder", "set", "senior", "--min-posts", "1", *home])
    assert bad.exit_code == 1
    assert "min_posts" in bad.output
    invalid = runner.invoke(community_app, ["ladder", "set", "senior", "--min-mean-quality",
                                            "400", *home])
    assert (invalid.exit_code, "min_mean_quality" in invalid.output) == (1, True)
    eased = runner.invoke(community_app, ["ladder", "set", "certified", "--min-academy-tasks",
                                          "0", "--no-required-tasks-done", *home])
    assert eased.exit_code == 0, eased.output
    assert json.loads(eased.stdout)["min_posts"] == 3  # untouched options keep their value
    evaluated = runner.invoke(community_app, ["ladder", "evaluate", *home])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["levels"]["certified"] == 1
    shown = runner.invoke(community_app, ["ladder", "show", "cr1", *home])
    assert json.loads(shown.stdout)["level"] == "certified"

    end = datetime.now(UTC).replace(microsecond=0)
    fund = ["fund", "create", "--key", "r1", "--name", "基金", "--from",
            (end - timedelta(days=30)).isoformat(), "--to", end.isoformat(),
            "--budget-fen", "100000", "--cap-fen", "70000", *home]
    created = runner.invoke(community_app, fund)
    assert created.exit_code == 0, created.output
    naive = runner.invoke(community_app, [*fund[:7], "2026-01-01T00:00", *fund[8:]])
    assert (naive.exit_code, "period_start" in naive.output) == (1, True)
    closed = runner.invoke(community_app, ["fund", "close", "r1", "--idempotency-key", "k1",
                                           *home])
    assert closed.exit_code == 0, closed.output
    # scores 6 × 80 = 480 and 2 × 40 = 80 of ¥1,000, cap ¥700: 700 + 300
    assert [p["amount_fen"] for p in json.loads(closed.stdout)["payouts"]] == [70_000, 30_000]
    again = runner.invoke(community_app, ["fund", "close", "r1", "--idempotency-key", "k1",
                                          *home])
    assert json.loads(again.stdout)["replayed"] is True
    listed = runner.invoke(community_app, ["fund", "show", *home])
    assert [r["key"] for r in json.loads(listed.stdout)] == ["r1"]
    missing = runner.invoke(community_app, ["fund", "show", "nope", *home])
    assert (missing.exit_code, "round_not_found" in missing.output) == (1, True)

    retention = runner.invoke(community_app, ["retention", "--months", "2", *home])
    assert retention.exit_code == 0, retention.output
    assert len(json.loads(retention.stdout)["cohorts"]) == 2
    populated = runner.invoke(community_app, ["populate", "--no-fund-round", *home])
    assert populated.exit_code == 0, populated.output
    assert json.loads(populated.stdout)["memberships"] == 2
    hubs = runner.invoke(app, ["community", "hubs", *home])
    assert json.loads(hubs.stdout)[0]["members"]["user"] == 2
    metrics = runner.invoke(app, ["community", "hubs", "tech", "--weeks", "2", *home])
    assert metrics.exit_code == 0, metrics.output
    assert sum(week["posts"] for week in json.loads(metrics.stdout)["weeks"]) >= 6
