"""The operations console: server-rendered pages (Jinja2 + htmx + ECharts) under ``/console``.

Pages use the same services and the same ``require()`` permissions as the API; a visitor is
a console user logged in through the signed session cookie. See docs/console.md.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from shequ.core.web import Services
from shequ.entrypoints.console import (
    behaviour,
    campaign_pages,
    community_pages,
    content_pages,
    coupon_pages,
    customers,
    group_pages,
    keys,
    login,
    moderation_pages,
    monitoring,
    pages,
    points_pages,
    referral_pages,
    report_pages,
    segment_pages,
    tier_pages,
)
from shequ.entrypoints.console.access import install_console_errors
from shequ.entrypoints.console.rendering import STATIC_DIR, STATIC_PATH, build_console


def mount(app: FastAPI) -> None:
    """Attach the console's routes, static files and error pages to ``app``."""
    wired: Services = app.state.services
    app.state.console = build_console(wired.settings.zone, wired.settings.locale)
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC_DIR), name="console-static")
    for router in (login.root_router, login.router, pages.router, behaviour.router,
                   monitoring.router, customers.router, segment_pages.router,
                   tier_pages.router, content_pages.router, community_pages.router,
                   report_pages.router, moderation_pages.router, campaign_pages.router,
                   group_pages.router, coupon_pages.router, referral_pages.router,
                   points_pages.router, keys.router):
        app.include_router(router)
    install_console_errors(app)
