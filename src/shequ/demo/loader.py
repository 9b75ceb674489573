"""Load a generated community into the real stores through the domains' bulk loaders."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from shequ.demo.generator import SIZES, generate

from shequ.core.db import transaction
from shequ.core.web import Services
from shequ.domains.catalog import service as catalog
from shequ.domains.content import service as content
from shequ.domains.customers import service as customers
from shequ.domains.events import service as events
from shequ.domains.orders import service as orders

Progress = Callable[[str, int, int], None]


def _quiet(_step: str, _done: int, _total: int) -> None:
    return None


def _load_entities(services: Services, community: Any, on_progress: Progress) -> None:
    steps = (
        ("catalog", lambda s: catalog.bulk_load(s, community.brands, community.categories,
                                                community.products)),
        ("customers", lambda s: customers.bulk_load(s, community.customers, community.devices)),
        ("orders", lambda s: orders.bulk_load_orders(s, community.orders,
                                                     community.order_lines)),
        ("content", lambda s: content.bulk_load(s, community.hubs, community.creators,
                                                community.posts, community.comments,
                                                community.reviews)),
    )
    # One transaction for all entities: a failed demo build leaves an empty store behind,
    # never half a community.
    with transaction(services.sessions) as session:
        for number, (name, load) in enumerate(steps, start=1):
            on_progress("entities", number - 1, len(steps))
            load(session)
        on_progress("entities", len(steps), len(steps))


def _load_events(services: Services, community: Any, on_progress: Progress) -> int:
    store = events.event_store(services)
    total = SIZES[community.size].events
    done = 0
    on_progress("events", 0, total)
    for chunk in community.events():
        store.ingest_arrow(chunk)
        done += chunk.num_rows
        on_progress("events", done, max(total, done))
    return done


def load_demo(services: Services, *, size: str, seed: int,
              on_progress: Progress = _quiet) -> dict[str, Any]:
    """Generate the ``size`` community for ``seed`` and load it; returns a summary."""
    community = generate(size=size, seed=seed)
    _load_entities(services, community, on_progress)
    event_rows = _load_events(services, community, on_progress)
    first, last = community.window
    events.rollup(services, first - timedelta(days=1), last)
    counts = {
        "brands": len(community.brands), "products": len(community.products),
        "customers": len(community.customers), "devices": len(community.devices),
        "orders": len(community.orders), "order_lines": len(community.order_lines),
        "reviews": len(community.reviews), "posts": len(community.posts),
        "comments": len(community.comments), "creators": len(community.creators),
        "hubs": len(community.hubs), "events": event_rows,
    }
    return {"size": size, "seed": seed, "window": [first.isoformat(), last.isoformat()],
            "counts": counts, "planted": community.planted}
