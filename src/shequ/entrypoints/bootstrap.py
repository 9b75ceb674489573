"""Wire the real dependencies once: engine, sessions, clock, event store."""

from __future__ import annotations

from typing import Any

from shequ.core.clock import Clock, SystemClock
from shequ.core.db import make_engine, make_session_factory
from shequ.core.settings import Settings
from shequ.core.web import Services
from shequ.entrypoints.registry import load_hooks


def bootstrap(settings: Settings, clock: Clock | None = None) -> Services:
    """Services for ``settings``: the OLTP engine now, the event store on first use."""
    settings.ensure_home()
    load_hooks()  # the domains' order-transition hooks
    engine = make_engine(settings.resolved_database_url)
    extras: dict[str, Any] = {"engine": engine}
    return Services(settings=settings, sessions=make_session_factory(engine),
                    clock=clock or SystemClock(), extras=extras)


def event_store(wired: Services) -> Any:
    """The event store, opened once per process (DuckDB allows one writer process)."""
    store = wired.extras.get("events")
    if store is None:
        from shequ.analytics.store import EventStore

        store = EventStore.open(wired.settings.resolved_events_url)
        wired.extras["events"] = store
    return store


def close(wired: Services) -> None:
    """Release the stores."""
    store = wired.extras.pop("events", None)
    if store is not None:
        store.close()
    wired.extras["engine"].dispose()
