"""Who did it: one person id per event, across anonymous visits and logins."""

from __future__ import annotations

from typing import TYPE_CHECKING

import ibis

if TYPE_CHECKING:
    from shequ.analytics.store import EventStore

ANONYMOUS_PREFIX = "anon:"


def with_person_id(store: EventStore, events: ibis.Table) -> ibis.Table:
    """``events`` plus ``person_id``: the customer, else the anonymous visitor's linked
    customer (``identity_links``), else ``anon:<anonymous_id>``.

    A visitor who later logs in is therefore one person before and after the login.
    """
    links = store.table("identity_links")
    links = links.select(link_anonymous_id=links.anonymous_id, link_customer_id=links.customer_id)
    joined = events.left_join(links, events.anonymous_id == links.link_anonymous_id)
    person = ibis.coalesce(
        joined.customer_id,
        joined.link_customer_id,
        ibis.literal(ANONYMOUS_PREFIX).concat(joined.anonymous_id),
    )
    return joined.mutate(person_id=person).drop("link_anonymous_id", "link_customer_id")
