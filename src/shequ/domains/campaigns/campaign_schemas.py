"""Campaign and calendar contracts: what the API, the console and the demo exchange."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

Tier = Literal["brand_day", "holiday", "hot_topic"]
Kind = Literal["commercial", "esg"]
PhaseKind = Literal["teaser", "seeding", "conversion", "word_of_mouth"]
Channel = Literal["app_home_banner", "live_room", "wechat_group", "xiaohongshu", "douyin",
                  "push_message"]
Status = Literal["draft", "scheduled", "live", "ended"]
ConflictKind = Literal["product_overlap", "stock", "budget", "channel"]
View = Literal["month", "week"]
Key = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")]
Month = Annotated[str, Field(pattern=r"^20\d{2}-(0[1-9]|1[0-2])$")]
FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2099, 12, 31)
Day = Annotated[date, Field(ge=FIRST_DAY, le=LAST_DAY)]
"""Campaign days lie in 2000..2099 (the calendar's range)."""


def _in_range(value: datetime) -> datetime:
    if not FIRST_DAY.year <= value.year <= LAST_DAY.year:
        raise ValueError("the time must lie in the years 2000 to 2099")
    return value


Moment = Annotated[datetime, AfterValidator(_in_range)]
MAX_FEN = 10**12
MAX_COUNT = 10**9


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class PhaseIn(_Input):
    """A phase in whole local days, both included."""

    kind: PhaseKind
    starts_on: Day
    ends_on: Day


class ProductLineIn(_Input):
    """A catalog product in the campaign. ``allocation``: units held for the campaign
    (checked against stock by the calendar). ESG campaigns give what one unit sold does:
    ``impact_per_unit`` of ``impact_unit`` (e.g. 0.5 ``kg`` of farm produce)."""

    sku: Key
    allocation: Annotated[int, Field(ge=0, le=MAX_COUNT)] | None = None
    impact_unit: Annotated[str, Field(min_length=1, max_length=16)] | None = None
    impact_per_unit: Annotated[Decimal, Field(ge=0, le=10**6, decimal_places=3)] | None = None


class SlotIn(_Input):
    """A channel booked for ``[starts_at, ends_at)``."""

    channel: Channel
    starts_at: Moment
    ends_at: Moment


class KpiIn(_Input):
    """Targets; None: no target for that figure."""

    gmv_fen: Annotated[int, Field(ge=0, le=MAX_FEN)] | None = None
    orders: Annotated[int, Field(ge=0, le=MAX_COUNT)] | None = None
    new_customers: Annotated[int, Field(ge=0, le=MAX_COUNT)] | None = None
    ugc_posts: Annotated[int, Field(ge=0, le=MAX_COUNT)] | None = None


class CampaignIn(_Input):
    """A campaign as created or replaced (an update replaces phases, products and slots)."""

    code: Key
    name: Annotated[str, Field(min_length=1, max_length=100)]
    tier: Tier
    kind: Kind = "commercial"
    brand: Key | None = None
    draft: bool = False
    starts_on: Day
    ends_on: Day
    phases: Annotated[list[PhaseIn], Field(min_length=1, max_length=4)]
    products: Annotated[list[ProductLineIn], Field(max_length=200)] = []
    channels: Annotated[list[SlotIn], Field(max_length=100)] = []
    budget_fen: Annotated[int, Field(ge=0, le=MAX_FEN)] = 0
    kpi: KpiIn = KpiIn()
    donation_bp: Annotated[int, Field(ge=0, le=10_000)] = 0


class PhaseOut(BaseModel):
    kind: PhaseKind
    starts_on: date
    ends_on: date


class ProductLineOut(BaseModel):
    sku: str
    name: str
    brand_external_id: str
    stock: int
    allocation: int | None
    impact_unit: str | None
    impact_per_unit: Decimal | None


class SlotOut(BaseModel):
    channel: Channel
    starts_at: datetime
    ends_at: datetime


class CampaignLink(BaseModel):
    """One side of a conflict: the campaign and where to open it."""

    id: int
    code: str
    name: str
    url: str
    api_url: str


class ConflictOut(BaseModel):
    """A resource clash the calendar found. ``subject``: the SKU(s), the channel, or
    ``brand month``; ``message`` explains it with the numbers."""

    kind: ConflictKind
    subject: str
    message: str
    campaigns: list[CampaignLink]


class CampaignOut(BaseModel):
    """A campaign; ``warnings`` are filled by create and update (the conflicts this
    campaign takes part in) and never block the save."""

    id: int
    code: str
    name: str
    tier: Tier
    kind: Kind
    brand: str | None
    brand_name: str | None
    draft: bool
    status: Status
    starts_on: date
    ends_on: date
    phases: list[PhaseOut]
    products: list[ProductLineOut]
    channels: list[SlotOut]
    budget_fen: int
    kpi: KpiIn
    donation_bp: int
    created_at: datetime
    updated_at: datetime
    warnings: list[ConflictOut] = []


class CampaignPage(BaseModel):
    total: int
    items: list[CampaignOut]


class Figures(BaseModel):
    """Results over one window. ``gmv_fen`` is the campaign products' line amounts of
    orders paid in the window and still paid; ``orders`` the orders holding one;
    ``ugc`` published posts and reviews about the products created in the window."""

    gmv_fen: int = 0
    orders: int = 0
    units: int = 0
    new_customers: int = 0
    ugc_posts: int = 0
    ugc_reviews: int = 0
    ugc: int = 0
    """Posts plus reviews: what the ``ugc_posts`` target counts."""


class Attainment(BaseModel):
    """A KPI: its target, what was reached, and the share (None without a target > 0)."""

    name: Literal["gmv_fen", "orders", "new_customers", "ugc_posts"]
    target: int | None
    actual: int
    pct: float | None


class PhaseResult(BaseModel):
    kind: PhaseKind
    starts_on: date
    ends_on: date
    figures: Figures
    kpis: list[Attainment]
    """This phase's share of each campaign target."""


class ImpactOut(BaseModel):
    unit: str
    amount: Decimal


class EsgResult(BaseModel):
    """What an ESG campaign did: impact by unit (units sold × impact per unit), the
    distinct brands (farmers, suppliers) whose products sold, the donation (a share of
    GMV, rounded down to the fen)."""

    impact: list[ImpactOut]
    beneficiaries: int
    donation_bp: int
    donation_fen: int


class ResultsOut(BaseModel):
    campaign_id: int
    as_of: datetime
    since: datetime
    until: datetime
    figures: Figures
    kpis: list[Attainment]
    phases: list[PhaseResult]
    esg: EsgResult | None


class CalendarEntry(BaseModel):
    """A campaign on a day, in the phase it is in then (None: between phases)."""

    campaign_id: int
    code: str
    name: str
    tier: Tier
    kind: Kind
    status: Status
    phase: PhaseKind | None
    url: str


class CalendarDay(BaseModel):
    day: date
    entries: list[CalendarEntry]


class CalendarOut(BaseModel):
    view: View
    starts_on: date
    ends_on: date
    previous: date
    next: date
    days: list[CalendarDay]
    conflicts: list[ConflictOut]
    """The conflicts of the campaigns shown."""


class BudgetIn(_Input):
    brand: Key
    month: Month
    budget_fen: Annotated[int, Field(ge=0, le=MAX_FEN)]


class BudgetOut(BudgetIn):
    brand_name: str
    planned_fen: int
    """The budgets of the brand's campaigns starting in that month."""
