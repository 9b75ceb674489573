"""Customer use cases: (session, [clock], ..., schema) -> schema; errors carry stable codes."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import get_args

import pyarrow as pa
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shequ.core.clock import Clock, as_utc
from shequ.core.db import lookup
from shequ.core.errors import Conflict, NotFound, ValidationFailed
from shequ.domains.customers.loading import (
    bulk_load,
    customer_ids_by_key,
    import_customers,
    import_devices,
)
from shequ.domains.customers.models import Customer, CustomerIdentity, Device
from shequ.domains.customers.schemas import (
    CustomerDetail,
    CustomerIn,
    CustomerOut,
    CustomerPage,
    DeviceIn,
    DeviceOut,
    IdentityKind,
    IdentityOut,
)

__all__ = [
    "IMPORTERS", "bulk_load", "create_customer", "create_device", "customer_attributes",
    "customer_ids_by_key",
    "customer_keys_by_id", "get_customer", "identify", "link_identity", "list_customers",
    "resolve_customer",
]


def customer_keys_by_id(session: Session, ids: Iterable[int]) -> dict[int, str]:
    """External ids for customer ids (unknown ids are simply absent)."""
    return lookup(session, Customer.id, Customer.external_id, ids)


def _customer_out(row: Customer) -> CustomerOut:
    return CustomerOut(id=row.id, external_id=row.external_id, nickname=row.nickname,
                       gender=row.gender, city=row.city, birth_year=row.birth_year,
                       phone=row.phone, registered_at=row.registered_at,
                       acquisition_channel=row.acquisition_channel, created_at=row.created_at)


def _customer_row(session: Session, external_id: str, attr: str = "external_id") -> Customer:
    row = session.scalar(select(Customer).where(Customer.external_id == external_id))
    if row is None:
        raise NotFound("customer_not_found", f"no customer {external_id!r}", attr)
    return row


def _inserted(session: Session, row: object) -> bool:
    """Add ``row`` in a savepoint; False when a unique key already holds it (a racing twin)."""
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return False
    return True


def create_customer(session: Session, clock: Clock, data: CustomerIn) -> CustomerOut:
    """Add a customer; its external id must be new. ``registered_at`` defaults to now."""
    now = clock.now()
    values = data.model_dump()
    values["registered_at"] = data.registered_at or now
    row = Customer(**values, created_at=now)
    if customer_ids_by_key(session, [data.external_id]) or not _inserted(session, row):
        raise Conflict("customer_exists", f"customer {data.external_id!r} exists", "external_id")
    return _customer_out(row)


def list_customers(session: Session, *, city: str | None = None, channel: str | None = None,
                   limit: int = 50, offset: int = 0) -> CustomerPage:
    """Customers, newest registration first, optionally of one city or channel."""
    query = select(Customer)
    if city is not None:
        query = query.where(Customer.city == city)
    if channel is not None:
        query = query.where(Customer.acquisition_channel == channel)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Customer.registered_at.desc().nulls_last(),
                                          Customer.id.desc())
                           .limit(limit).offset(offset))
    return CustomerPage(total=total, items=[_customer_out(r) for r in rows])


def _device_out(row: Device, customer_key: str | None) -> DeviceOut:
    return DeviceOut(id=row.id, external_id=row.external_id, customer_external_id=customer_key,
                     kind=row.kind, first_seen_at=row.first_seen_at)


def get_customer(session: Session, external_id: str) -> CustomerDetail:
    """One customer with its identities and devices (the 360° view's spine)."""
    row = _customer_row(session, external_id)
    identities = [
        IdentityOut(kind=i.kind, value=i.value, customer_external_id=row.external_id,
                    linked_at=i.linked_at)
        for i in session.scalars(select(CustomerIdentity).where(
            CustomerIdentity.customer_id == row.id).order_by(CustomerIdentity.id))]
    devices = [_device_out(d, row.external_id) for d in session.scalars(
        select(Device).where(Device.customer_id == row.id).order_by(Device.id))]
    return CustomerDetail(**_customer_out(row).model_dump(), identities=identities,
                          devices=devices)


def _existing_device(session: Session, data: DeviceIn, customer_id: int | None) -> DeviceOut:
    row = session.scalars(select(Device).where(Device.external_id == data.external_id)).one()
    if row.kind != data.kind:
        raise Conflict("device_exists", f"device {data.external_id!r} is a {row.kind} device",
                       "kind")
    if customer_id is not None and row.customer_id not in (None, customer_id):
        raise Conflict("device_taken", f"device {data.external_id!r} belongs to another "
                       "customer", "customer_external_id")
    if customer_id is not None and row.customer_id is None:
        row.customer_id = customer_id
        session.flush()
    keys = customer_keys_by_id(session, [row.customer_id] if row.customer_id else [])
    return _device_out(row, keys.get(row.customer_id or 0))


def create_device(session: Session, clock: Clock, data: DeviceIn) -> tuple[DeviceOut, bool]:
    """Record a device; ``(device, created)``.

    Posting a known device again is idempotent and may attach it to a customer (login on
    a device first seen anonymously); attaching it to a second customer is a conflict.
    """
    customer_id = None
    if data.customer_external_id is not None:
        customer_id = _customer_row(session, data.customer_external_id,
                                    "customer_external_id").id
    row = Device(external_id=data.external_id, customer_id=customer_id, kind=data.kind,
                 first_seen_at=data.first_seen_at or clock.now())
    known = session.scalar(select(Device.id).where(Device.external_id == data.external_id))
    if known is None and _inserted(session, row):
        return _device_out(row, data.customer_external_id), True
    return _existing_device(session, data, customer_id), False


def link_identity(session: Session, clock: Clock, customer_external_id: str,
                  kind: IdentityKind, value: str) -> IdentityOut:
    """Tie another system's id to a customer; idempotent, but an id names one customer only."""
    if kind not in get_args(IdentityKind):
        raise ValidationFailed("unknown_identity_kind", f"one of {get_args(IdentityKind)}", "kind")
    if not value or len(value) > 128 or value != value.strip():
        raise ValidationFailed("invalid_identity", "1-128 characters, no outer spaces", "value")
    customer = _customer_row(session, customer_external_id)
    query = select(CustomerIdentity).where(CustomerIdentity.kind == kind,
                                           CustomerIdentity.value == value)
    row = session.scalar(query)
    if row is None:
        row = CustomerIdentity(kind=kind, value=value, customer_id=customer.id,
                               linked_at=clock.now())
        if not _inserted(session, row):
            row = session.scalars(query).one()
    if row.customer_id != customer.id:
        raise Conflict(f"{kind}_taken", f"{kind} {value!r} already belongs to another customer",
                       kind)
    return IdentityOut(kind=kind, value=value, customer_external_id=customer.external_id,
                       linked_at=row.linked_at)


def identify(session: Session, clock: Clock, customer_external_id: str,
             anonymous_id: str) -> IdentityOut:
    """Merge at login: the anonymous visitor ``anonymous_id`` is this customer from now on."""
    return link_identity(session, clock, customer_external_id, "anonymous_id", anonymous_id)


def resolve_customer(session: Session, anonymous_id: str) -> str | None:
    """The external id of the customer an anonymous visitor was merged into, if any."""
    return session.scalar(
        select(Customer.external_id).join(CustomerIdentity,
                                          CustomerIdentity.customer_id == Customer.id)
        .where(CustomerIdentity.kind == "anonymous_id", CustomerIdentity.value == anonymous_id))


def registered_between(session: Session, since: datetime, until: datetime) -> int:
    """How many customers registered in ``[since, until)``."""
    return session.scalar(select(func.count()).select_from(Customer).where(
        Customer.registered_at >= since, Customer.registered_at < until)) or 0


IMPORTERS = {"customers": import_customers, "devices": import_devices}


def device_dimension(session: Session) -> list[tuple[str, str]]:
    """``(device external_id, kind)`` of every device, for analytics breakdowns."""
    rows = session.execute(select(Device.external_id, Device.kind).order_by(Device.external_id))
    return [(device, kind) for device, kind in rows]


def customer_attributes(session: Session) -> pa.Table:
    """Every customer's id, external id and profile attributes as columns (by id), for the
    customer-value models and the segment dimension table."""
    rows = session.execute(select(
        Customer.id, Customer.external_id, Customer.gender, Customer.city, Customer.birth_year,
        Customer.registered_at, Customer.created_at, Customer.acquisition_channel,
    ).order_by(Customer.id)).all()
    names = ("id", "external_id", "gender", "city", "birth_year", "registered_at",
             "created_at", "acquisition_channel")
    types = (pa.int64(), pa.string(), pa.string(), pa.string(), pa.int32(),
             pa.timestamp("us", tz="UTC"), pa.timestamp("us", tz="UTC"), pa.string())
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(names)
    return pa.table({
        name: pa.array([as_utc(v) if isinstance(v, datetime) else v for v in column], kind)
        for name, column, kind in zip(names, columns, types, strict=True)
    })
