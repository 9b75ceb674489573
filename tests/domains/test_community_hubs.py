"""Community hubs: idempotent joins with recorded role changes, keyset-paged feeds, weekly
figures, partner scoping, the API, population from content, and concurrent joins on
PostgreSQL."""

from __future__ import annotations

import threading
from datetime import date
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from test_community_ladder import P, seed

from conftest import bearer, make_key
from shequ.core.db import transaction
from shequ.core.errors import NotFound, ValidationFailed
from shequ.core.permissions import Principal
from shequ.core.web import Services
from shequ.domains.community import service
from shequ.domains.community.models import HubMembership, HubRoleChange
from shequ.domains.community.schemas import JoinIn, RoleIn
from shequ.domains.content.models import Post

Headers = dict[str, str]
#: Partner of brand 2 (小米), the brand of hub ``tech``.
TECH_PARTNER = Principal(kind="apikey", id=8, name="xiaomi", permissions=frozenset(
    {"community:read"}), brand_ids=frozenset({2}))
#: Hub tech: p0-p4 by c1 (day 1-5 before T0, qualities 60, 90, None, 90, 30), p5 by c2
#: about P2 (brand b2), p6 held back by moderation; p7 in hub food.
POSTS = [P(1, 1, "tech", 60), P(1, 2, "tech", 90), P(1, 3, "tech", None), P(1, 4, "tech", 90),
         P(1, 5, "tech", 30), P(2, 6, "tech", 70, sku="P2"), P(2, 7, "tech", 99),
         P(3, 1, "food", 50)]
COMMENTS = [(0, 5, 0.5), (0, 6, 0.4), (5, 5, 3), (7, 5, 0.5)]


def load(services: Services) -> None:
    seed(services, POSTS, comments=COMMENTS)
    with transaction(services.sessions) as session:
        held = session.scalar(select(Post).where(Post.external_id == "p6"))
        assert held is not None
        held.status = "held"


def join(services: Services, hub: str, customer: str, role: str = "user") -> Any:
    with transaction(services.sessions) as session:
        return service.join_hub(session, services.clock, hub, JoinIn(
            customer_external_id=customer, role=role))


def test_join_is_idempotent_and_role_changes_are_recorded(services: Services) -> None:
    load(services)
    first = join(services, "tech", "c5")
    again = join(services, "tech", "c5", "expert")
    assert (first.created, again.created, again.role) == (True, False, "user")
    with transaction(services.sessions) as session:
        changed = service.set_role(session, services.clock, "tech", "c5", RoleIn(role="brand"))
        same = service.set_role(session, services.clock, "tech", "c5", RoleIn(role="brand"))
        assert (changed.role, same.role) == ("brand", "brand")
        assert service.role_history(session, "tech", "c5") == [(None, "user"), ("user", "brand")]
        with pytest.raises(ValidationFailed) as brandless:
            service.join_hub(session, services.clock, "food", JoinIn(
                customer_external_id="c5", role="brand"))
        assert (brandless.value.code, brandless.value.attr) == ("hub_without_brand", "role")
        with pytest.raises(NotFound) as no_hub:
            service.join_hub(session, services.clock, "nohub", JoinIn(customer_external_id="c5"))
        assert no_hub.value.attr == "hub"
        with pytest.raises(NotFound) as nobody:
            service.join_hub(session, services.clock, "tech", JoinIn(customer_external_id="c99"))
        assert nobody.value.attr == "customer_external_id"
        with pytest.raises(NotFound):
            service.set_role(session, services.clock, "food", "c5", RoleIn(role="expert"))
        assert session.scalar(select(func.count()).select_from(HubMembership)) == 1


def test_feed_pages_by_keyset_newest_and_best(services: Services) -> None:
    load(services)
    with transaction(services.sessions) as session:
        pages, cursor = [], None
        while True:
            page = service.hub_feed(session, "tech", limit=2, cursor=cursor)
            pages.append([item.external_id for item in page.items])
            cursor = page.next_cursor
            if cursor is None:
                break
        assert pages == [["p0", "p1"], ["p2", "p3"], ["p4", "p5"]]
        best, cursor = [], None
        while True:
            page = service.hub_feed(session, "tech", order="best", limit=2, cursor=cursor)
            best += [(item.external_id, item.quality) for item in page.items]
            if (cursor := page.next_cursor) is None:
                break
        # Equal scores newest id first; the unscored post last; p6 is held, not shown.
        assert best == [("p3", 90), ("p1", 90), ("p5", 70), ("p0", 60), ("p4", 30),
                        ("p2", None)]
        first = service.hub_feed(session, "tech", limit=1)
        assert (first.items[0].comments, first.items[0].author_customer_external_id) == (2,
                                                                                         "c1")
        with pytest.raises(ValidationFailed) as bad:
            service.hub_feed(session, "tech", cursor="garbage")
        assert (bad.value.code, bad.value.attr) == ("bad_cursor", "cursor")


