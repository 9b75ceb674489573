"""Customer insight on the small demo: profiles, value matrix, tags, dimensions, the 360°
view, idempotence and concurrent refreshes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from conftest import T0, _wire, bearer, make_key
from shequ.analytics.rollup import local_day_bounds
from shequ.core.clock import FixedClock
from shequ.core.permissions import CLI_PRINCIPAL, ROLE_PERMISSIONS, Role
from shequ.core.web import Services
from shequ.demo.loader import load_demo
from shequ.domains.events import service as events
from shequ.domains.insight import service as insight
from shequ.domains.insight import view
from shequ.domains.insight.models import CustomerProfile, CustomerTag
from shequ.domains.orders import service as orders
from shequ.entrypoints.app import create_app
from shequ.entrypoints.bootstrap import bootstrap, close
from shequ.entrypoints.cli import app

END = date(2026, 11, 20)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Services, dict[str, Any]]]:
    """The small demo (which has run the whole insight chain), loaded once per module."""
    wired = _wire(Path(tmp_path_factory.mktemp("insight-demo")), FixedClock(T0), None)
    summary = load_demo(wired, size="small", seed=7, end=END)
    yield wired, summary
    close(wired)


@pytest.fixture
def demo(loaded: tuple[Services, dict[str, Any]]) -> dict[str, Any]:
    return loaded[1]


@pytest.fixture
def services(loaded: tuple[Services, dict[str, Any]]) -> Services:
    return loaded[0]


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services=services)) as c:
        yield c


def _profiles(services: Services) -> list[dict[str, Any]]:
    with services.sessions() as session:
        rows = session.scalars(select(CustomerProfile).order_by(CustomerProfile.customer_id))
        return [{c.name: getattr(r, c.name) for c in CustomerProfile.__table__.columns
                 if c.name != "computed_at"} for r in rows]


def test_refresh_profiles_every_buyer(demo: dict[str, Any], services: Services) -> None:
    report = insight.refresh(services, as_of=END)
    with services.sessions() as session:
        paid = orders.purchases(session, until=local_day_bounds(
            END, END, services.settings.zone)[1])
    assert report.buyers == len(np.unique(paid.customer_ids)) > 100
    # the community's 500 and the friends who signed up through the referral demo
    assert report.customers == 500 + demo["counts"]["customers_signed_up"]
    assert set(report.models) == {"bgnbd", "gamma_gamma"}
    rows = _profiles(services)
    assert len(rows) == report.buyers
    assert {r["value_tier"] for r in rows} <= {"t1", "t2", "t3", "t4", "t5"}
    assert sum(r["spend_fen"] for r in rows) == int(paid.total_fen.sum())
    assert all(r["clv_fen"] is not None and r["clv_fen"] >= 0 for r in rows)
    assert all(0 < r["p_alive"] <= 1 for r in rows)
    # The planted lapsing customers bought often and much, then went silent for 30 days:
    # RFM calls them valuable but not recent (重要保持 / 重要挽留) and the model doubts them.
    lapsing = set(demo["planted"]["lapsing_customers"]["customer_external_ids"])
    keys = _keys(services)
    theirs = [r for r in rows if keys[r["customer_id"]] in lapsing]
    assert len(theirs) == len(lapsing)
    assert sum(r["rfm_group"] in ("important_keep", "important_retain")
               for r in theirs) >= 0.8 * len(theirs)
    others = [r["p_alive"] for r in rows if keys[r["customer_id"]] not in lapsing
              and r["orders"] >= 6]
    assert np.median([r["p_alive"] for r in theirs]) < np.median(others)

    # Idempotent: the same day again gives the same profiles.
    insight.refresh(services, as_of=END)
    assert _profiles(services) == rows


def _keys(services: Services) -> dict[int, str]:
    from shequ.domains.customers import service as customers

    with services.sessions() as session:
        table = customers.customer_attributes(session)
    return dict(zip(table["id"].to_pylist(), table["external_id"].to_pylist(), strict=True))


def test_value_matrix_figures(demo: dict[str, Any], services: Services,
                              client: TestClient, admin_headers: dict[str, str]) -> None:
    insight.refresh(services, as_of=END)
    found = client.get("/api/v1/insight/value-matrix", headers=admin_headers).json()
    tiers = {t["code"]: t for t in found["tiers"]}
    assert list(tiers) == ["t1", "t2", "t3", "t4", "t5"]
    assert sum(t["customers"] for t in tiers.values()) == found["buyers"]
    assert sum(t["gmv_share"] for t in tiers.values()) == pytest.approx(1.0, abs=1e-3)
    assert tiers["t5"]["spend_multiple"] == 1.0
    # The top tier spends several times what the base tier spends.
    assert tiers["t1"]["spend_multiple"] > 3
    groups = {g["code"]: g for g in found["rfm_groups"]}
    assert len(groups) == 8
    assert groups["important_value"]["name"] == "重要价值客户"
    assert sum(g["customers"] for g in groups.values()) == found["buyers"]
    assert found["as_of"] == END.isoformat()
    assert found["models"]["bgnbd"]["r"] > 0


def test_dimensions_and_tags(demo: dict[str, Any], services: Services) -> None:
    report = insight.refresh(services, as_of=END)
    store = events.event_store(services)
    dims = store.to_arrow(store.table("dim_customers")).to_pylist()
    assert len(dims) == 500 + demo["counts"]["customers_signed_up"]
    bought = [d for d in dims if d["rfm_group"] is not None]
    assert len(bought) == report.buyers
    assert all(d["value_tier"] in ("t1", "t2", "t3", "t4", "t5") for d in bought)
    assert all(d["clv_fen"] is None or d["clv_fen"] >= 0 for d in dims)
    assert all((d["clv_fen"] is None) == (d["p_alive"] is None) for d in dims)
    tags = store.to_arrow(store.table("dim_customer_tags")).to_pylist()
    assert len(tags) == report.tags > 0
    kinds = {t["kind"] for t in tags}
    assert {"category_affinity", "brand_affinity", "preferred_channel", "preferred_hour",
            "price_sensitivity"} <= kinds
    shares: dict[str, float] = {}
    for tag in tags:
        assert 0 <= tag["score"] <= 1
        if tag["kind"] == "category_affinity":
            shares[tag["customer_id"]] = shares.get(tag["customer_id"], 0.0) + tag["score"]
    assert max(shares.values()) <= 1 + 1e-9
    with services.sessions() as session:
        stored = session.scalars(select(CustomerTag)).all()
    assert len(stored) == report.tags
    prices = [t for t in tags if t["kind"] == "price_sensitivity"]
    assert {t["value"] for t in prices} <= {"high", "medium", "low"}
    assert len(prices) >= report.buyers * 0.9


def test_profile_tags_and_360_through_the_api(demo: dict[str, Any], services: Services,
                                              client: TestClient,
                                              admin_headers: dict[str, str]) -> None:
    insight.refresh(services, as_of=END)
    keys = _keys(services)
    rows = _profiles(services)
    best = max(rows, key=lambda r: r["orders"])
    key = keys[best["customer_id"]]
    profile = client.get(f"/api/v1/customers/{key}/profile", headers=admin_headers).json()
    assert profile["orders"] == best["orders"]
    assert profile["rfm_group_name"]
    tags = client.get(f"/api/v1/customers/{key}/tags", headers=admin_headers).json()
    assert tags
    assert all(t["label"] for t in tags)
    whole = client.get(f"/api/v1/customers/{key}/360", headers=admin_headers).json()
    assert whole["customer"]["external_id"] == key
    assert whole["orders_total"] >= best["orders"]
    assert whole["events"]
    assert whole["profile"]["value_tier"] == best["value_tier"]
    kinds = [m["kind"] for m in whole["trajectory"]]
    assert "first_order" in kinds
    assert "repeat_purchase" in kinds
    times = [m["at"] for m in whole["trajectory"]]
    assert times == sorted(times)
    # A customer who never bought has a view but no profile.
    never = next(k for cid, k in keys.items() if cid not in {r["customer_id"] for r in rows})
    assert client.get(f"/api/v1/customers/{never}/profile",
                      headers=admin_headers).json() is None
    assert client.get("/api/v1/customers/nobody/360", headers=admin_headers).status_code == 404
    partner = bearer(make_key(services, sorted(ROLE_PERMISSIONS[Role.PARTNER]),
                              brand_ids=[1]))
    assert client.get(f"/api/v1/customers/{key}/360", headers=partner).status_code == 403
    with services.sessions() as session:
        direct = view.customer_360(services, session, CLI_PRINCIPAL, key)
    assert direct.customer["external_id"] == key


def test_cli_refresh_and_matrix(tmp_path: Path) -> None:
    from shequ.entrypoints.cli_common import settings_for

    home = tmp_path / "home"
    runner = CliRunner()
    assert runner.invoke(app, ["migrate", "--home", str(home)]).exit_code == 0
    wired = bootstrap(settings_for(home))
    try:
        load_demo(wired, size="small", seed=7, end=END)
    finally:
        close(wired)
    result = runner.invoke(app, ["insight", "refresh", "--home", str(home),
                                 "--as-of", "2026-11-20"])
    assert result.exit_code == 0, result.output
    assert '"as_of":"2026-11-20"' in result.stdout
    shown = runner.invoke(app, ["insight", "matrix", "--home", str(home)])
    assert shown.exit_code == 0
    assert "核心高价值" in shown.stdout
    bad = runner.invoke(app, ["insight", "refresh", "--home", str(home), "--as-of", "11/20"])
    assert bad.exit_code == 1
    assert "as_of" in bad.stderr


@pytest.mark.usefixtures("pg_server_url")
def test_concurrent_refreshes_on_postgresql(pg_services: Services) -> None:
    load_demo(pg_services, size="small", seed=7, end=END)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            insight.refresh(pg_services, as_of=END)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    single = _profiles(pg_services)
    insight.refresh(pg_services, as_of=END)
    assert _profiles(pg_services) == single


def test_demo_lapsing_segment_finds_the_planted_customers(demo: dict[str, Any],
                                                          services: Services) -> None:
    """The demo's saved 高价值流失预警 segment (important keep/retain, no visit in 30 days)
    is mostly the planted lapsing high-value customers, and finds most of them (on the
    small demo: 7 of its 9 members are planted, 7 of the 10 planted are in it)."""
    from shequ.domains.segments import service as segments

    saved = {s.key: s for s in segments.list_segments(services, CLI_PRINCIPAL)}
    lapsing = saved["lapsing-high-value"]
    page = segments.members(services, CLI_PRINCIPAL, lapsing.id, limit=500)
    planted = set(demo["planted"]["lapsing_customers"]["customer_external_ids"])
    found = set(page.items)
    assert lapsing.size == len(found)
    assert len(found & planted) >= 0.6 * len(found)
    assert len(found & planted) >= 0.6 * len(planted)


def test_page_lookups_match_the_whole_tables(services: Services) -> None:
    """The per-page lookups the customer list uses agree with the whole-table reads."""
    from shequ.domains.lifecycle import service as lifecycle
    from shequ.domains.membership import service as membership

    rows = _profiles(services)
    page = [r["customer_id"] for r in rows[:40]] + [10**9]
    with services.sessions() as session:
        labels = insight.value_labels(session, CLI_PRINCIPAL, page)
        assert labels == {r["customer_id"]: (r["value_tier"], r["rfm_group"])
                          for r in rows[:40]}
        every_stage = lifecycle.current_stages(session)
        assert lifecycle.current_stages(session, customer_ids=page) == {
            cid: stage for cid, stage in every_stage.items() if cid in page}
        every_tier = membership.current_tiers(session)
        assert membership.current_tiers(session, customer_ids=page) == {
            cid: tier for cid, tier in every_tier.items() if cid in page}
        assert any(cid in every_tier for cid in page)
