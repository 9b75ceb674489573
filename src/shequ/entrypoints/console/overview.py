"""The overview page's figures: the last 30 local days in the business time zone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy.orm import Session

from shequ.core.errors import Unavailable
from shequ.core.permissions import Principal
from shequ.core.web import Services
from shequ.domains.events import service as events
from shequ.domains.orders import service as orders
from shequ.entrypoints.console.i18n import N_

WINDOW_DAYS = 30


@dataclass(frozen=True)
class Overview:
    """KPI figures for ``first_day``..``last_day`` (local days, both included).

    ``None`` marks a figure the caller may not see (partners see their brands' sales only)
    or that is unavailable right now; ``note`` (a msgid) then says why.
    """

    first_day: date
    last_day: date
    gmv_fen: int
    paid_orders: int
    active_customers: int | None
    events_by_day: list[tuple[date, int]] | None
    note: str | None = None

    @property
    def events_total(self) -> int | None:
        """Events over the whole window."""
        return None if self.events_by_day is None else sum(n for _, n in self.events_by_day)

    @property
    def days(self) -> list[date]:
        """The chart's x axis."""
        return [day for day, _ in self.events_by_day or []]

    @property
    def counts(self) -> list[int]:
        """The chart's series."""
        return [count for _, count in self.events_by_day or []]


def window(services: Services, days: int = WINDOW_DAYS) -> tuple[date, date, datetime, datetime]:
    """The last ``days`` local days up to today: first and last day, and their UTC bounds."""
    zone = services.settings.zone
    last = services.clock.now().astimezone(zone).date()
    first = last - timedelta(days=days - 1)
    since = datetime.combine(first, time(), zone).astimezone(UTC)
    until = datetime.combine(last + timedelta(days=1), time(), zone).astimezone(UTC)
    return first, last, since, until


def _events_by_day(services: Services) -> list[tuple[date, int]] | None:
    try:
        return events.events_per_day(services, WINDOW_DAYS)
    except Unavailable:
        # A bulk import in another process holds the embedded event store; the sales
        # figures are still worth showing.
        return None


def build_overview(session: Session, services: Services, principal: Principal) -> Overview:
    """Sales, customers and events of the window, as far as ``principal`` may see them."""
    first, last, since, until = window(services)
    gmv_fen, paid = orders.gmv_and_orders(session, since, until, principal.brand_ids)
    if principal.brand_ids is not None:
        return Overview(first, last, gmv_fen, paid, None, None,
                        N_("Figures cover your brands' sales only."))
    active = orders.active_customers(session, since, until)
    per_day = _events_by_day(services)
    note = None if per_day is not None else N_(
        "The event store is busy with an import; event figures will be back shortly.")
    return Overview(first, last, gmv_fen, paid, active, per_day, note)
