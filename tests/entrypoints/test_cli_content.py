"""``shequ content refresh-scores`` and ``shequ content score POST_ID`` on a data home."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import T0
from shequ.core.db import Base, transaction
from shequ.core.permissions import CLI_PRINCIPAL
from shequ.core.settings import Settings
from shequ.domains.catalog import service as catalog
from shequ.domains.catalog.schemas import BrandIn
from shequ.domains.content import service as content
from shequ.domains.content.schemas import ContentType, PostIn
from shequ.domains.customers import service as customers
from shequ.domains.customers.schemas import CustomerIn
from shequ.domains.events import service as events
from shequ.entrypoints.bootstrap import bootstrap, close
from shequ.entrypoints.cli import app

runner = CliRunner()
TEXT = "入冬以后皮肤特别干，试了这款保湿面霜两个星期，推开很快吸收，早上涂完化妆也不搓泥。"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A data home with tables, two customers, a post, its near-copy and three views."""
    home = tmp_path / "home"
    wired = bootstrap(Settings(home=home, environment="development"))
    try:
        Base.metadata.create_all(wired.extras["engine"])
        with transaction(wired.sessions) as session:
            catalog.create_brand(session, BrandIn(external_id="b1", name="花知晓"))
            for key in ("c1", "c2"):
                customers.create_customer(session, wired.clock,
                                          CustomerIn(external_id=key, nickname=key))
            for key, author, body, age in (("p1", "c1", TEXT, 2), ("p2", "c2", TEXT + "！", 1)):
                content.create_post(session, wired.clock, CLI_PRINCIPAL, PostIn(
                    external_id=key, author_customer_external_id=author, title="面霜心得",
                    body=body, content_type=ContentType.REVIEW,
                    created_at=T0 - timedelta(days=age)))
        views = [{"event_id": str(uuid.uuid4()), "name": "post_view", "customer_id": "c2",
                  "timestamp": (T0 - timedelta(hours=n)).isoformat(),
                  "properties": {"post_id": "p1"}} for n in range(1, 4)]
        assert events.ingest(wired, json.dumps(views).encode())["accepted"] == 3
    finally:
        close(wired)
    return home


def test_refresh_scores_then_print_one(home: Path) -> None:
    refreshed = runner.invoke(app, ["content", "refresh-scores", "--home", str(home),
                                    "--w-conversion", "0"])
    assert refreshed.exit_code == 0, refreshed.output
    report = json.loads(refreshed.stdout.strip().splitlines()[-1])
    assert (report["posts"], report["near_duplicates"]) == (2, 1)
    assert report["weights"]["conversion"] == 0.0
    shown = runner.invoke(app, ["content", "score", "p2", "--home", str(home)])
    assert shown.exit_code == 0, shown.output
    score = json.loads(shown.stdout)
    assert [s["post"] for s in score["sources"]] == ["p1"]
    assert score["components"]["conversion"]["weight"] == 0.0
    assert score["quality"] == pytest.approx(
        sum(c["contribution"] for c in score["components"].values()))
    assert json.loads(runner.invoke(app, ["content", "score", "p1", "--home",
                                          str(home)]).stdout)["views"] == 3


def test_unknown_post_and_bad_weights_fail_clearly(home: Path) -> None:
    missing = runner.invoke(app, ["content", "score", "nope", "--home", str(home)])
    assert missing.exit_code == 1
    assert "post_not_found" in missing.stderr
    zero = runner.invoke(app, ["content", "refresh-scores", "--home", str(home),
                               "--w-originality", "0", "--w-reach", "0", "--w-conversion", "0"])
    assert zero.exit_code == 1
    assert "weights" in zero.stderr
