"""Membership contracts: the only membership shapes other domains and entrypoints see."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator

TierCode = Literal["silver", "gold", "black_gold"]
Standing = Literal["none", "silver", "gold", "black_gold"]
Basis = Literal["spend", "points"]
Reason = Literal["upgrade", "downgrade", "grace_started", "grace_cancelled"]

MAX_BENEFITS = 20
MAX_THRESHOLD = 10**15


class Benefit(BaseModel):
    """One benefit of a tier (包邮, 生日礼 …): a stable code and what members read."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    code: Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[a-z0-9_]+$")]
    title: Annotated[str, Field(min_length=1, max_length=50)]
    description: Annotated[str, Field(max_length=500)] = ""


class TierRuleIn(BaseModel):
    """How a tier is earned and kept.

    ``basis`` ``spend``: ``threshold`` is fen of rolling 12-month net spend of paid orders;
    ``points``: growth points over the same 12 months (1 point per whole yuan of that spend,
    plus ``points_per_review`` per review and ``points_per_post`` per published post).
    Every tier qualifies on the same basis and point weights.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Annotated[str, Field(min_length=1, max_length=32)]
    basis: Basis = "spend"
    threshold: Annotated[int, Field(gt=0, le=MAX_THRESHOLD)]
    points_per_review: Annotated[int, Field(ge=0, le=10_000)] = 0
    points_per_post: Annotated[int, Field(ge=0, le=10_000)] = 0
    grace_days: Annotated[int, Field(ge=0, le=365)] = 30
    benefits: Annotated[list[Benefit], Field(max_length=MAX_BENEFITS)] = []

    @field_validator("benefits")
    @classmethod
    def _distinct_codes(cls, value: list[Benefit]) -> list[Benefit]:
        codes = [benefit.code for benefit in value]
        if len(set(codes)) != len(codes):
            raise ValueError("benefit codes must be distinct within a tier")
        return value


class TierRuleOut(TierRuleIn):
    code: TierCode
    rank: int
    updated_at: datetime


class TierRulesIn(BaseModel):
    """Every tier's rule at once: the way to switch the basis of the whole programme."""

    model_config = ConfigDict(extra="forbid")

    silver: TierRuleIn
    gold: TierRuleIn
    black_gold: TierRuleIn


class EvaluationReport(BaseModel):
    """What evaluating one day did."""

    day: date
    basis: Basis
    customers: int = Field(description="customers evaluated: buyers of the 12 months and "
                                        "everyone holding a membership row")
    members: dict[TierCode, int]
    upgrades: int
    downgrades: int
    grace_started: int
    grace_cancelled: int

    @computed_field  # type: ignore[prop-decorator]
    @property
    def changes(self) -> int:
        """History rows this evaluation wrote."""
        return self.upgrades + self.downgrades + self.grace_started + self.grace_cancelled


class TierChangeOut(BaseModel):
    id: int
    customer_id: int
    day: date
    from_tier: Standing
    to_tier: Standing
    reason: Reason
    qualified_value: int
    grace_until: date | None


class TierChangePage(BaseModel):
    """Changes in id order; ask again with ``after=next_after`` for the next page."""

    items: list[TierChangeOut]
    next_after: int | None


class MemberOut(BaseModel):
    """A customer's standing with the benefits it gives and its whole history."""

    customer_id: int
    customer_external_id: str
    tier: Standing
    tier_name: str | None
    basis: Basis | None
    qualified_value: int
    since: date | None
    grace_until: date | None
    evaluated_on: date | None
    next_tier: TierCode | None
    missing_for_next: int | None = Field(description="value still needed for the next tier")
    benefits: list[Benefit]
    history: list[TierChangeOut]


class TierFigures(BaseModel):
    """One tier (or ``none``: buyers without a tier) over the 12 months ending ``day``."""

    tier: Standing
    customers: int
    spend_fen: int
    spend_share: float | None
    average_spend_fen: float | None
    spend_multiple: float | None = Field(description="average spend over that of buyers "
                                                     "without a tier")
    repurchase_rate: float | None = Field(description="share with at least two orders")


class FiguresOut(BaseModel):
    day: date
    window_from: date
    items: list[TierFigures]