def test_metrics_count_members_posts_and_comments_per_week(services: Services) -> None:
    load(services)
    with transaction(services.sessions) as session:
        service.populate_from_content(session, services.clock, fund_round=False)
    join(services, "tech", "c5")
    with transaction(services.sessions) as session:
        metrics = service.hub_metrics(session, services.clock, "tech", weeks=2)
    # c1 (expert) and c2 joined 200 days ago; c5 now. T0 (Friday 2026-11-20, Shanghai).
    assert metrics.members == {"expert": 1, "brand": 0, "user": 2}
    assert [(w.week, w.new_members, w.posts, w.comments) for w in metrics.weeks] == [
        (date(2026, 11, 9), 0, 2, 0), (date(2026, 11, 16), 1, 4, 3)]
    assert [(t.customer_external_id, t.posts, t.comments_received)
            for t in metrics.top_creators] == [("c1", 5, 2), ("c2", 1, 1)]
    with transaction(services.sessions) as session:
        summaries = service.list_hub_summaries(session)
        assert [(h.external_id, h.members["user"]) for h in summaries] == [("food", 1),
                                                                           ("tech", 2)]
        with pytest.raises(ValidationFailed):
            service.hub_metrics(session, services.clock, "tech", weeks=0)


def test_partners_see_their_brands_hubs_only(services: Services) -> None:
    load(services)
    join(services, "tech", "c5")
    with transaction(services.sessions) as session:
        assert [h.external_id for h in service.list_hub_summaries(
            session, principal=TECH_PARTNER)] == ["tech"]
        with pytest.raises(NotFound):
            service.hub_feed(session, "food", principal=TECH_PARTNER)
        feed = service.hub_feed(session, "tech", principal=TECH_PARTNER)
        assert [(i.external_id, i.author_customer_external_id) for i in feed.items] == [
            ("p5", None)]
        members = service.list_members(session, "tech", principal=TECH_PARTNER)
        assert [m.customer_external_id for m in members.items] == [None]


def test_populate_derives_the_community_once(services: Services) -> None:
    load(services)
    with transaction(services.sessions) as session:
        report = service.populate_from_content(session, services.clock)
    # tech: c1 (expert), c2; food: c3; c4 has no hub, c5 only commented
    assert (report.levels, report.tasks, report.memberships) == (4, 6, 3)
    # three posting creators × three required tasks, and c1's fifth post earns an elective
    assert report.completions == 3 * 3 + 1
    assert report.ladder.creators == 4
    assert report.fund_round is not None
    assert report.fund_round.state == "closed"
    with transaction(services.sessions) as session:
        again = service.populate_from_content(session, services.clock)
        roles = session.execute(select(HubMembership.role, func.count())
                                .group_by(HubMembership.role)).tuples().all()
    assert (again.memberships, again.completions, again.ladder.changes) == (0, 0, 0)
    assert again.fund_round is not None
    assert again.fund_round.replayed
    assert dict(roles) == {"expert": 1, "user": 2}


def test_api_hubs(client: TestClient, services: Services) -> None:
    load(services)
    writer = bearer(make_key(services, ["community:read", "community:write"]))
    base = "/api/v1/community/hubs"
    joined = client.post(f"{base}/tech/members", json={"customer_external_id": "c5"},
                         headers=writer)
    assert (joined.status_code, joined.json()["role"]) == (201, "user"), joined.text
    again = client.post(f"{base}/tech/members", json={"customer_external_id": "c5"},
                        headers=writer)
    assert again.status_code == 200
    role = client.put(f"{base}/tech/members/c5/role", json={"role": "expert"}, headers=writer)
    assert role.json()["role"] == "expert"
    bad = client.put(f"{base}/tech/members/c5/role", json={"role": "owner"}, headers=writer)
    assert (bad.status_code, bad.json()["attr"]) == (422, "role")
    feed = client.get(f"{base}/tech/feed?order=best&limit=2", headers=writer).json()
    assert [i["external_id"] for i in feed["items"]] == ["p3", "p1"]
    assert client.get(f"{base}/tech/feed?cursor={feed['next_cursor']}&order=best",
                      headers=writer).status_code == 200
    assert client.get(f"{base}/tech/metrics?weeks=4", headers=writer).status_code == 200
    members = client.get(f"{base}/tech/members?role=expert", headers=writer).json()
    assert [m["customer_external_id"] for m in members["items"]] == ["c5"]
    partner = bearer(make_key(services, ["community:read"], brand_ids=[2]))
    assert [h["external_id"] for h in client.get(base, headers=partner).json()] == ["tech"]
    assert client.get(f"{base}/food/feed", headers=partner).status_code == 404


@pytest.mark.postgres
def test_concurrent_joins_make_one_membership(pg_services: Services) -> None:
    pg = pg_services
    load(pg)
    start = threading.Barrier(4)
    answers: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        start.wait()
        try:
            answers.append(join(pg, "tech", "c6"))
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    workers = [threading.Thread(target=run) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert errors == []
    assert sorted(answer.created for answer in answers) == [False, False, False, True]
    with transaction(pg.sessions) as session:
        assert session.scalar(select(func.count()).select_from(HubMembership)) == 1
        assert session.scalar(select(func.count()).select_from(HubRoleChange)) == 1

