"""Invite-task and referral contracts: the only shapes of this area other code sees."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

Key = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")]
Token = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^\S+$")]
Code = Annotated[str, Field(min_length=4, max_length=32, pattern=r"^[A-Za-z0-9]+$")]
UtcDatetime = Annotated[AwareDatetime, AfterValidator(lambda v: v.astimezone(UTC))]
InviteCounts = Literal["registered", "first_paid_order"]
InviteeState = Literal["pending", "counted", "rejected"]
InviteeReason = Literal["self_invite", "existing_customer", "shared_device", "shared_address",
                        "shared_payment", "outside_window"]
CommissionState = Literal["pending", "settled", "clawed_back"]
EntryKind = Literal["settle", "clawback"]
MAX_POINTS = 10**6


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# --- invite tasks -----------------------------------------------------------------------


class InviteTaskIn(_Input):
    """A task: invite ``goal`` friends who count (``registered``: sign up through the
    invite; ``first_paid_order``: also pay a first order) in ``[starts_at, ends_at)`` and
    earn ``reward_points`` once."""

    code: Key
    name: Annotated[str, Field(min_length=1, max_length=100)]
    goal: Annotated[int, Field(ge=1, le=100)]
    counts: InviteCounts = "registered"
    starts_at: UtcDatetime
    ends_at: UtcDatetime
    reward_points: Annotated[int, Field(ge=1, le=MAX_POINTS)]


class InviteTaskOut(InviteTaskIn):
    id: int
    created_at: datetime
    inviters: int = 0
    counted: int = 0
    rewarded: int = 0


class InviteIn(_Input):
    """The shop app reports that ``invitee`` signed up through ``inviter``'s invite, on
    ``device_external_id`` when known. The same report again is a replay."""

    inviter: Key
    invitee: Key
    device_external_id: Token | None = None


class InviteeOut(BaseModel):
    """An invitee and whether they counted; ``reason`` says why not."""

    invitee: str
    invited_at: datetime
    state: InviteeState
    reason: InviteeReason | None
    order_external_id: str | None
    decided_at: datetime | None
    replayed: bool = False


class ProgressOut(BaseModel):
    """An inviter's progress: ``counted`` of ``goal``, the reward once reached."""

    task: str
    inviter: str
    goal: int
    counted: int
    rewarded: bool
    rewarded_at: datetime | None
    reward_points: int
    invitees: list[InviteeOut]


class TaskBoard(BaseModel):
    task: InviteTaskOut
    inviters: list[ProgressOut]


# --- referrals --------------------------------------------------------------------------


class RuleIn(_Input):
    """Commission terms: level-1 and level-2 rates in basis points (100 = 1 %), how long a
    link arrival is attributed, how long after completion a return is possible."""

    level1_bp: Annotated[int, Field(ge=0, le=3000)]
    level2_bp: Annotated[int, Field(ge=0, le=3000)]
    attribution_days: Annotated[int, Field(ge=1, le=90)] = 7
    return_days: Annotated[int, Field(ge=0, le=90)] = 7


class RuleOut(RuleIn):
    id: int | None
    created_at: datetime | None
    created_by: str


class PromoterIn(_Input):
    """Make a customer a promoter; ``code`` is chosen when omitted."""

    customer: Key
    code: Code | None = None


class LinkOut(BaseModel):
    """A promoter's link: the shop serves ``path`` (``/r/<code>``)."""

    customer: str
    code: str
    path: str
    referrer: str | None
    """The promoter who brought this promoter (who earns level 2 on their sales)."""
    balance_fen: int
    created_at: datetime
    created: bool = False


class ClickIn(_Input):
    """A customer arrived by a promoter's link."""

    code: Code
    customer: Key


class AttributionOut(BaseModel):
    customer: str
    promoter: str
    code: str
    clicked_at: datetime
    expires_at: datetime
    bound_to: str
    """The promoter the customer is permanently bound to (their first link)."""


class CommissionOut(BaseModel):
    id: int
    order_external_id: str
    buyer: str
    promoter: str
    level: int
    base_fen: int
    rate_bp: int
    amount_fen: int
    state: CommissionState
    accrued_at: datetime
    settle_after: datetime | None
    settled_at: datetime | None
    clawed_back_at: datetime | None


class EntryOut(BaseModel):
    id: int
    kind: EntryKind
    amount_fen: int
    balance_after: int
    order_external_id: str
    level: int
    created_at: datetime


class StatementOut(BaseModel):
    """A promoter's money: the balance (the sum of the ledger entries: settlements minus
    clawbacks after settlement), the commission now pending, settled and clawed back (at
    any time), the ledger entries and the commissions, newest first."""

    promoter: str
    code: str
    balance_fen: int
    pending_fen: int
    settled_fen: int
    clawed_back_fen: int
    entries: list[EntryOut]
    commissions: list[CommissionOut]


class TreeOrder(BaseModel):
    order_external_id: str
    status: str
    total_fen: int
    paid_at: datetime | None
    commission_fen: int
    commission_state: CommissionState | None


class TreeNode(BaseModel):
    """A customer bound to the promoter above: their orders and the commission those
    orders earned the tree's root; ``children`` (level 1 only) are the customers bound to
    this customer when they promote too."""

    customer: str
    level: int
    bound_at: datetime
    is_promoter: bool
    orders: list[TreeOrder]
    paid_fen: int
    commission_pending_fen: int
    commission_settled_fen: int
    commission_clawed_back_fen: int
    children: list[TreeNode]


class TreeOut(BaseModel):
    promoter: str
    code: str
    referrer: str | None
    level1: int
    level2: int
    commission_pending_fen: int
    commission_settled_fen: int
    commission_clawed_back_fen: int
    nodes: list[TreeNode]


class PromoterRow(BaseModel):
    customer: str
    code: str
    referrer: str | None
    bound: int
    balance_fen: int
    pending_fen: int


class SettleReport(BaseModel):
    as_of: datetime
    settled: int
    settled_fen: int
