"""Load a generated community into the real stores through the domains' bulk loaders."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from shequ.analytics.segments import PRESETS
from shequ.core.db import transaction
from shequ.core.permissions import CLI_PRINCIPAL
from shequ.core.web import Services
from shequ.demo import campaigns, coupons, group_buying, moderators, points, referrals
from shequ.demo.generator import Community, generate
from shequ.domains.alerts import service as alerts
from shequ.domains.catalog import service as catalog
from shequ.domains.community import service as community
from shequ.domains.content import needs
from shequ.domains.content import service as content
from shequ.domains.customers import service as customers
from shequ.domains.events import service as events
from shequ.domains.insight import service as insight
from shequ.domains.lifecycle import service as lifecycle
from shequ.domains.membership import service as membership
from shequ.domains.orders import service as orders
from shequ.domains.segments import service as segments
from shequ.domains.segments.schemas import SegmentIn

Progress = Callable[[str, int, int], None]


def _quiet(_step: str, _done: int, _total: int) -> None:
    return None


def _load_entities(services: Services, community: Community, on_progress: Progress) -> None:
    # One transaction for all entities: a failed demo build leaves an empty store behind,
    # never half a community.
    with transaction(services.sessions) as session:
        on_progress("entities", 0, 4)
        catalog.bulk_load(session, community.brands, community.categories, community.products)
        on_progress("entities", 1, 4)
        customers.bulk_load(session, community.customers, community.devices)
        on_progress("entities", 2, 4)
        orders.bulk_load_orders(session, community.orders, community.order_lines)
        on_progress("entities", 3, 4)
        content.bulk_load(session, community.hubs, community.creators, community.posts,
                          community.comments, community.reviews)
        on_progress("entities", 4, 4)


def _load_events(services: Services, community: Community, on_progress: Progress) -> int:
    store = events.event_store(services)
    total = community.event_count
    done = 0
    on_progress("events", 0, total)
    for chunk in community.events():
        store.ingest_arrow(chunk)
        done += chunk.num_rows
        on_progress("events", done, max(total, done))
    return done


def _monitor(services: Services, first: date, last: date, on_progress: Progress) -> None:
    """The 18 metrics over the window, the starter alert rules, and their evaluation (the
    planted payment drop raises a red alert on the payment rate)."""
    days = (last - first).days + 1
    on_progress("metrics", 0, days)
    events.refresh_metrics(services, first, last,
                           on_progress=lambda done, total: on_progress("metrics", done, total))
    with transaction(services.sessions, actor="cli") as session:
        alerts.install_starter_rules(session, services, CLI_PRINCIPAL)
    alerts.evaluate_days(services, first, last)


DEMO_SEGMENTS = ("browsed_not_bought", "cart_abandoners", "lapsing_high_value",
                 "black_gold_members")


def _customer_intelligence(services: Services, last: date, on_progress: Progress) -> None:
    """Membership rules, lifecycle strategies and a few saved segments, then the whole
    insight chain as of the window's last day (tiers, stages, profiles, tags, segments)."""
    with transaction(services.sessions, actor="cli", clock=services.clock) as session:
        membership.install_default_rules(session, services.clock)
        lifecycle.install_default_strategies(session)
    for key in DEMO_SEGMENTS:
        preset = PRESETS[key]
        segments.create_segment(services, CLI_PRINCIPAL, SegmentIn(
            name=preset["name"], key=key.replace("_", "-"), rule=preset["rule"],
            description=preset["description"]))
    on_progress("customers", 0, 1)
    insight.refresh_everything(
        services, as_of=last,
        on_progress=lambda _label, done: on_progress("customers", round(done * 100), 100))


def _content_ecosystem(services: Services, on_progress: Progress) -> None:
    """Post scores (originality, reach, conversion), then the creator programmes derived from
    them (hub memberships, academy credits, the KOC ladder and a closed fund round), then
    the needs report of the last quarter with data."""
    steps = 7  # the score refresh's five steps, the creator programmes, the needs report
    content.refresh_scores(services, CLI_PRINCIPAL,
                           on_progress=lambda _label, done, _total: on_progress("content", done,
                                                                                steps))
    with transaction(services.sessions, actor="cli", clock=services.clock) as session:
        community.populate_from_content(session, services.clock)
    on_progress("content", steps - 1, steps)
    with transaction(services.sessions) as session:  # the needs report, stored for the console
        needs.needs_report(session, CLI_PRINCIPAL, needs.default_quarter(session),
                           now=services.clock.now())
    on_progress("content", steps, steps)


