"""The one list of domains: their tables, routes and importers."""

from __future__ import annotations

import importlib
from typing import Any

from fastapi import APIRouter

DOMAINS = (
    "moderation", "catalog", "customers", "orders", "content", "events", "alerts",
    "insight", "lifecycle", "membership", "segments", "community", "loyalty", "campaigns",
)
CORE_MODELS = ("shequ.core.auth", "shequ.core.audit")


def _optional(module: str) -> object | None:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is None or not module.startswith(exc.name):
            raise
        return None


def load_models() -> None:
    """Import every module that defines tables, so ``Base.metadata`` is complete."""
    for name in CORE_MODELS:
        importlib.import_module(name)
    for domain in DOMAINS:
        _optional(f"shequ.domains.{domain}.models")


#: The services that register order-transition hooks at import (points earned when an
#: order is paid, commissions and coupons when it is refunded or cancelled). Only these
#: are imported at start-up: importing every service costs a CLI command 3 s.
HOOKED_SERVICES = ("loyalty", "campaigns")


def load_hooks() -> None:
    """Import the services that hook order transitions, whichever entry point runs."""
    for domain in HOOKED_SERVICES:
        _optional(f"shequ.domains.{domain}.service")


def routers() -> list[APIRouter]:
    """Every domain's API router, in a stable order."""
    found = []
    for domain in DOMAINS:
        module = _optional(f"shequ.domains.{domain}.api")
        if module is not None:
            found.append(module.router)  # type: ignore[attr-defined]
    return found


def importers() -> dict[str, Any]:
    """``kind -> import function`` gathered from every domain service's ``IMPORTERS``."""
    found: dict[str, Any] = {}
    for domain in DOMAINS:
        module = _optional(f"shequ.domains.{domain}.service")
        found.update(getattr(module, "IMPORTERS", {}))
    return found
