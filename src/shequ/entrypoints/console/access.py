"""Errors under ``/console`` become pages: a login redirect or an error page, never JSON.

The core's ``require()`` raises ``NotAuthenticated`` for a visitor without a session; the API
answers that with a JSON 401, the console with a redirect to its login form. The app's
own handlers keep serving every other path.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.exceptions import HTTPException

from shequ.core.errors import NotAuthenticated, ShequError
from shequ.entrypoints.console.i18n import N_
from shequ.entrypoints.console.nav import LOGIN_PATH, PREFIX, safe_next
from shequ.entrypoints.console.rendering import is_htmx, render
from shequ.entrypoints.errors import error_body

log = logging.getLogger("shequ.console")
Handler = Callable[[Request, Exception], Response | Awaitable[Response]]

# The English msgid shown for an error code; codes not listed show the error's own detail.
ERROR_MESSAGES: dict[str, str] = {
    "bad_credentials": N_("Wrong username or password."),
    "login_locked": N_("Too many failed logins. Try again in 15 minutes."),
    "csrf_failed": N_("This form has expired or did not come from the console. "
                      "Reload the page and try again."),
    "permission_denied": N_("Your role does not allow you to open this page."),
    "not_found": N_("There is no such page."),
    "method_not_allowed": N_("There is no such page."),
    "invalid_request": N_("The request was not valid."),
    "invalid_name": N_("Give the key a name of 1 to 128 characters."),
    "no_scopes": N_("Choose at least one permission."),
    "unknown_scope": N_("One of the chosen permissions does not exist."),
    "scope_not_for_partner": N_("A key limited to brands can only read catalog, orders, "
                                "content and analytics."),
    "api_key_not_found": N_("This API key does not exist."),
    "event_store_locked": N_("The event store is busy with an import; try again shortly."),
    "internal_error": N_("Something went wrong on our side. Try again; if it keeps happening, "
                         "tell your administrator."),
}
TITLES = {401: N_("Please log in"), 403: N_("Access denied"), 404: N_("Page not found"),
          405: N_("Page not found")}


def error_message(code: str, detail: str) -> str:
    """The msgid to show for an error: a translated sentence, else the error's detail."""
    return ERROR_MESSAGES.get(code, detail)


def _login_redirect(request: Request) -> Response:
    # A user deleted or deactivated since logging in: forget them, or the login form would
    # send them back here.
    if "session" in request.scope:
        request.session.pop("user_id", None)
    target = LOGIN_PATH
    if request.method == "GET":
        target += "?next=" + quote(safe_next(request.url.path + (
            f"?{request.url.query}" if request.url.query else "")), safe="/")
    if is_htmx(request):
        return Response(status_code=401, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


def _describe(exc: Exception) -> tuple[int, str, str]:
    if isinstance(exc, ShequError):
        return exc.status, exc.code, exc.detail
    if isinstance(exc, RequestValidationError):
        return 422, "invalid_request", "invalid request"
    if isinstance(exc, HTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return exc.status_code, code, str(exc.detail)
    log.exception("unhandled error on a console page", exc_info=exc)
    return 500, "internal_error", "an unexpected error occurred"


def console_error(request: Request, exc: Exception) -> Response:
    """The console's answer to ``exc``."""
    if isinstance(exc, NotAuthenticated):
        return _login_redirect(request)
    status, code, detail = _describe(exc)
    title = TITLES.get(status, N_("Something went wrong"))
    return render(request, "error.html", {"title": title, "message": error_message(code, detail),
                                          "code": code, "status": status}, status_code=status)


def _is_console(request: Request) -> bool:
    path = request.url.path
    return path == PREFIX or path.startswith(f"{PREFIX}/")


def _console_or(fallback: Handler | None) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def handle(request: Request, exc: Exception) -> Response:
        if _is_console(request):
            return console_error(request, exc)
        if fallback is None:
            status, code, detail = _describe(exc)
            kind = "server_error" if status >= 500 else "client_error"
            return JSONResponse(error_body(kind, code, detail, None), status)
        answer: Any = fallback(request, exc)
        return await answer if inspect.isawaitable(answer) else answer  # type: ignore[no-any-return]

    return handle


def install_console_errors(app: FastAPI) -> None:
    """Route console errors to pages; other paths keep the handlers installed before."""
    for exc_class in (ShequError, RequestValidationError, HTTPException, Exception):
        fallback = app.exception_handlers.get(exc_class)
        app.add_exception_handler(exc_class, _console_or(fallback))
