"""Loyalty contracts: the only loyalty shapes other domains and entrypoints see."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

EarnRule = Literal["order", "review", "ugc", "signin"]
RewardKind = Literal["goods", "service", "offline"]
MovementKind = Literal["earn", "redeem", "expire", "adjust", "refund"]
Key = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")]
IdempotencyKey = Annotated[str, Field(min_length=1, max_length=100,
                                      pattern=r"^[A-Za-z0-9_.:\-]+$")]
MAX_POINTS = 10**9


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class EarnIn(_Input):
    """Points for something a customer did. ``reference`` is the order number (the order's
    customer and paid total decide the points), or the review or post id; the movement's
    idempotency key is ``<rule>:<reference>``, so the same deed never earns twice."""

    rule: Literal["order", "review", "ugc"]
    reference: Key
    customer_external_id: Key | None = None


class SignInIn(_Input):
    """A daily sign-in: earns once per local day, the key is ``signin:<customer>:<day>``."""

    customer_external_id: Key


class AdjustIn(_Input):
    """A manual correction by staff: ``points`` > 0 credits, < 0 debits (never below 0)."""

    customer_external_id: Key
    points: Annotated[int, Field(ge=-MAX_POINTS, le=MAX_POINTS)]
    reason: Annotated[str, Field(min_length=1, max_length=200)]
    idempotency_key: IdempotencyKey


class RedeemIn(_Input):
    """Spend points on a reward, once per ``idempotency_key``."""

    customer_external_id: Key
    reward: Key
    idempotency_key: IdempotencyKey


class RefundIn(_Input):
    """Give back the points of a redemption (named by its idempotency key)."""

    redemption_key: IdempotencyKey
    idempotency_key: IdempotencyKey


class RewardIn(_Input):
    """A reward of the catalogue, created or replaced by its ``code``."""

    code: Key
    name: Annotated[str, Field(min_length=1, max_length=100)]
    kind: RewardKind
    cost_points: Annotated[int, Field(ge=1, le=MAX_POINTS)]
    stock: Annotated[int, Field(ge=0, le=10**8)] | None = None
    active: bool = True
    code_valid_days: Annotated[int, Field(ge=1, le=366)] = 30


class RewardOut(RewardIn):
    updated_at: datetime
    created: bool = False


class MovementOut(BaseModel):
    """A movement as the customer sees it: ``points`` signed (+ credit, - debit)."""

    idempotency_key: str
    kind: MovementKind
    customer_external_id: str
    points: int
    balance_after: int
    reason: str
    created_at: datetime
    replayed: bool = False


class StoreCodeOut(BaseModel):
    """The one-time code of an offline reward; the shop app shows ``code`` as a QR."""

    code: str
    expires_at: datetime
    used_at: datetime | None
    store_id: str | None
    voided: bool


class RedemptionOut(BaseModel):
    """A redemption: its debit, the refund that gave the points back (if any), its store
    code (offline rewards). ``replayed``: this request repeated a stored one."""

    movement: MovementOut
    reward: str
    reward_kind: RewardKind
    state: Literal["done", "refunded"]
    store_code: StoreCodeOut | None
    refund: MovementOut | None = None
    replayed: bool = False


class LotOut(BaseModel):
    points: int
    remaining: int
    expires_at: datetime


class BalanceOut(BaseModel):
    """A customer's balance and the lots still holding points, soonest to expire first."""

    customer_external_id: str
    balance: int
    lots: list[LotOut]


class EntryOut(BaseModel):
    id: int
    points: int
    kind: MovementKind
    idempotency_key: str
    reason: str
    created_at: datetime


class StatementPage(BaseModel):
    """A customer's entries newest first; ``next_before`` pages on."""

    customer_external_id: str
    balance: int
    entries: list[EntryOut]
    next_before: int | None


class ExpiryReport(BaseModel):
    """What an expiry run did: lots expired now, points taken, customers touched."""

    as_of: datetime
    lots: int
    points: int
    customers: int


class VerifyIn(_Input):
    code: Annotated[str, Field(min_length=1, max_length=100)]
    store_id: Key


class VerifyOut(BaseModel):
    """An accepted code: what the store hands over."""

    accepted: Literal[True] = True
    reward: str
    reward_name: str
    customer_external_id: str
    used_at: datetime
    store_id: str
