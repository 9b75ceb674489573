"""Roles, permissions and the principal (who is asking) every use case receives."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from shequ.core.errors import PermissionDenied


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    ANALYST = "analyst"
    MODERATOR = "moderator"
    CAMPAIGN_MANAGER = "campaign_manager"
    PARTNER = "partner"


# Every permission a route can declare. Keys and roles are granted subsets of these.
PERMISSIONS: frozenset[str] = frozenset(
    {
        "alerts:read",
        "alerts:write",
        "analytics:read",
        "audit:read",
        "campaigns:read",
        "campaigns:write",
        "catalog:read",
        "catalog:write",
        "community:read",
        "community:write",
        "content:read",
        "content:write",
        "customers:read",
        "customers:write",
        "events:read",
        "events:write",
        "import:write",
        "insight:read",
        "insight:write",
        "loyalty:read",
        "loyalty:write",
        "membership:read",
        "membership:write",
        "moderation:read",
        "moderation:write",
        "orders:read",
        "orders:write",
        "segments:read",
        "segments:write",
        "users:admin",
    }
)

_READS = frozenset(p for p in PERMISSIONS if p.endswith(":read"))

ROLE_PERMISSIONS: dict[Role, frozenset[str]] = {
    Role.ADMIN: PERMISSIONS,
    Role.OPERATOR: PERMISSIONS - {"users:admin", "audit:read"},
    Role.ANALYST: _READS - {"audit:read"},
    Role.MODERATOR: frozenset({"content:read", "content:write", "customers:read",
                               "catalog:read", "analytics:read", "community:read",
                               "community:write", "moderation:read", "moderation:write"}),
    Role.CAMPAIGN_MANAGER: frozenset({"catalog:read", "customers:read", "orders:read",
                                      "content:read", "analytics:read", "events:read",
                                      "insight:read", "membership:read", "segments:read",
                                      "segments:write", "community:read", "loyalty:read",
                                      "loyalty:write", "campaigns:read",
                                      "campaigns:write"}),
    Role.PARTNER: frozenset({"catalog:read", "orders:read", "content:read", "analytics:read",
                             "community:read"}),
}

# Partners only ever see their own brands' data, whatever scopes their key lists.
PARTNER_ALLOWED: frozenset[str] = ROLE_PERMISSIONS[Role.PARTNER]


@dataclass(frozen=True)
class Principal:
    """The caller of a use case: a console user, an API key, or the CLI itself."""

    kind: str  # "user" | "apikey" | "cli"
    id: int
    name: str
    permissions: frozenset[str]
    brand_ids: frozenset[int] | None = None  # None: every brand; a set: only these
    role: Role | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        return f"{self.kind}:{self.id}" if self.kind != "cli" else "cli"

    def can(self, permission: str) -> bool:
        """Whether this caller holds ``permission``."""
        return permission in self.permissions

    def refuse_if_partner(self, code: str, detail: str) -> None:
        """Platform-wide data (every brand's visitors or customers) is not for brand
        partners: a brand-limited caller gets ``PermissionDenied(code, detail)``."""
        if self.brand_ids is not None:
            raise PermissionDenied(code, detail)

    def sees_brand(self, brand_id: int | None) -> bool:
        """Whether data of ``brand_id`` is visible to this caller."""
        return self.brand_ids is None or (brand_id is not None and brand_id in self.brand_ids)


CLI_PRINCIPAL = Principal(kind="cli", id=0, name="cli", permissions=PERMISSIONS)
