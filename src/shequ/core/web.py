"""FastAPI glue shared by every domain's routes: the request's session, clock and caller.

Every route declares its permission with ``Depends(require("scope"))`` (or ``public()``),
which a test checks over the whole app. API keys arrive as ``Authorization: Bearer``;
console users by a signed session cookie, and then unsafe methods also need the
``X-CSRF-Token`` header (or a ``csrf_token`` form field) matching their session.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from shequ.core import auth
from shequ.core.clock import Clock
from shequ.core.db import transaction
from shequ.core.errors import NotAuthenticated, PermissionDenied
from shequ.core.permissions import PERMISSIONS, Principal
from shequ.core.settings import Settings

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class Services:
    """What the app wires once at start-up and every request shares."""

    settings: Settings
    sessions: sessionmaker[Session]
    clock: Clock
    extras: dict[str, Any]


def services(request: Request) -> Services:
    """The app's wired services."""
    wired: Services = request.app.state.services
    return wired


ServicesDep = Annotated[Services, Depends(services)]


def _session_for(request: Request, actor: str | None) -> Iterator[Session]:
    wired = services(request)
    with transaction(wired.sessions, actor, wired.clock) as session:
        yield session


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


async def _check_csrf(request: Request) -> None:
    if request.method in SAFE_METHODS:
        return
    expected = request.session.get("csrf", "")
    given = request.headers.get("x-csrf-token", "")
    if not given and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        given = str((await request.form()).get("csrf_token", ""))
    if not expected or not hmac.compare_digest(str(expected), given):
        raise PermissionDenied("csrf_failed", "missing or wrong CSRF token", "csrf_token")


async def current_principal(request: Request) -> Principal:
    """The caller: an API key's or a logged-in console user's principal."""
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    key = _bearer(request)
    wired = services(request)
    with wired.sessions() as session:
        if key is not None:
            principal = auth.principal_for_key(session, key)
        else:
            user_id = request.session.get("user_id") if "session" in request.scope else None
            user = auth.get_user(session, int(user_id)) if user_id else None
            if user is None:
                raise NotAuthenticated("not_authenticated", "log in or send an API key")
            await _check_csrf(request)
            principal = auth.user_principal(user)
    request.state.principal = principal
    return principal


def require(permission: str) -> Any:
    """A dependency that admits only callers holding ``permission``."""
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")

    async def check(request: Request) -> Principal:
        principal = await current_principal(request)
        if not principal.can(permission):
            raise PermissionDenied("permission_denied", f"this needs the {permission} permission")
        return principal

    check.permission = permission  # type: ignore[attr-defined]
    return Depends(check)


def public() -> Any:
    """A dependency marking a route as open to anyone (health, login page)."""

    def open_route() -> None:
        return None

    open_route.permission = "public"  # type: ignore[attr-defined]
    return Depends(open_route)


def declared_permission(call: Callable[..., Any]) -> str | None:
    """The permission a dependency callable declares, if any."""
    value = getattr(call, "permission", None)
    return value if isinstance(value, str) else None


def _db_session(
    request: Request, principal: Annotated[Principal, Depends(current_principal)]
) -> Iterator[Session]:
    yield from _session_for(request, principal.actor)


def _public_db_session(request: Request) -> Iterator[Session]:
    yield from _session_for(request, None)


PrincipalDep = Annotated[Principal, Depends(current_principal)]
DbSession = Annotated[Session, Depends(_db_session)]
"""A session for an authenticated caller: its writes are audited under the caller's name."""
PublicDbSession = Annotated[Session, Depends(_public_db_session)]
"""A session for open routes (login): nothing it writes is attributed to a caller."""
