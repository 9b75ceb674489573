"""The console's navigation: only pages that exist, only those the caller may open."""

from __future__ import annotations

from dataclasses import dataclass

from shequ.core.permissions import Principal
from shequ.entrypoints.console.i18n import N_

PREFIX = "/console"
LOGIN_PATH = f"{PREFIX}/login"
HOME_PATH = f"{PREFIX}/"


@dataclass(frozen=True)
class NavEntry:
    """One sidebar link: its path, label msgid, the permission its page needs, its icon."""

    path: str
    label: str
    permission: str
    icon: str


NAV: tuple[NavEntry, ...] = (
    NavEntry(HOME_PATH, N_("Overview"), "analytics:read", "chart"),
    NavEntry(f"{PREFIX}/products", N_("Products"), "catalog:read", "box"),
    NavEntry(f"{PREFIX}/audit", N_("Audit log"), "audit:read", "list"),
    NavEntry(f"{PREFIX}/api-keys", N_("API keys"), "users:admin", "key"),
)


def visible_nav(principal: Principal | None) -> list[NavEntry]:
    """The entries ``principal`` can open (none for an anonymous visitor)."""
    if principal is None:
        return []
    return [entry for entry in NAV if principal.can(entry.permission)]


def active_entry(path: str) -> NavEntry | None:
    """The entry a request path belongs to."""
    for entry in NAV:
        if entry.path != HOME_PATH and (path == entry.path or path.startswith(entry.path + "/")):
            return entry
    return NAV[0] if path in (PREFIX, HOME_PATH) else None


def safe_next(value: str | None) -> str:
    """A console path to go to after login; anything else (another site) means home."""
    if value and value.startswith(f"{PREFIX}/") and not value.startswith(LOGIN_PATH) \
            and "//" not in value and "\\" not in value:
        return value
    return HOME_PATH