def _moderation(services: Services, community: Community, on_progress: Progress
                ) -> dict[str, Any]:
    """The moderators work the queue the load filled (docs/moderation.md)."""
    on_progress("moderation", 0, 2)
    figures = moderators.work_the_queue(services, community.planted["violations"],
                                        community.end, community.seed)
    on_progress("moderation", 1, 2)
    opened = moderators.detect_crises(services, community.start, community.end)
    on_progress("moderation", 2, 2)
    return {"incidents_opened": opened,
            "submitted": figures.submitted, "auto_share": figures.auto_share,
            "p50_minutes": figures.p50_minutes, "p95_minutes": figures.p95_minutes,
            "human_p50_minutes": figures.human_p50_minutes,
            "human_p95_minutes": figures.human_p95_minutes,
            "overturn_rate": figures.overturn_rate, "waiting": figures.waiting}


def commerce_community(community: Community) -> Community:
    """The community the commerce areas draw their customers from: everybody but the
    planted lapsing customers and the coupon-abuse ring, who keep their planted
    histories."""
    planted = community.planted
    kept = set(planted.get("lapsing_customers", {}).get("customer_external_ids", [])) | set(
        planted.get("coupon_ring", {}).get("customer_external_ids", []))
    return dataclasses.replace(community, customers=[
        row for row in community.customers if row["external_id"] not in kept])


def _commerce(services: Services, community: Community, on_progress: Progress
              ) -> dict[str, Any]:
    """Points, then the social-commerce areas, each through its own service; campaigns
    last, so their results read the orders and posts the others made."""
    others = commerce_community(community)
    steps = (("points", points.run), ("group_buying", group_buying.run),
             ("coupons", coupons.run), ("referrals", referrals.run),
             ("campaigns", campaigns.run))
    found: dict[str, Any] = {}
    for done, (name, run) in enumerate(steps):
        on_progress("commerce", done, len(steps))
        found[name] = run(services, others)
    on_progress("commerce", len(steps), len(steps))
    return found


def _order_count(services: Services) -> int:
    with transaction(services.sessions) as session:
        return orders.list_orders(session, CLI_PRINCIPAL, limit=1).total


def load_demo(services: Services, *, size: str, seed: int, end: date | None = None,
              on_progress: Progress = _quiet) -> dict[str, Any]:
    """Generate the ``size`` community for ``seed`` ending on ``end``, load it, summarise."""
    community = generate(size=size, seed=seed, end=end)
    moderators.install_shop_terms(services)
    _load_entities(services, community, on_progress)
    event_rows = _load_events(services, community, on_progress)
    first, last = community.start.date(), community.end.date()
    events.rollup(services, first - timedelta(days=1), last + timedelta(days=1))
    events.sync_dimensions(services)
    _monitor(services, first, last, on_progress)
    _customer_intelligence(services, last, on_progress)
    _content_ecosystem(services, on_progress)
    moderation = _moderation(services, community, on_progress)
    commerce = _commerce(services, community, on_progress)
    counts = {
        "brands": len(community.brands), "products": len(community.products),
        "customers": len(community.customers), "devices": len(community.devices),
        "orders": len(community.orders), "order_lines": len(community.order_lines),
        "reviews": len(community.reviews), "posts": len(community.posts),
        "comments": len(community.comments), "creators": len(community.creators),
        "hubs": len(community.hubs), "events": event_rows,
        # invitees and referred friends who signed up during the referral demo, and the
        # orders the commerce areas placed (group members, coupon checkouts, referrals)
        "customers_signed_up": int(commerce.get("referrals", {}).get("signed_up", 0)),
        "commerce_orders": _order_count(services) - len(community.orders),
    }
    return {"size": size, "seed": seed, "window": [first.isoformat(), last.isoformat()],
            "counts": counts, "planted": community.planted, "moderation": moderation,
            "commerce": commerce}
