"""Customer contracts: the only customer shapes other domains and entrypoints see."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, field_validator

Key = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")]
# Ids minted by SDKs and fingerprinting (base64, UUIDs, hashes): anything without spaces.
Token = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^\S+$")]
Label = Annotated[str, Field(min_length=1, max_length=64)]
UtcDatetime = Annotated[AwareDatetime, AfterValidator(lambda v: v.astimezone(UTC))]
Gender = Literal["f", "m"]
DeviceKind = Literal["ios", "android", "pc", "other"]
IdentityKind = Literal["anonymous_id", "device", "external"]

PHONE_RE = re.compile(r"^1[3-9]\d{9}$")
_GENDERS = {"f": "f", "female": "f", "女": "f", "m": "m", "male": "m", "男": "m"}


def normalise_phone(value: str) -> str:
    """A mainland China mobile number as 11 digits; spaces, dashes and +86 are dropped."""
    digits = re.sub(r"[\s\-()]", "", value)
    if digits.startswith("+86"):
        digits = digits[3:]
    elif digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    if not PHONE_RE.match(digits):
        raise ValueError("not a mainland China mobile number (11 digits, 1[3-9]…)")
    return digits


class CustomerIn(BaseModel):
    """A customer as shop apps, the CRM export and the API describe it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    external_id: Key
    nickname: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    gender: Gender | None = None
    city: Label | None = None
    birth_year: Annotated[int, Field(ge=1900, le=2100)] | None = None
    phone: str | None = None
    registered_at: UtcDatetime | None = None
    acquisition_channel: Label | None = None

    @field_validator("gender", mode="before")
    @classmethod
    def _gender_words(cls, value: Any) -> Any:
        if isinstance(value, str):
            return _GENDERS.get(value.strip().lower(), value)
        return value

    @field_validator("phone")
    @classmethod
    def _mobile(cls, value: str | None) -> str | None:
        return normalise_phone(value) if value is not None else None


class CustomerOut(CustomerIn):
    id: int
    created_at: datetime


class IdentityOut(BaseModel):
    kind: IdentityKind
    value: str
    customer_external_id: str
    linked_at: datetime


class DeviceIn(BaseModel):
    """A device fingerprint, optionally tied to the customer who uses it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    external_id: Token
    customer_external_id: Key | None = None
    kind: DeviceKind = "other"
    first_seen_at: UtcDatetime | None = None


class DeviceImportRow(DeviceIn):
    """A device row of an export: the first sighting is part of the history, so required."""

    first_seen_at: UtcDatetime


class DeviceOut(BaseModel):
    id: int
    external_id: str
    customer_external_id: str | None
    kind: DeviceKind
    first_seen_at: datetime


class CustomerDetail(CustomerOut):
    """One customer with every identity and device linked to it."""

    identities: list[IdentityOut]
    devices: list[DeviceOut]


class IdentifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    anonymous_id: Token


class CustomerPage(BaseModel):
    """One page of customers."""

    total: int
    items: list[CustomerOut]
