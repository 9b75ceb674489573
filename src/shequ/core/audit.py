"""Audit trail: who changed what, when, with the values before and after.

Every session that carries an actor (``session.info["actor"]``, set by the API, the console
and the CLI) records one row per inserted, updated or deleted ORM object at flush time, in
the same transaction as the change itself, so a rolled-back write leaves no audit row.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from sqlalchemy import JSON, Integer, String, event, insert, inspect
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.orm.attributes import get_history

from shequ.core.db import Base, UTCDateTime

REDACTED = "***"


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(16))
    entity: Mapped[str] = mapped_column(String(64), index=True)
    entity_id: Mapped[str] = mapped_column(String(64))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    return value


def _redacted(obj: Any) -> frozenset[str]:
    return frozenset(getattr(obj, "__audit_redact__", ()))


def _snapshot(obj: Any, *, before: bool) -> dict[str, Any]:
    hidden = _redacted(obj)
    values: dict[str, Any] = {}
    for attr in inspect(obj).mapper.column_attrs:
        history = get_history(obj, attr.key)
        if before:
            current = (history.deleted or history.unchanged or [None])[0]
        else:
            current = (history.added or history.unchanged or [None])[0]
        values[attr.key] = REDACTED if attr.key in hidden and current else _plain(current)
    return values


def _changed_only(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    keys = [k for k in after if before.get(k) != after.get(k)]
    return {k: before.get(k) for k in keys}, {k: after.get(k) for k in keys}


def _entity_id(obj: Any) -> str:
    key = inspect(obj).mapper.primary_key_from_instance(obj)
    return ",".join(str(part) for part in key)


def _now(session: Session) -> datetime:
    clock = session.info.get("clock")
    moment: datetime = clock.now() if clock is not None else datetime.now(UTC)
    return moment


def _entries(session: Session) -> list[dict[str, Any]]:
    actor = session.info["actor"]
    now = _now(session)
    rows: list[dict[str, Any]] = []
    pending = session.info.pop("audit_pending", [])
    for action, obj, before in pending:
        after: dict[str, Any] | None
        if action == "update":
            after = _snapshot(obj, before=False)
            before, after = _changed_only(before, after)
            if not after:
                continue
        elif action == "create":
            after = _snapshot(obj, before=False)
        else:
            after = None
        rows.append(
            {"at": now, "actor": actor, "action": action, "entity": obj.__tablename__,
             "entity_id": _entity_id(obj), "before": before, "after": after}
        )
    return rows


@event.listens_for(Session, "before_flush")
def _collect(session: Session, _context: Any, _instances: Any) -> None:
    if "actor" not in session.info:
        return
    # A fresh list per flush: entries of a flush that failed (say inside a rolled-back
    # savepoint) must never be written by the next one.
    pending: list[tuple[str, Any, dict[str, Any] | None]] = []
    session.info["audit_pending"] = pending
    for obj in session.new:
        if not isinstance(obj, AuditEntry):
            pending.append(("create", obj, None))
    for obj in session.dirty:
        if session.is_modified(obj, include_collections=False):
            pending.append(("update", obj, _snapshot(obj, before=True)))
    for obj in session.deleted:
        pending.append(("delete", obj, _snapshot(obj, before=True)))


@event.listens_for(Session, "after_flush")
def _write(session: Session, _context: Any) -> None:
    if "actor" not in session.info or not session.info.get("audit_pending"):
        return
    rows = _entries(session)
    if rows:
        session.connection().execute(insert(AuditEntry), rows)


def record(session: Session, *, action: str, entity: str, entity_id: str,
           before: dict[str, Any] | None = None, after: dict[str, Any] | None = None) -> None:
    """Write one explicit audit row (bulk operations that bypass the ORM unit of work)."""
    actor = session.info.get("actor")
    if actor is None:
        return
    session.execute(insert(AuditEntry), [{
        "at": _now(session), "actor": actor, "action": action, "entity": entity,
        "entity_id": entity_id, "before": before, "after": after,
    }])
