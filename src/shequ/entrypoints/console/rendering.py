"""Jinja environments (one per language) and the one function routes render with."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from shequ.core.permissions import Principal
from shequ.entrypoints.console.formatting import Msg, percent, seconds
from shequ.entrypoints.console.i18n import (
    HTML_LANG,
    LANGUAGE_NAMES,
    LOCALES,
    ROLE_NAMES,
    Formats,
    chosen_locale,
    load_translations,
)
from shequ.entrypoints.console.nav import PREFIX, active_entry, visible_nav

PACKAGE_DIR = Path(__file__).parent
TEMPLATE_DIR = PACKAGE_DIR / "templates"
STATIC_DIR = PACKAGE_DIR / "static"
STATIC_PATH = f"{PREFIX}/static"
# Pages carry session data and freshly issued keys: never cache them, never frame them.
PAGE_HEADERS = {"Cache-Control": "no-store", "X-Frame-Options": "DENY",
                "Referrer-Policy": "same-origin", "X-Content-Type-Options": "nosniff",
                "Vary": "HX-Request, Cookie"}


@dataclass(frozen=True)
class Console:
    """What ``mount`` builds once: a template environment per language."""

    environments: dict[str, Environment]
    default_locale: str


def _static_version() -> str:
    digest = hashlib.sha256()
    for name in ("console.css", "console.js"):
        digest.update((STATIC_DIR / name).read_bytes())
    return digest.hexdigest()[:10]


def _environment(locale: str, zone: ZoneInfo, version: str) -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATE_DIR), autoescape=select_autoescape(),
                      extensions=["jinja2.ext.i18n"], undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.install_gettext_translations(load_translations(locale), newstyle=True)  # type: ignore[attr-defined]
    formats = Formats(locale, zone)
    env.filters.update(day=formats.day, short_day=formats.short_day, moment=formats.moment,
                       money=formats.money, exact_money=formats.exact_money,
                       number=formats.number, pct=percent, duration=seconds)
    env.tests["msgid"] = lambda value: isinstance(value, Msg)
    env.globals.update(locale=locale, html_lang=HTML_LANG[locale], languages=LANGUAGE_NAMES,
                       role_names=ROLE_NAMES, zone=str(zone),
                       static=lambda path: f"{STATIC_PATH}/{path}?v={version}")
    return env


def build_console(zone: ZoneInfo, default_locale: str) -> Console:
    """Compile the catalogs and set up the template environments."""
    version = _static_version()
    envs = {locale: _environment(locale, zone, version) for locale in LOCALES}
    return Console(environments=envs, default_locale=chosen_locale(default_locale))


def console_of(request: Request) -> Console:
    """The console wiring ``mount`` stored on the app."""
    wired: Console = request.app.state.console
    return wired


def _session(request: Request) -> dict[str, Any]:
    # The 500 handler runs outside the session middleware: render without a session there.
    return request.session if "session" in request.scope else {}


def request_locale(request: Request) -> str:
    """The language the visitor chose, else the deployment's default."""
    return chosen_locale(_session(request).get("lang"), console_of(request).default_locale)


def csrf_token(request: Request) -> str:
    """The session's CSRF token, created on first use (the login form needs one too)."""
    session = _session(request)
    token = session.get("csrf")
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def is_htmx(request: Request) -> bool:
    """Whether htmx asked for a fragment (a history restore wants the whole page)."""
    return request.headers.get("hx-request") == "true" and \
        request.headers.get("hx-history-restore-request") != "true"


def render(request: Request, template: str, context: dict[str, Any] | None = None,
           status_code: int = 200) -> HTMLResponse:
    """Render ``template`` in the visitor's language with the layout's shared values."""
    env = console_of(request).environments[request_locale(request)]
    # Set by the route's require() dependency; absent on the login form and early errors.
    who: Principal | None = getattr(request.state, "principal", None)
    path = request.url.path
    shared = {"principal": who, "nav": visible_nav(who), "active": active_entry(path),
              "csrf": csrf_token(request), "path": path,
              "here": path + (f"?{request.url.query}" if request.url.query else "")}
    html = env.get_template(template).render({**shared, **(context or {})})
    return HTMLResponse(html, status_code=status_code, headers=PAGE_HEADERS)
