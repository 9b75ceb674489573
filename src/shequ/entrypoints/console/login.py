"""Logging in and out of the console, and choosing its language."""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from shequ.core import auth
from shequ.core.errors import NotAuthenticated, ShequError
from shequ.core.web import PublicDbSession, ServicesDep, public
from shequ.entrypoints.console.access import TITLES, error_message
from shequ.entrypoints.console.i18n import LOCALES
from shequ.entrypoints.console.nav import HOME_PATH, LOGIN_PATH, PREFIX, safe_next
from shequ.entrypoints.console.rendering import render

router = APIRouter(prefix=PREFIX, include_in_schema=False, dependencies=[public()])
root_router = APIRouter(include_in_schema=False, dependencies=[public()])
NextQuery = Annotated[str | None, Query(alias="next", max_length=2048)]


@root_router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse(HOME_PATH, status_code=307)


@router.get("")
def console_root() -> RedirectResponse:
    return RedirectResponse(HOME_PATH, status_code=307)


def _login_form(request: Request, *, username: str = "", next_path: str = HOME_PATH,
                error: str | None = None, status_code: int = 200) -> HTMLResponse:
    return render(request, "login.html", {"username": username, "next": next_path,
                                          "error": error}, status_code=status_code)


def _fresh_session(request: Request, **values: object) -> None:
    """Empty the session (no fixation, no leftovers), keeping only the language choice."""
    lang = request.session.get("lang")
    request.session.clear()
    request.session.update(values)
    if lang in LOCALES:
        request.session["lang"] = lang


def _token_matches(request: Request, given: str) -> bool:
    expected = request.session.get("csrf")
    return isinstance(expected, str) and bool(expected) and hmac.compare_digest(expected, given)


@router.get("/login", response_model=None)
def login_page(request: Request, next_path: NextQuery = None) -> Response:
    if request.session.get("user_id"):  # a stale id is dropped by the page it is sent to
        return RedirectResponse(safe_next(next_path), status_code=303)
    return _login_form(request, next_path=safe_next(next_path))


@router.post("/login", response_model=None)
def login(request: Request, session: PublicDbSession, wired: ServicesDep,
          username: Annotated[str, Form(max_length=256)] = "",
          password: Annotated[str, Form(max_length=1024)] = "",
          csrf_token: Annotated[str, Form(max_length=256)] = "",
          next_path: Annotated[str, Form(alias="next", max_length=2048)] = HOME_PATH,
          ) -> Response:
    """Check the password; on success start a fresh session (new CSRF token)."""
    target = safe_next(next_path)
    if not _token_matches(request, csrf_token):
        return _login_form(request, username=username, next_path=target, status_code=403,
                           error=error_message("csrf_failed", ""))
    try:
        user = auth.authenticate(session, wired.clock, username.strip(), password)
    except ShequError as exc:
        # Answer with the form rather than raising: the failure count must be committed.
        # A wrong password is a normal form answer (a 401 would need a WWW-Authenticate
        # scheme, which a form login has not); a lockout keeps its 429.
        status = 200 if isinstance(exc, NotAuthenticated) else exc.status
        return _login_form(request, username=username, next_path=target, status_code=status,
                           error=error_message(exc.code, exc.detail))
    _fresh_session(request, user_id=user.id, csrf=secrets.token_urlsafe(32))
    return RedirectResponse(target, status_code=303)


@router.post("/logout", response_model=None)
def logout(request: Request, csrf_token: Annotated[str, Form(max_length=256)] = "") -> Response:
    """End the session (the language choice stays)."""
    if request.session.get("user_id") and not _token_matches(request, csrf_token):
        return render(request, "error.html", {
            "title": TITLES[403], "message": error_message("csrf_failed", ""),
            "code": "csrf_failed", "status": 403}, status_code=403)
    _fresh_session(request)
    return RedirectResponse(LOGIN_PATH, status_code=303)


@router.get("/lang/{locale}")
def switch_language(request: Request, locale: str,
                    next_path: NextQuery = None) -> RedirectResponse:
    """Remember the chosen language in the session and go back where the visitor was."""
    if locale in LOCALES:
        request.session["lang"] = locale
    # The login form is a fine place to return to, though never a target after login.
    back = next_path if next_path and next_path.startswith(LOGIN_PATH) else safe_next(next_path)
    return RedirectResponse(back, status_code=303)

