"""Needs insight over a small community whose answers are known: shares, sentiment
direction, 成分党, rising topics, quarter parsing and partner scoping."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from fastapi.testclient import TestClient

from conftest import bearer, make_key
from needs_community import (
    EFFECT_TEXT,
    FAST_TEXT,
    INGREDIENT_TEXT,
    LOGISTICS_TEXT,
    POST_BODY,
    POST_TITLE,
    build_community,
)
from shequ.core.db import transaction
from shequ.core.errors import NotFound, ValidationFailed
from shequ.core.permissions import CLI_PRINCIPAL, PERMISSIONS, Principal
from shequ.core.web import Services
from shequ.domains.content.needs import Quarter, default_quarter, needs_report, parse_quarter
from shequ.domains.content.needs_schemas import NeedsReport
from shequ.text.aspects import aspect_mentions, aspects_of

Headers = dict[str, str]


def report_for(services: Services, principal: Principal, quarter: str) -> NeedsReport:
    with transaction(services.sessions) as session:
        return needs_report(session, principal, quarter)


def test_the_fixture_texts_hit_only_the_intended_aspects() -> None:
    found = [aspects_of(m) for m in aspect_mentions(
        [INGREDIENT_TEXT, LOGISTICS_TEXT, EFFECT_TEXT, FAST_TEXT, f"{POST_TITLE}。{POST_BODY}"])]
    assert found == [{"ingredients"}, {"logistics"}, {"effect"}, {"logistics"},
                     {"ingredients"}]


@pytest.mark.parametrize("text", ["2026Q5", "2026Q0", "2026", "Q3", "26Q3", "2026Q3x", "",
                                  "1999Q1"])
def test_bad_quarters_are_refused_naming_the_field(text: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_quarter(text)
    assert (caught.value.code, caught.value.attr) == ("bad_quarter", "quarter")


def test_quarter_parsing_and_bounds() -> None:
    q3 = parse_quarter("2026q3")
    assert q3 == parse_quarter("2026-Q3") == Quarter(2026, 3)
    assert (q3.label, q3.first_day, q3.last_day) == ("2026Q3", date(2026, 7, 1), date(2026, 9, 30))
    assert q3.previous().label == "2026Q2"
    assert Quarter(2026, 1).previous().label == "2025Q4"
    assert Quarter(2026, 4).next().label == "2027Q1"
    from zoneinfo import ZoneInfo

    start, end = q3.bounds(ZoneInfo("Asia/Shanghai"))
    assert (start, end) == (datetime(2026, 6, 30, 16, tzinfo=UTC),
                            datetime(2026, 9, 30, 16, tzinfo=UTC))


def test_needs_report_on_known_data(client: TestClient, admin_headers: Headers,
                                    services: Services) -> None:
    build_community(client, admin_headers)
    report = report_for(services, CLI_PRINCIPAL, "2026Q3")
    c = report.counts
    assert (c.reviews, c.posts, c.texts, c.authors) == (20, 1, 21, 20)
    assert (c.previous_reviews, c.previous_posts) == (10, 0)
    assert c.mean_rating == pytest.approx((10 * 5 + 5 * 1 + 5 * 5) / 20)
    needs = {n.aspect: n for n in report.top_needs}
    assert [n.aspect for n in report.top_needs[:3]] == ["ingredients", "effect", "logistics"]
    assert needs["ingredients"].texts == 11
    assert needs["ingredients"].share == pytest.approx(11 / 21)
    assert needs["logistics"].share == pytest.approx(5 / 21)
    assert needs["logistics"].previous_share == pytest.approx(1.0)
    assert needs["logistics"].change_pp == pytest.approx(100 * (5 / 21 - 1.0))
    assert needs["logistics"].change_z is not None
    assert needs["logistics"].change_z < -3
    assert needs["price"].texts == 0
    assert needs["price"].sentiment is None
    # Sentiment direction: angry logistics clauses, happy ingredient clauses.
    assert needs["logistics"].sentiment is not None
    assert needs["logistics"].sentiment < 0.5
    assert needs["logistics"].negative_share == pytest.approx(1.0)
    assert needs["ingredients"].sentiment is not None
    assert needs["ingredients"].sentiment > 0.5
    assert needs["logistics"].previous_sentiment is not None
    assert needs["logistics"].previous_sentiment > 0.5
    # 成分党: c1..c10 of 20 authors; nobody in Q2.
    im = report.ingredient_minded
    assert (im.authors, im.ingredient_authors, im.share) == (20, 10, 0.5)
    assert (im.previous_authors, im.previous_ingredient_authors, im.previous_share) == (
        10, 0, 0.0)


def test_weekly_shares_rising_topics_and_categories(client: TestClient, admin_headers: Headers,
                                                    services: Services) -> None:
    build_community(client, admin_headers)
    report = report_for(services, CLI_PRINCIPAL, "2026Q3")
    weekly = report.weekly
    assert weekly.weeks[0] == date(2026, 6, 29)
    assert weekly.weeks[-1] == date(2026, 9, 28)
    assert len(weekly.weeks) == 14
    assert sum(weekly.totals) == 21
    series = {s.topic: s for s in weekly.series}
    assert sum(series["ingredients"].counts) == 11
    week_of_sep_21 = weekly.weeks.index(date(2026, 9, 21))
    # The week of Sep 21 holds only the ingredient post.
    assert series["ingredients"].shares[week_of_sep_21] == 1.0
    # Rising: the last four weeks (from Aug 31) against July and Q2.
    window = report.rising_window
    assert window is not None
    assert (window.recent_from, window.recent_to) == (date(2026, 8, 31), date(2026, 9, 25))
    assert (window.recent_texts, window.baseline_texts) == (11, 20)
    assert [r.topic for r in report.rising if r.kind == "aspect"] == ["ingredients"]
    keywords = {r.topic: r for r in report.rising if r.kind == "keyword"}
    assert "kw:成分" in keywords
    assert keywords["kw:成分"].name == "成分"
    assert all(r.count >= 5 and r.q_value <= 0.05 for r in report.rising)
    rising = next(r for r in report.rising if r.topic == "ingredients")
    assert (rising.count, rising.share, rising.baseline_share) == (11, 1.0, 0.0)
    assert rising.z > 4
    assert rising.lift > 10
    assert rising.name == "成分"
    # Categories roll up to the top level: 面霜 → 美妆.
    heat = report.category_sentiment
    assert set(heat.categories) == {"美妆", "数码"}
    cells = {(cell.category, cell.aspect): cell for cell in heat.cells}
    assert cells[("美妆", "ingredients")].texts == 11
    assert cells[("数码", "logistics")].texts == 5
    assert cells[("数码", "logistics")].sentiment < 0.5 < cells[("数码", "effect")].sentiment
    # Quotes: each with its product; the logistics one is negative.
    quotes = {(q.aspect, q.polarity): q for q in report.quotes}
    worst = quotes[("logistics", "negative")]
    assert worst.text in LOGISTICS_TEXT
    assert worst.product == "降噪耳机"
    assert worst.brand == "声悦"
    assert worst.rating == 1
    assert quotes[("ingredients", "positive")].score > 0.5


def test_partner_sees_only_its_brands(client: TestClient, admin_headers: Headers,
                                      services: Services) -> None:
    brands = build_community(client, admin_headers)
    partner = Principal(kind="apikey", id=9, name="p", permissions=PERMISSIONS,
                        brand_ids=frozenset({brands["b2"]}))
    report = report_for(services, partner, "2026Q3")
    assert report.brands == ["声悦"]
    assert (report.counts.reviews, report.counts.posts) == (10, 0)
    needs = {n.aspect: n for n in report.top_needs}
    assert needs["ingredients"].texts == 0
    assert needs["logistics"].share == pytest.approx(0.5)
    assert report.ingredient_minded.ingredient_authors == 0
    assert {q.brand for q in report.quotes} == {"声悦"}
    # Over HTTP with a brand-limited key, the same scoping.
    key = make_key(services, ["content:read"], brand_ids=[brands["b2"]])
    got = client.get("/api/v1/content/needs?quarter=2026Q3", headers=bearer(key))
    assert got.status_code == 200
    assert got.json()["counts"]["reviews"] == 10


def test_default_quarter_and_api(client: TestClient, admin_headers: Headers,
                                 services: Services) -> None:
    with transaction(services.sessions) as session, pytest.raises(NotFound) as caught:
        default_quarter(session)
    assert caught.value.attr == "quarter"
    build_community(client, admin_headers)
    with transaction(services.sessions) as session:
        assert default_quarter(session) == "2026Q3"
    got = client.get("/api/v1/content/needs", headers=admin_headers)
    assert got.status_code == 200
    body = got.json()
    assert body["quarter"] == "2026Q3"
    assert body["previous_quarter"] == "2026Q2"
    assert body["ingredient_minded"]["share"] == 0.5
    bad = client.get("/api/v1/content/needs?quarter=2026Q5", headers=admin_headers)
    assert bad.status_code == 422
    assert (bad.json()["code"], bad.json()["attr"]) == ("bad_quarter", "quarter")
    empty = client.get("/api/v1/content/needs?quarter=2025Q1", headers=admin_headers).json()
    assert empty["counts"]["texts"] == 0
    assert empty["rising"] == []
    assert empty["rising_window"] is None
    assert client.get("/api/v1/content/needs").status_code == 401


def test_a_computed_report_is_stored_and_recomputed_when_a_text_arrives(
        client: TestClient, admin_headers: Headers, services: Services) -> None:
    from sqlalchemy import func, select

    from shequ.core.audit import AuditEntry
    from shequ.domains.content.models import NeedsReportRow

    build_community(client, admin_headers)
    first = report_for(services, CLI_PRINCIPAL, "2026Q3")
    with transaction(services.sessions) as session:
        stored = session.scalars(select(NeedsReportRow)).all()
        audited = session.scalar(select(func.count()).select_from(AuditEntry)
                                 .where(AuditEntry.entity == "needs_reports"))
    assert [(row.quarter, row.scope) for row in stored] == [("2026Q3", "all")]
    assert audited == 0  # a stored report is a cache, not an audited change
    assert report_for(services, CLI_PRINCIPAL, "2026Q3") == first

    got = client.post("/api/v1/reviews", headers=admin_headers, json={
        "external_id": "late1", "customer_external_id": "c3", "sku": "SKU1", "rating": 5,
        "text": INGREDIENT_TEXT, "created_at": "2026-09-29T04:00:00+00:00"})
    assert got.status_code == 201, got.text
    again = report_for(services, CLI_PRINCIPAL, "2026Q3")
    assert again.counts.reviews == first.counts.reviews + 1
    with transaction(services.sessions) as session:
        assert session.scalar(select(func.count()).select_from(NeedsReportRow)) == 1
