"""Identifiers: integer primary keys inside the OLTP store, stable strings at the edges.

Entities are addressed from outside by their natural key (``sku``, ``external_id``), which
imports and the shop's apps already know; generated keys use :func:`new_key`.
"""

from __future__ import annotations

import secrets
import uuid


def new_key(prefix: str) -> str:
    """A random, URL-safe, prefixed key such as ``ord_3f9c0d2e8a1b4c7d``."""
    return f"{prefix}_{secrets.token_hex(8)}"


def new_event_id() -> str:
    """A fresh event id (UUID4 text) for events the platform emits itself."""
    return str(uuid.uuid4())
