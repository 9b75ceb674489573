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
    platform_wide: bool = False  # behaviour analytics and customer insight span brands


NAV: tuple[NavEntry, ...] = (
    NavEntry(HOME_PATH, N_("Overview"), "analytics:read", "chart"),
    NavEntry(f"{PREFIX}/metrics", N_("Metrics"), "analytics:read", "gauge", True),
    NavEntry(f"{PREFIX}/alerts", N_("Alerts"), "alerts:read", "bell"),
    NavEntry(f"{PREFIX}/trends", N_("Trends"), "analytics:read", "chart", True),
    NavEntry(f"{PREFIX}/funnel", N_("Funnel"), "analytics:read", "funnel", True),
    NavEntry(f"{PREFIX}/paths", N_("Paths"), "analytics:read", "flow", True),
    NavEntry(f"{PREFIX}/heatmap", N_("Heatmap"), "analytics:read", "grid", True),
    NavEntry(f"{PREFIX}/dwell", N_("Dwell time"), "analytics:read", "clock", True),
    NavEntry(f"{PREFIX}/retention", N_("Retention"), "analytics:read", "repeat", True),
    NavEntry(f"{PREFIX}/customers", N_("Customers"), "customers:read", "users", True),
    NavEntry(f"{PREFIX}/value-matrix", N_("Value matrix"), "insight:read", "grid", True),
    NavEntry(f"{PREFIX}/segments", N_("Segments"), "segments:read", "funnel", True),
    NavEntry(f"{PREFIX}/lifecycle", N_("Lifecycle"), "insight:read", "repeat", True),
    NavEntry(f"{PREFIX}/membership", N_("Membership"), "membership:read", "money", True),
    NavEntry(f"{PREFIX}/content", N_("Content"), "content:read", "list"),
    NavEntry(f"{PREFIX}/creators", N_("Creators"), "community:read", "users", True),
    NavEntry(f"{PREFIX}/hubs", N_("Hubs"), "community:read", "grid"),
    NavEntry(f"{PREFIX}/reports/needs", N_("Needs report"), "content:read", "chart"),
    NavEntry(f"{PREFIX}/moderation", N_("Review queue"), "moderation:read", "check"),
    NavEntry(f"{PREFIX}/moderation/lexicon", N_("Lexicon"), "moderation:read", "list", True),
    NavEntry(f"{PREFIX}/moderation/incidents", N_("Incidents"), "moderation:read", "alert"),
    NavEntry(f"{PREFIX}/campaigns", N_("Campaigns"), "campaigns:read", "list"),
    NavEntry(f"{PREFIX}/calendar", N_("Calendar"), "campaigns:read", "grid"),
    NavEntry(f"{PREFIX}/group-buying", N_("Group buying"), "campaigns:read", "users"),
    NavEntry(f"{PREFIX}/coupons", N_("Coupons"), "campaigns:read", "money", True),
    NavEntry(f"{PREFIX}/invite-tasks", N_("Invite tasks"), "campaigns:read", "users", True),
    NavEntry(f"{PREFIX}/referrals", N_("Referrals"), "campaigns:read", "flow", True),
    NavEntry(f"{PREFIX}/points", N_("Points"), "loyalty:read", "money", True),
    NavEntry(f"{PREFIX}/points/rewards", N_("Rewards"), "loyalty:read", "box", True),
    NavEntry(f"{PREFIX}/points/verify", N_("Store codes"), "loyalty:write", "check", True),
    NavEntry(f"{PREFIX}/products", N_("Products"), "catalog:read", "box"),
    NavEntry(f"{PREFIX}/audit", N_("Audit log"), "audit:read", "list"),
    NavEntry(f"{PREFIX}/api-keys", N_("API keys"), "users:admin", "key"),
)


def visible_nav(principal: Principal | None) -> list[NavEntry]:
    """The entries ``principal`` can open (none for an anonymous visitor)."""
    if principal is None:
        return []
    return [entry for entry in NAV if principal.can(entry.permission)
            and not (entry.platform_wide and principal.brand_ids is not None)]


def active_entry(path: str) -> NavEntry | None:
    """The entry a request path belongs to (the longest path that contains it)."""
    found = [entry for entry in NAV if entry.path != HOME_PATH
             and (path == entry.path or path.startswith(entry.path + "/"))]
    if found:
        return max(found, key=lambda entry: len(entry.path))
    return NAV[0] if path in (PREFIX, HOME_PATH) else None


def safe_next(value: str | None) -> str:
    """A console path to go to after login; anything else (another site) means home."""
    if value and value.startswith(f"{PREFIX}/") and not value.startswith(LOGIN_PATH) \
            and "//" not in value and "\\" not in value:
        return value
    return HOME_PATH
