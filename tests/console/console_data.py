"""A small shop for the console tests: users, catalog, orders over days, events per day.

The fixed clock stands at 2026-11-20 08:00 UTC (16:00 in Shanghai), so the overview's
window is the local days 2026-10-22 .. 2026-11-20.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from httpx2 import Response

from shequ.core import auth
from shequ.core.clock import FixedClock
from shequ.core.db import transaction
from shequ.core.permissions import CLI_PRINCIPAL
from shequ.core.web import Services
from shequ.domains.catalog import service as catalog
from shequ.domains.catalog.schemas import BrandIn, ProductIn
from shequ.domains.customers import service as customers
from shequ.domains.customers.schemas import CustomerIn
from shequ.domains.events import service as events
from shequ.domains.orders import service as orders
from shequ.domains.orders.schemas import LineIn, OrderIn

SHANGHAI = ZoneInfo("Asia/Shanghai")
FIRST_DAY = date(2026, 10, 22)
LAST_DAY = date(2026, 11, 20)
PASSWORDS = {"admin": "admin-pass-1", "ana": "analyst-pass-1", "partner": "partner-pass-1"}

# (order, customer, sku, quantity, created days before the clock, final status)
ORDERS = (
    ("o1", "c1", "SKU1", 2, 1, "paid"),        # 2 x 99.00
    ("o2", "c2", "SKU3", 1, 3, "completed"),   # 12,999.00
    ("o3", "c3", "SKU2", 1, 2, "created"),     # never paid: active customer, no GMV
    ("o4", "c1", "SKU1", 1, 40, "paid"),       # before the window
    ("o5", "c2", "SKU2", 1, 5, "refunded"),    # paid, then refunded: no GMV
)
GMV_FEN = 2 * 9900 + 1299900
PAID_ORDERS = 2
ACTIVE_CUSTOMERS = 3
B1_GMV_FEN = 2 * 9900
B1_PAID_ORDERS = 1


@dataclass(frozen=True)
class Shop:
    """What was inserted, so tests can compare pages with it."""

    brand_ids: dict[str, int]
    events_per_day: list[int]

    @property
    def events_total(self) -> int:
        return sum(self.events_per_day)


def add_user(services: Services, username: str, role: str,
             brand_ids: list[int] | None = None) -> int:
    with transaction(services.sessions) as s:
        return auth.create_user(s, services.clock, username=username, role=role,
                                password=PASSWORDS[username], brand_ids=brand_ids).id


def _catalog(services: Services) -> dict[str, int]:
    with transaction(services.sessions, actor="cli") as s:
        for key, name in (("b1", "花知晓"), ("b2", "小米")):
            catalog.create_brand(s, BrandIn(external_id=key, name=name))
        for sku, brand, price in (("SKU1", "b1", 9900), ("SKU2", "b1", 19900),
                                  ("SKU3", "b2", 1299900)):
            catalog.create_product(s, services.clock, CLI_PRINCIPAL, ProductIn(
                sku=sku, name=f"商品{sku}", brand_external_id=brand, price_fen=price, stock=50))
        return {b.external_id: b.id for b in catalog.list_brands(s, CLI_PRINCIPAL)}


def _orders(services: Services) -> None:
    now = services.clock.now()
    with transaction(services.sessions) as s:
        for key in ("c1", "c2", "c3"):
            customers.create_customer(s, services.clock, CustomerIn(external_id=key))
        for external_id, customer, sku, quantity, days_ago, status in ORDERS:
            at = FixedClock(now - timedelta(days=days_ago))
            orders.create_order(s, at, OrderIn(external_id=external_id,
                                               customer_external_id=customer,
                                               lines=[LineIn(sku=sku, quantity=quantity)]))
            path = {"created": [], "paid": ["paid"], "completed": ["paid", "shipped", "completed"],
                    "refunded": ["paid", "refunded"]}[status]
            for step in path:
                orders.transition_order(s, at, CLI_PRINCIPAL, external_id, step)  # type: ignore[arg-type]


def _event(event_id: str, at: datetime) -> dict[str, Any]:
    return {"event_id": event_id, "name": "page_view", "timestamp": at.isoformat(),
            "anonymous_id": f"anon-{event_id}"}


def _events(services: Services) -> list[int]:
    """``i % 5`` events at local noon of the i-th window day, plus two edge cases."""
    counts = [i % 5 for i in range(30)]
    batch = []
    for i, count in enumerate(counts):
        noon = datetime.combine(FIRST_DAY + timedelta(days=i), datetime.min.time(), SHANGHAI)
        batch += [_event(f"e{i}-{k}", noon + timedelta(hours=12, minutes=k)) for k in range(count)]
    # 00:30 in Shanghai is still the previous day in UTC: it counts for the local day.
    batch.append(_event("edge-after", datetime(2026, 11, 19, 16, 30, tzinfo=UTC)))
    counts[-1] += 1
    # 23:30 local on the day before the window: outside.
    batch.append(_event("edge-before", datetime(2026, 10, 21, 23, 30, tzinfo=SHANGHAI)))
    answer = events.ingest(services, json.dumps(batch).encode())
    assert answer["accepted"] == len(batch), answer
    return counts


def seed_shop(services: Services) -> Shop:
    """Catalog, customers, orders and events; users are added by the tests."""
    brand_ids = _catalog(services)
    _orders(services)
    return Shop(brand_ids=brand_ids, events_per_day=_events(services))


def csrf_in(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None, "no CSRF field in the page"
    return found.group(1)


def log_in(client: TestClient, username: str, password: str | None = None,
           next_path: str | None = None) -> Response:
    """Fill in the login form as a browser would (without following the redirect)."""
    form = client.get("/console/login")
    data = {"username": username, "password": password or PASSWORDS[username],
            "csrf_token": csrf_in(form.text)}
    if next_path is not None:
        data["next"] = next_path
    return client.post("/console/login", data=data, follow_redirects=False)


def nav_links(html: str) -> list[str]:
    block = re.search(r'<nav class="nav".*?</nav>', html, re.S)
    assert block is not None, "no navigation in the page"
    return re.findall(r'href="([^"]+)"', block.group(0))


def chart_data(html: str) -> dict[str, Any]:
    found = re.search(r'<script type="application/json" id="events-data">(.*?)</script>',
                      html, re.S)
    assert found is not None, "no chart data in the page"
    data: dict[str, Any] = json.loads(found.group(1))
    return data
