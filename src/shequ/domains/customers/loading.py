"""Getting customers in by the thousand: CSV/JSONL imports and the demo's bulk loader."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from shequ.core import audit
from shequ.core.db import lookup
from shequ.core.errors import ValidationFailed
from shequ.core.importing import ImportReport, RowError, finish_import, read_rows, validate_rows
from shequ.domains.customers.models import Customer, Device
from shequ.domains.customers.schemas import CustomerIn, DeviceImportRow

BULK_CHUNK = 5000
CUSTOMER_COLUMNS = ("external_id", "nickname", "gender", "city", "birth_year", "phone",
                    "registered_at", "acquisition_channel")


def customer_ids_by_key(session: Session, keys: Iterable[str]) -> dict[str, int]:
    """Customer ids for external ids (unknown keys are simply absent)."""
    return lookup(session, Customer.external_id, Customer.id, keys)


def import_customers(session: Session, name: str, data: bytes, *,
                     skip_invalid: bool = False) -> ImportReport:
    """Bulk import of customers (CSV/JSONL), upserted by external id."""
    report = ImportReport(kind="customers")
    good = validate_rows(read_rows(name, data), CustomerIn, report)
    values = [row.model_dump() for _line, row in good]
    return finish_import(session, report, Customer, "external_id", values, skip_invalid, name)


def _device_values(session: Session, good: list[tuple[int, DeviceImportRow]],
                   report: ImportReport) -> list[dict[str, Any]]:
    customers = customer_ids_by_key(session, (r.customer_external_id for _, r in good
                                              if r.customer_external_id))
    values = []
    for line, row in good:
        key = row.customer_external_id
        if key is not None and key not in customers:
            report.rejected.append(RowError(line, "customer_external_id",
                                            f"unknown customer {key!r}"))
            continue
        values.append({"external_id": row.external_id, "kind": row.kind,
                       "customer_id": customers[key] if key is not None else None,
                       "first_seen_at": row.first_seen_at})
    return values


def import_devices(session: Session, name: str, data: bytes, *,
                   skip_invalid: bool = False) -> ImportReport:
    """Bulk import of devices (CSV/JSONL), upserted by fingerprint; customers must exist."""
    report = ImportReport(kind="devices")
    good = validate_rows(read_rows(name, data), DeviceImportRow, report)
    values = _device_values(session, good, report)
    return finish_import(session, report, Device, "external_id", values, skip_invalid, name)


def _insert_chunks(session: Session, table: type[Any], rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), BULK_CHUNK):
        session.execute(insert(table), rows[start:start + BULK_CHUNK])


def bulk_load(session: Session, customers: list[dict[str, Any]],
              devices: list[dict[str, Any]]) -> None:
    """Fast load of generated or migrated rows into tables that do not hold their keys yet.

    Rows are trusted (the demo generator makes them): no per-row validation, one
    ``executemany`` per chunk. ``created_at`` is the registration time, so a demo load is
    reproducible. A device's ``customer_external_id`` may be None or a known customer.
    """
    customer_rows = [{col: row.get(col) for col in CUSTOMER_COLUMNS} for row in customers]
    for row in customer_rows:
        row["created_at"] = row["registered_at"]
    _insert_chunks(session, Customer, customer_rows)
    ids = customer_ids_by_key(session, (d["customer_external_id"] for d in devices
                                        if d.get("customer_external_id")))
    device_rows = []
    for device in devices:
        key = device.get("customer_external_id")
        if key and key not in ids:
            raise ValidationFailed("unknown_customer", f"device {device['external_id']!r} "
                                   f"names unknown customer {key!r}", "customer_external_id")
        device_rows.append({"external_id": device["external_id"], "kind": device["kind"],
                            "customer_id": ids[key] if key else None,
                            "first_seen_at": device["first_seen_at"]})
    _insert_chunks(session, Device, device_rows)
    audit.record(session, action="bulk_load", entity="customers", entity_id="bulk",
                 after={"customers": len(customer_rows), "devices": len(device_rows)})
    session.flush()
