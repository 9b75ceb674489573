"""Community contracts: the only community shapes other domains and entrypoints see."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

LevelCode = Literal["newcomer", "certified", "senior", "core"]
TaskKind = Literal["course", "quiz", "first_post", "live", "other"]
RoundState = Literal["open", "closed"]
HubRole = Literal["expert", "brand", "user"]
FeedOrder = Literal["newest", "best"]
Key = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")]
TaskCode = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[a-z0-9_]+$")]
MAX_FEN = 10**13  # ¥1,000 亿: far above any fund, far below BIGINT


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# --- ladder ------------------------------------------------------------------------------


class LevelIn(_Input):
    """What a creator needs for a level. Posts, mean quality and attributed orders count
    over the ``window_days`` before the evaluated instant; academy tasks and hub days over
    all time (hub days since the creator's earliest hub membership)."""

    name: Annotated[str, Field(min_length=1, max_length=32)]
    window_days: Annotated[int, Field(ge=1, le=365)] = 90
    min_posts: Annotated[int, Field(ge=0, le=100_000)] = 0
    min_mean_quality: Annotated[float, Field(ge=0, le=100)] = 0.0
    min_orders: Annotated[int, Field(ge=0, le=10_000_000)] = 0
    min_academy_tasks: Annotated[int, Field(ge=0, le=1_000)] = 0
    required_tasks_done: bool = False
    min_hub_days: Annotated[int, Field(ge=0, le=36_500)] = 0


class LevelOut(LevelIn):
    code: LevelCode
    rank: int
    updated_at: datetime


class CriterionCheck(BaseModel):
    """One criterion of one level for one creator: what is needed, what they have."""

    level: LevelCode
    criterion: str
    needed: float
    actual: float
    passed: bool


class LadderReport(BaseModel):
    """What one ladder evaluation did."""

    as_of: datetime
    creators: int
    levels: dict[LevelCode, int]
    upgrades: int
    downgrades: int
    changes: int


class StandingOut(BaseModel):
    """A creator's level, since when, and every criterion of every level checked."""

    creator_external_id: str
    customer_id: int
    level: LevelCode
    level_name: str
    since: datetime | None
    evaluated_at: datetime | None
    next_level: LevelCode | None
    missing_for_next: list[CriterionCheck] = Field(
        description="the failed criteria of the next level")
    checks: list[CriterionCheck]


class LevelChangeOut(BaseModel):
    id: int
    customer_id: int
    creator_external_id: str | None
    as_of: datetime
    from_level: LevelCode | None
    to_level: LevelCode


class LevelChangePage(BaseModel):
    """Changes in id order; ask again with ``after=next_after`` for the next page."""

    items: list[LevelChangeOut]
    next_after: int | None


# --- academy -----------------------------------------------------------------------------


class TaskIn(_Input):
    title: Annotated[str, Field(min_length=1, max_length=100)]
    kind: TaskKind = "course"
    required: bool = False
    points: Annotated[int, Field(ge=0, le=10_000)] = 10
    position: Annotated[int, Field(ge=0, le=10_000)] = 0


class TaskOut(TaskIn):
    code: str
    updated_at: datetime


class CompletionIn(_Input):
    creator_external_id: Key
    completed_at: AwareDatetime | None = Field(default=None, description="Defaults to now")


class CompletionOut(BaseModel):
    id: int
    task_code: str
    creator_external_id: str
    completed_at: datetime
    created: bool = Field(description="false when the task was already completed: the "
                                      "stored completion is returned unchanged")


class TaskProgress(BaseModel):
    code: str
    title: str
    kind: TaskKind
    required: bool
    points: int
    completed_at: datetime | None


class AcademyProgress(BaseModel):
    creator_external_id: str
    completed: int
    tasks: int
    required_completed: int
    required_tasks: int
    points: int
    items: list[TaskProgress]


# --- dashboard ---------------------------------------------------------------------------


class CreatorFigures(BaseModel):
    """Content figures over a window: posts, mean post quality, views, attributed orders
    and GMV, conversion = orders / views."""

    posts: float
    mean_quality: float | None
    views: float
    orders: float
    gmv_fen: float
    conversion: float | None


class DashboardOut(BaseModel):
    creator_external_id: str
    display_name: str
    since: datetime
    until: datetime
    level: LevelCode
    level_name: str
    score: float = Field(description="posts × mean quality over the window (the fund score)")
    creator: CreatorFigures
    platform_average: CreatorFigures = Field(
        description="per posting creator; conversion is all orders over all views")
    next_level: LevelCode | None
    missing_for_next: list[CriterionCheck]
    academy: AcademyProgress


# --- fund --------------------------------------------------------------------------------


class RoundIn(_Input):
    """A fund round. ``key`` is the client's idempotency key: creating the same round again
    returns it; another round under the same key is refused."""

    key: Key
    name: Annotated[str, Field(min_length=1, max_length=100)]
    period_start: AwareDatetime
    period_end: AwareDatetime
    budget_fen: Annotated[int, Field(gt=0, le=MAX_FEN)]
    cap_fen: Annotated[int, Field(gt=0, le=MAX_FEN)]
    min_score: Annotated[float, Field(ge=0, le=1e9)] = 0.0

    @model_validator(mode="after")
    def _period_ordered(self) -> RoundIn:
        if self.period_end <= self.period_start:
            raise ValueError("period_end must be after period_start")
        return self


class CloseIn(_Input):
    idempotency_key: Key


class PayoutOut(BaseModel):
    customer_id: int
    creator_external_id: str | None
    score: float
    amount_fen: int


class RoundOut(BaseModel):
    key: str
    name: str
    period_start: datetime
    period_end: datetime
    budget_fen: int
    cap_fen: int
    min_score: float
    state: RoundState
    created_at: datetime
    closed_at: datetime | None
    paid_fen: int
    payouts: list[PayoutOut]
    replayed: bool = Field(default=False, description="true when this answer repeats an "
                                                      "earlier identical request")


# --- retention ---------------------------------------------------------------------------


class RetentionCohort(BaseModel):
    """Creators who were core in ``month``; ``retained[k]`` is the share of them who posted
    in the k-th month after (1 = the next month)."""

    month: str
    size: int
    still_posting: list[int]
    retained: list[float | None]


class RetentionOut(BaseModel):
    months: list[str]
    cohorts: list[RetentionCohort]


# --- hubs --------------------------------------------------------------------------------


class JoinIn(_Input):
    customer_external_id: Key
    role: HubRole = "user"
    joined_at: AwareDatetime | None = Field(default=None, description="Defaults to now")


class RoleIn(_Input):
    role: HubRole


class MemberOut(BaseModel):
    hub_external_id: str
    customer_external_id: str | None
    role: HubRole
    joined_at: datetime
    created: bool = False


class MemberPage(BaseModel):
    items: list[MemberOut]
    next_after: int | None


class HubSummary(BaseModel):
    external_id: str
    name: str
    brand_id: int | None
    members: dict[HubRole, int]


class FeedItem(BaseModel):
    external_id: str
    title: str
    author_customer_external_id: str | None
    content_type: str | None
    created_at: datetime
    comments: int
    quality: float | None


class FeedPage(BaseModel):
    """One page of a hub's published posts; pass ``cursor=next_cursor`` for the next."""

    order: FeedOrder
    items: list[FeedItem]
    next_cursor: str | None


class WeekFigures(BaseModel):
    week: date = Field(description="the Monday starting the week (business time zone)")
    new_members: int
    posts: int
    comments: int


class TopCreator(BaseModel):
    customer_external_id: str | None
    posts: int
    comments_received: int


class HubMetrics(BaseModel):
    hub_external_id: str
    members: dict[HubRole, int]
    weeks: list[WeekFigures]
    top_creators: list[TopCreator]


class PopulateReport(BaseModel):
    """What :func:`populate_from_content` filed."""

    levels: int
    tasks: int
    memberships: int
    completions: int
    ladder: LadderReport
    fund_round: RoundOut | None
