"""The creators ladder and academy on real stores: criteria and their validation,
evaluation with explanations and idempotent history, academy completions, the dashboard,
core-creator retention, the API, and concurrent evaluations on PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from conftest import T0, bearer, make_key
from shequ.core.db import transaction
from shequ.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from shequ.core.permissions import Principal
from shequ.core.web import Services
from shequ.domains.catalog import service as catalog
from shequ.domains.catalog.models import Brand, Product
from shequ.domains.community import service
from shequ.domains.community.models import CreatorStanding, LevelChange, TaskCompletion
from shequ.domains.community.schemas import CompletionIn, LevelIn
from shequ.domains.content.models import Comment, Creator, Hub, Post, PostScore
from shequ.domains.customers import service as customers
from shequ.domains.customers.models import Customer

Headers = dict[str, str]
PARTNER = Principal(kind="apikey", id=9, name="partner", permissions=frozenset(
    {"community:read"}), brand_ids=frozenset({1}))


@dataclass(frozen=True)
class P:
    """A post to seed: author number, days before T0, hub, quality, views, orders."""

    who: int
    days_ago: float
    hub: str | None = None
    quality: float | None = 70.0
    views: int = 100
    orders: int = 1
    sku: str | None = None


def seed(services: Services, posts: Sequence[P], *, people: int = 6,
         comments: Sequence[tuple[int, int, float]] = ()) -> None:
    """Brands b1/b2, products P1 (b1) and P2 (b2), customers c1..cN, hubs ``tech`` (brand
    b2) and ``food``, creators cr1 (c1, tech, expert), cr2 (c2, tech), cr3 (c3, food) and
    cr4 (c4, no hub), the ``posts`` (p0, p1 …) with their scores, and ``comments``
    ``(post index, commenter, days ago)``."""
    joined = T0 - timedelta(days=200)
    with transaction(services.sessions) as session:
        catalog.bulk_load(session, [{"external_id": "b1", "name": "花知晓"},
                                    {"external_id": "b2", "name": "小米"}], [], [
            {"sku": "P1", "name": "面霜", "brand_external_id": "b1", "price_fen": 9900,
             "stock": 100},
            {"sku": "P2", "name": "手机", "brand_external_id": "b2", "price_fen": 199900,
             "stock": 100}])
        customers.bulk_load(session, [
            {"external_id": f"c{i}", "nickname": f"用户{i}", "gender": "f", "city": "上海",
             "birth_year": 1990, "registered_at": joined, "acquisition_channel": "app"}
            for i in range(1, people + 1)], [])
        brands = dict(session.execute(select(Brand.external_id, Brand.id)).tuples().all())
        hubs = [Hub(external_id="tech", name="科技评测局", brand_id=brands["b2"]),
                Hub(external_id="food", name="美食实验室")]
        session.add_all(hubs)
        session.flush()
        known = dict(session.execute(select(Customer.external_id, Customer.id)).tuples().all())
        session.add_all(Creator(external_id=f"cr{i}", customer_id=known[f"c{i}"],
                                display_name=f"创作者{i}", level="expert" if i == 1 else "KOC",
                                hub_id=hub.id if hub else None, joined_at=joined)
                        for i, hub in ((1, hubs[0]), (2, hubs[0]), (3, hubs[1]), (4, None)))
        add_posts(session, posts, comments)


def add_posts(session: Session, posts: Sequence[P],
              comments: Sequence[tuple[int, int, float]] = ()) -> None:
    """Posts p0, p1 … with their scores and comments, written straight to the content
    tables (the content loaders also run its text models, which these tests do not need)."""
    people = dict(session.execute(select(Customer.external_id, Customer.id)).tuples().all())
    hubs = dict(session.execute(select(Hub.external_id, Hub.id)).tuples().all())
    products = {row.sku: row for row in session.scalars(select(Product))}
    rows = []
    for n, post in enumerate(posts):
        product = products.get(post.sku) if post.sku else None
        rows.append(Post(
            external_id=f"p{n}", customer_id=people[f"c{post.who}"],
            hub_id=hubs.get(post.hub) if post.hub else None, content_type="review",
            title=f"第{n}篇心得", body="很好用", product_id=product.id if product else None,
            brand_id=product.brand_id if product else None,
            created_at=T0 - timedelta(days=post.days_ago), status="published"))
    session.add_all(rows)
    session.flush()
    for row, post in zip(rows, posts, strict=True):
        session.add(PostScore(post_id=row.id, quality=post.quality, views=post.views,
                              attributed_orders=post.orders,
                              attributed_gmv_fen=post.orders * 9900))
    session.add_all(Comment(external_id=f"m{n}", post_id=rows[index].id,
                            customer_id=people[f"c{who}"], text="学到了",
                            created_at=T0 - timedelta(days=ago))
                    for n, (index, who, ago) in enumerate(comments))
    session.flush()


def customer_id(services: Services, key: str) -> int:
    with transaction(services.sessions) as session:
        return customers.customer_ids_by_key(session, [key])[key]


def install(services: Services, **levels: LevelIn) -> None:
    with transaction(services.sessions) as session:
        service.install_defaults(session, services.clock)
        for code, data in levels.items():
            service.put_level(session, services.clock, code, data)


def complete(services: Services, creator: str, *codes: str) -> None:
    with transaction(services.sessions) as session:
        for code in codes:
            service.complete_task(session, services.clock, code,
                                  CompletionIn(creator_external_id=creator))


def evaluate(services: Services, as_of: datetime | None = None) -> Any:
    with transaction(services.sessions) as session:
        return service.evaluate_ladder(session, services.clock, as_of)


def levels(services: Services) -> dict[int, str]:
    with transaction(services.sessions) as session:
        return dict(session.execute(select(CreatorStanding.customer_id, CreatorStanding.level))
                    .tuples().all())


REQUIRED = ("community_rules", "rules_quiz", "first_post")
#: Four creators: c1 strong everywhere, c2 certified-grade, c3 posts poor content, c4 none.
POSTS = ([P(1, d, "tech", 80, 500, 3) for d in (1, 5, 9, 13, 20, 30, 40, 50, 60, 70)]
         + [P(2, d, "tech", 55, 200, 1) for d in (2, 6, 10, 14)]
         + [P(3, d, "food", 20, 50, 0) for d in (3, 7, 11, 15, 19)])


# --- criteria ------------------------------------------------------------------------------


def test_default_ladder_installs_once(services: Services) -> None:
    install(services)
    install(services)
    with transaction(services.sessions) as session:
        found = service.list_levels(session)
        assert [(level.code, level.rank, level.name) for level in found] == [
            ("newcomer", 0, "新人"), ("certified", 1, "认证KOC"), ("senior", 2, "资深KOC"),
            ("core", 3, "核心创作者")]
        assert len(service.list_tasks(session)) == 6


@pytest.mark.parametrize(("code", "data", "attr", "error"), [
    ("senior", LevelIn(name="资深", min_posts=1), "min_posts", "criteria_decreasing"),
    ("certified", LevelIn(name="认证", min_posts=20), "min_posts", "criteria_decreasing"),
    ("newcomer", LevelIn(name="新人", min_hub_days=3), "min_hub_days", "newcomer_has_criteria"),
    ("core", LevelIn(name="核心", min_posts=10, min_mean_quality=60, min_orders=5,
                     min_academy_tasks=5, min_hub_days=60), "required_tasks_done",
     "criteria_decreasing"),
])  # fmt: skip
def test_criteria_changes_are_checked_against_the_other_levels(
        services: Services, code: str, data: LevelIn, attr: str, error: str) -> None:
    install(services)
    with transaction(services.sessions) as session, pytest.raises(ValidationFailed) as caught:
        service.put_level(session, services.clock, code, data)
    assert (caught.value.code, caught.value.attr) == (error, attr)
    with transaction(services.sessions) as session, pytest.raises(NotFound):
        service.put_level(session, services.clock, "legend", LevelIn(name="传奇"))


# --- evaluation ----------------------------------------------------------------------------


def test_evaluation_gives_the_highest_level_met_and_explains_it(services: Services) -> None:
    seed(services, POSTS)
    install(services)
    for creator in ("cr1", "cr2", "cr3"):
        complete(services, creator, *REQUIRED)
    complete(services, "cr1", "review_writing", "product_photo")
    complete(services, "cr2", "review_writing")
    with transaction(services.sessions) as session:  # c1 and c2 joined their hub 200 days ago
        service.populate_from_content(session, services.clock, fund_round=False)
    ids = {key: customer_id(services, key) for key in ("c1", "c2", "c3", "c4")}
    assert levels(services) == {ids["c1"]: "core", ids["c2"]: "certified",
                                ids["c3"]: "newcomer", ids["c4"]: "newcomer"}
    with transaction(services.sessions) as session:
        two = service.standing(session, services.clock, "cr2")
        three = service.standing(session, services.clock, "cr3")
    assert (two.level, two.level_name, two.next_level) == ("certified", "认证KOC", "senior")
    # cr2: 4 posts of quality 55 and 4 orders in 90 days, 4 tasks; senior wants 6 posts
    assert [(c.criterion, c.needed, c.actual) for c in two.missing_for_next] == [
        ("posts", 6, 4)]
    assert {(c.criterion, c.passed) for c in three.checks if c.level == "certified"} == {
        ("posts", True), ("mean_quality", False), ("academy_tasks", True),
        ("required_tasks", True)}
    assert [c.criterion for c in three.missing_for_next] == ["mean_quality"]


def test_the_same_instant_twice_changes_nothing(services: Services) -> None:
    seed(services, POSTS)
    install(services)
    complete(services, "cr1", *REQUIRED)
    first = evaluate(services)
    assert (first.creators, first.upgrades, first.changes) == (4, 4, 4)
    again = evaluate(services)
    assert (again.upgrades, again.downgrades, again.changes) == (0, 0, 0)
    assert again.levels == first.levels == {"newcomer": 3, "certified": 1, "senior": 0,
                                            "core": 0}
    with transaction(services.sessions) as session:
        assert session.scalar(select(func.count()).select_from(LevelChange)) == 4
        page = service.list_changes(session, limit=3)
        assert (len(page.items), page.next_after) == (3, page.items[-1].id)
        rest = service.list_changes(session, after=page.next_after)
        assert (len(rest.items), rest.next_after) == (1, None)
        assert {c.creator_external_id for c in page.items + rest.items} == {
            "cr1", "cr2", "cr3", "cr4"}


def test_levels_fall_when_the_window_empties(services: Services, clock: Any) -> None:
    seed(services, [P(2, d, "tech", 60, 100, 0) for d in (1, 2, 3)])
    install(services)
    complete(services, "cr2", *REQUIRED)
    assert evaluate(services).levels["certified"] == 1
    clock.advance(timedelta(days=100))
    later = evaluate(services)
    assert (later.downgrades, later.levels["certified"]) == (1, 0)
    with transaction(services.sessions) as session:
        history = [(c.from_level, c.to_level) for c in service.list_changes(session).items
                   if c.creator_external_id == "cr2"]
    assert history == [(None, "certified"), ("certified", "newcomer")]
    with pytest.raises(Conflict) as caught:
        evaluate(services, T0)  # before the last evaluation
    assert caught.value.attr == "as_of"
    with pytest.raises(ValidationFailed) as future:
        evaluate(services, clock.now() + timedelta(hours=1))
    assert future.value.code == "time_in_future"


def test_evaluation_needs_every_level(services: Services) -> None:
    seed(services, [])
    with pytest.raises(Conflict) as caught:
        evaluate(services)
    assert caught.value.code == "ladder_levels_missing"


# --- academy -------------------------------------------------------------------------------


def test_completing_twice_returns_the_same_record(services: Services) -> None:
    seed(services, [])
    install(services)
    with transaction(services.sessions) as session:
        first = service.complete_task(session, services.clock, "rules_quiz",
                                      CompletionIn(creator_external_id="cr3"))
        second = service.complete_task(session, services.clock, "rules_quiz", CompletionIn(
            creator_external_id="cr3", completed_at=T0 - timedelta(days=1)))
        assert (first.created, second.created) == (True, False)
        assert (second.id, second.completed_at) == (first.id, first.completed_at)
        with pytest.raises(NotFound) as missing:
            service.complete_task(session, services.clock, "no_such_task",
                                  CompletionIn(creator_external_id="cr3"))
        assert missing.value.attr == "task_code"
        with pytest.raises(NotFound) as nobody:
            service.complete_task(session, services.clock, "rules_quiz",
                                  CompletionIn(creator_external_id="cr99"))
        assert nobody.value.attr == "creator_external_id"
        done = service.progress(session, "cr3")
    assert (done.completed, done.tasks, done.required_completed, done.required_tasks,
            done.points) == (1, 6, 1, 3, 20)


# --- dashboard and retention ---------------------------------------------------------------


def test_dashboard_sets_a_creator_beside_the_platform_average(services: Services) -> None:
    seed(services, POSTS)
    install(services)
    with transaction(services.sessions) as session:
        board = service.dashboard(session, services.clock, "cr2", days=30)
    # 30 days (both ends): c1 has 6 posts (q 80, 500 views, 3 orders each), c2 4 (55,
    # 200, 1), c3 5 (20, 50, 0)
    assert (board.creator.posts, board.creator.mean_quality, board.creator.views,
            board.creator.orders, board.creator.conversion) == (4, 55, 800, 4, 0.005)
    assert board.score == 4 * 55
    average = board.platform_average
    assert average.posts == 5
    assert average.mean_quality == pytest.approx((6 * 80 + 4 * 55 + 5 * 20) / 15)
    assert average.conversion == pytest.approx((18 + 4) / (3000 + 800 + 250))
    assert (board.level, board.next_level) == ("newcomer", "certified")
    assert board.academy.tasks == 6
    with transaction(services.sessions) as session, pytest.raises(ValidationFailed):
        service.dashboard(session, services.clock, "cr2", days=0)


def test_core_creators_are_followed_month_by_month(services: Services) -> None:
    # Months in Shanghai: T0 is 2026-11-20. c1 posts every month, c2 only in September,
    # c3 (few, poor posts) in September and November.
    posts = [P(1, d, "tech", 80) for d in (75, 45, 15, 5)] + [P(2, 72, "tech", 90)] + [
        P(3, 70, "food", 10), P(3, 3, "food", 10)]
    seed(services, posts)
    install(services)
    with transaction(services.sessions) as session:
        found = service.core_retention(session, services.clock, months=3)
    assert found.months == ["2026-09", "2026-10", "2026-11"]
    september, october, november = found.cohorts
    # September scorers: c2 (90), c1 (80), c3 (10): the top decile is one creator, c2
    assert (september.size, september.still_posting, september.retained) == (1, [0, 0],
                                                                             [0.0, 0.0])
    assert (october.size, october.still_posting, october.retained) == (1, [1], [1.0])
    assert (november.size, november.still_posting) == (1, [])
    with transaction(services.sessions) as session, pytest.raises(ValidationFailed) as caught:
        service.core_retention(session, services.clock, months=0)
    assert caught.value.attr == "months"


def test_partners_are_refused(services: Services) -> None:
    seed(services, [])
    install(services)
    with transaction(services.sessions) as session:
        for call in (lambda: service.list_levels(session, principal=PARTNER),
                     lambda: service.evaluate_ladder(session, services.clock,
                                                     principal=PARTNER),
                     lambda: service.dashboard(session, services.clock, "cr1",
                                               principal=PARTNER),
                     lambda: service.core_retention(session, services.clock,
                                                    principal=PARTNER)):
            with pytest.raises(PermissionDenied):
                call()


# --- API -----------------------------------------------------------------------------------


@pytest.fixture
def writer(services: Services) -> Headers:
    return bearer(make_key(services, ["community:read", "community:write"]))


def test_api_levels_evaluate_standing_academy_permissions(client: TestClient, services: Services,
                                              writer: Headers) -> None:
    seed(services, POSTS)
    install(services)
    base = "/api/v1/community"
    assert [r["code"] for r in client.get(f"{base}/ladder/levels", headers=writer).json()] == [
        "newcomer", "certified", "senior", "core"]
    body = {"name": "认证KOC", "min_posts": 3, "min_mean_quality": 50}
    put = client.put(f"{base}/ladder/levels/certified", json=body, headers=writer)
    assert (put.status_code, put.json()["min_mean_quality"]) == (200, 50), put.text
    done = client.post(f"{base}/academy/tasks/first_post/completions",
                       json={"creator_external_id": "cr2"}, headers=writer)
    assert (done.status_code, done.json()["created"]) == (201, True)
    again = client.post(f"{base}/academy/tasks/first_post/completions",
                        json={"creator_external_id": "cr2"}, headers=writer)
    assert (again.status_code, again.json()["id"]) == (200, done.json()["id"])
    report = client.post(f"{base}/ladder/evaluate", headers=writer)
    assert (report.status_code, report.json()["levels"]["certified"]) == (200, 2), report.text
    standing = client.get(f"{base}/ladder/creators/cr2", headers=writer).json()
    assert (standing["level"], standing["next_level"]) == ("certified", "senior")
    board = client.get(f"{base}/creators/cr1/dashboard?days=90", headers=writer).json()
    assert board["creator"]["posts"] == 10
    progress = client.get(f"{base}/academy/creators/cr2", headers=writer).json()
    assert (progress["completed"], progress["points"]) == (1, 30)
    task = client.put(f"{base}/academy/tasks/live_selling", json={
        "title": "直播进阶", "kind": "live", "points": 40}, headers=writer)
    assert task.status_code == 200
    assert client.get(f"{base}/retention?months=2", headers=writer).status_code == 200
    assert client.get(f"{base}/ladder/creators/nobody", headers=writer).status_code == 404
    reader = bearer(make_key(services, ["community:read"]))
    assert client.post(f"{base}/ladder/evaluate", headers=reader).status_code == 403
    assert client.get(f"{base}/ladder/levels", headers=reader).status_code == 200
    partner = bearer(make_key(services, ["community:read"], brand_ids=[1]))
    refused = client.get(f"{base}/ladder/levels", headers=partner)
    assert (refused.status_code, refused.json()["code"]) == (403, "platform_wide_creators")




BAD_INPUT = [
    ("/ladder/levels/senior", {"name": "资深", "min_posts": -1}, "min_posts"),
    ("/ladder/levels/senior", {"name": "资深", "min_mean_quality": 101}, "min_mean_quality"),
    ("/ladder/levels/senior", {"name": "资深", "min_posts": 1}, "min_posts"),
    ("/ladder/levels/senior", {"name": "资深", "window_days": 0}, "window_days"),
    ("/academy/tasks/quiz2", {"title": "测验", "kind": "exam"}, "kind"),
    ("/academy/tasks/quiz2", {"title": "测验", "points": -5}, "points"),
]


def test_api_bad_input_names_the_field(client: TestClient, services: Services,
                                       writer: Headers) -> None:
    seed(services, [])
    install(services)
    for path, body, attr in BAD_INPUT:
        answer = client.put(f"/api/v1/community{path}", json=body, headers=writer)
        assert (answer.status_code, answer.json()["attr"]) == (422, attr), answer.text
    with transaction(services.sessions) as session:
        assert [level.min_posts for level in service.list_levels(session)] == [0, 3, 6, 10]


# --- PostgreSQL ----------------------------------------------------------------------------


def together(services: Services, work: Any, threads: int = 4) -> list[Any]:
    """Run ``work(session)`` from several threads at once, each in its own transaction."""
    start = threading.Barrier(threads)
    results: list[Any] = []
    failures: list[BaseException] = []

    def run() -> None:
        start.wait()
        try:
            with transaction(services.sessions) as session:
                results.append(work(session))
        except BaseException as exc:  # reported by the assertion below
            failures.append(exc)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert failures == []
    return results


@pytest.mark.postgres
def test_concurrent_evaluations_and_completions_write_once(pg_services: Services) -> None:
    pg = pg_services
    seed(pg, POSTS)
    install(pg)
    completed = together(pg, lambda session: service.complete_task(
        session, pg.clock, "first_post", CompletionIn(creator_external_id="cr1")))
    assert sorted(done.created for done in completed) == [False, False, False, True]
    assert len({done.id for done in completed}) == 1
    complete(pg, "cr1", "community_rules", "rules_quiz")
    reports = together(pg, lambda session: service.evaluate_ladder(session, pg.clock,
                                                                   T0))
    assert sorted(report.changes for report in reports) == [0, 0, 0, 4]
    with transaction(pg.sessions) as session:
        assert session.scalar(select(func.count()).select_from(LevelChange)) == 4
        assert session.scalar(select(func.count()).select_from(TaskCompletion)) == 3

