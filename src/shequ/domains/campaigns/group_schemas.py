"""Group-buying contracts: the only group-buying shapes entrypoints see."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

Key = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")]
IdempotencyKey = Annotated[str, Field(min_length=1, max_length=100,
                                      pattern=r"^[A-Za-z0-9_.:\-]+$")]
UtcDatetime = Annotated[AwareDatetime, AfterValidator(lambda v: v.astimezone(UTC))]
GroupState = Literal["open", "succeeded", "expired", "refunded"]
MemberState = Literal["paid", "ordered", "refunded"]
OfferStatus = Literal["scheduled", "running", "paused", "ended"]
MAX_TIERS = 6
MAX_GROUP_SIZE = 100
MAX_QUANTITY = 100


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class TierIn(_Input):
    """``percent_off`` of the price once the group has ``size`` members."""

    size: Annotated[int, Field(ge=2, le=MAX_GROUP_SIZE)]
    percent_off: Annotated[int, Field(gt=0, lt=100)]


class OfferIn(_Input):
    """A new offer. ``stock`` units of ``sku`` are taken from the catalog when it is
    created; the largest tier's size is the size of every group."""

    code: Key
    title: Annotated[str, Field(min_length=1, max_length=100)]
    sku: Key
    tiers: Annotated[list[TierIn], Field(min_length=1, max_length=MAX_TIERS)]
    hours: Annotated[int, Field(ge=1, le=720)] = 24
    starts_at: UtcDatetime
    ends_at: UtcDatetime
    stock: Annotated[int, Field(ge=1, le=1_000_000)]
    per_customer_limit: Annotated[int, Field(ge=1, le=MAX_QUANTITY)] = 1


class TierOut(BaseModel):
    size: int
    percent_off: int


class OfferOut(BaseModel):
    """An offer and where it stands at the time asked (``status``)."""

    code: str
    title: str
    sku: str
    unit_price_fen: int
    tiers: list[TierOut]
    min_size: int
    max_size: int
    hours: int
    starts_at: datetime
    ends_at: datetime
    stock: int
    stock_left: int
    returned_units: int
    per_customer_limit: int
    paused: bool
    status: OfferStatus
    settled_at: datetime | None
    created: bool = False


class OpenIn(_Input):
    """Open a group on ``offer`` as its leader (and first member), once per key."""

    offer: Key
    customer_external_id: Key
    quantity: Annotated[int, Field(ge=1, le=MAX_QUANTITY)] = 1
    idempotency_key: IdempotencyKey


class JoinIn(_Input):
    """Join group ``group_id``, once per key (and once per customer and group)."""

    group_id: Annotated[int, Field(ge=1, le=2**31 - 1)]
    customer_external_id: Key
    quantity: Annotated[int, Field(ge=1, le=MAX_QUANTITY)] = 1
    idempotency_key: IdempotencyKey


class MemberOut(BaseModel):
    customer_external_id: str
    is_leader: bool
    quantity: int
    paid_fen: int
    discount_fen: int
    refunded_fen: int
    state: MemberState
    joined_at: datetime
    order_external_id: str | None


class GroupOut(BaseModel):
    """A group: its members, the tier it has reached (``percent_off`` the members get if it
    closed now), the next tier, and the seconds left before its deadline."""

    id: int
    offer: str
    state: GroupState
    leader_customer_external_id: str
    member_count: int
    max_size: int
    units: int
    tier_size: int | None
    percent_off: int | None
    next_tier_size: int | None
    opened_at: datetime
    deadline_at: datetime
    closed_at: datetime | None
    refunded_at: datetime | None
    seconds_left: int
    members: list[MemberOut]


class JoinOut(BaseModel):
    """The answer to an open or a join; ``replayed``: a repeat of an earlier request."""

    group: GroupOut
    member: MemberOut
    replayed: bool = False


class OfferFigures(BaseModel):
    """An offer's results. ``success_rate`` is over closed groups; ``groups_filled`` are
    the succeeded groups that reached the largest tier; ``new_customers`` are distinct
    members with no paid order before they joined; basket figures are per order of a
    successful member; ``avg_fill_seconds`` is the time from opening a succeeded group to
    the join that brought it to the smallest tier (成团时间)."""

    offer: str
    groups_opened: int
    groups_open: int
    groups_succeeded: int
    groups_filled: int
    groups_expired: int
    success_rate: float | None
    members: int
    successful_members: int
    new_customers: int
    orders: int
    gmv_fen: int
    discount_fen: int
    avg_units: float | None
    avg_order_fen: float | None
    avg_fill_seconds: float | None


class ExpiryReport(BaseModel):
    """What one expiry run did: groups closed as succeeded or expired, expired groups
    refunded, ended offers whose leftover stock went back to the catalog, and groups that
    could not be closed this time (``failed``, retried on the next run)."""

    succeeded: int = 0
    expired: int = 0
    refunded: int = 0
    settled_offers: int = 0
    failed: int = 0
