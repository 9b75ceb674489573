"""``create_app()``: the HTTP API and the console in one ASGI app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware.sessions import SessionMiddleware

import shequ
from shequ.core.settings import Settings, load_settings
from shequ.core.web import Services
from shequ.entrypoints.admin_api import router as admin_router
from shequ.entrypoints.bootstrap import bootstrap, close
from shequ.entrypoints.errors import install_error_handlers
from shequ.entrypoints.registry import routers

SESSION_MAX_AGE = 12 * 3600


def create_app(settings: Settings | None = None, services: Services | None = None) -> FastAPI:
    """Build the app; ``services`` lets tests hand in their own wiring."""
    settings = settings or (services.settings if services else load_settings())
    wired = services or bootstrap(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if services is None:
            close(wired)

    app = FastAPI(title="shequ 社区", version=shequ.__version__, lifespan=lifespan,
                  description="E-commerce community operations platform API.")
    app.state.services = wired
    app.add_middleware(SessionMiddleware, secret_key=settings.secret_key,
                       session_cookie="shequ_session", max_age=SESSION_MAX_AGE,
                       same_site="lax", https_only=settings.environment == "production")
    install_error_handlers(app)
    app.include_router(admin_router)
    for router in routers():
        app.include_router(router)
    _mount_console(app)
    return app


def _mount_console(app: FastAPI) -> None:
    from shequ.entrypoints.console import mount

    mount(app)
