"""Customer tables."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, SmallInteger, String, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from shequ.core.db import Base, UTCDateTime


class Customer(Base):
    __tablename__ = "customers"
    # A phone number is personal data: the audit trail notes that it changed, not its value.
    __audit_redact__ = ("phone",)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    nickname: Mapped[str | None] = mapped_column(String(128), nullable=True)
    gender: Mapped[str | None] = mapped_column(String(1), nullable=True)
    city: Mapped[str | None] = mapped_column(String(64), nullable=True)
    birth_year: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)
    phone: Mapped[str | None] = mapped_column(String(11), nullable=True)
    registered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    acquisition_channel: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Imports carry no clock; the database stamps the rows they create.
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())


class CustomerIdentity(Base):
    """Another system's name for a customer: an anonymous visitor id, a device, a CRM id."""

    __tablename__ = "customer_identities"
    __table_args__ = (UniqueConstraint("kind", "value", name="uq_customer_identities_kind_value"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(128))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Device(Base):
    __tablename__ = "devices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str] = mapped_column(String(128), unique=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), nullable=True,
                                                    index=True)
    kind: Mapped[str] = mapped_column(String(16))
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
