"""The creators' academy: tasks (courses, quizzes, the first post …), completions unique
per task and creator, and each creator's progress."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import case, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shequ.core import audit
from shequ.core.clock import Clock
from shequ.core.errors import NotFound, ValidationFailed
from shequ.core.permissions import CLI_PRINCIPAL, Principal
from shequ.domains.community.models import AcademyTask, TaskCompletion
from shequ.domains.community.schemas import (
    AcademyProgress,
    CompletionIn,
    CompletionOut,
    TaskIn,
    TaskOut,
    TaskProgress,
)
from shequ.domains.community.sources import creator_by_key

#: The default curriculum; ``first_post`` is completed from content by
#: :func:`shequ.domains.community.service.populate_from_content`.
DEFAULT_TASKS: Mapping[str, TaskIn] = {
    "community_rules": TaskIn(title="社区公约与内容规范", kind="course", required=True,
                              points=10, position=1),
    "rules_quiz": TaskIn(title="社区公约小测验", kind="quiz", required=True, points=20,
                         position=2),
    "first_post": TaskIn(title="发布第一篇内容", kind="first_post", required=True, points=30,
                         position=3),
    "review_writing": TaskIn(title="如何写一篇好测评", kind="course", points=20, position=4),
    "product_photo": TaskIn(title="产品摄影入门", kind="course", points=20, position=5),
    "live_basics": TaskIn(title="直播带货基础", kind="live", points=30, position=6),
}


TASK_CODE = re.compile(r"[a-z0-9_]{1,32}")


def refuse_partners(principal: Principal) -> None:
    """Creator programmes span every brand: partners cannot use them."""
    principal.refuse_if_partner("platform_wide_creators", "the creator programmes rank "
                                "creators across every brand; partners cannot use them")


def _task_out(row: AcademyTask) -> TaskOut:
    return TaskOut(code=row.code, title=row.title, kind=row.kind,
                   required=row.required, points=row.points, position=row.position,
                   updated_at=row.updated_at)


def task_rows(session: Session) -> list[AcademyTask]:
    """Every task in curriculum order."""
    return list(session.scalars(select(AcademyTask)
                                .order_by(AcademyTask.position, AcademyTask.code)))


def list_tasks(session: Session, *, principal: Principal = CLI_PRINCIPAL) -> list[TaskOut]:
    """The curriculum, in order."""
    refuse_partners(principal)
    return [_task_out(row) for row in task_rows(session)]


def _check_code(code: str) -> None:
    if TASK_CODE.fullmatch(code) is None:
        raise ValidationFailed("bad_task_code", f"{code!r} is not a task code (1-32 of a-z, "
                               "0-9, _)", "code")


def put_task(session: Session, clock: Clock, code: str, data: TaskIn, *,
             principal: Principal = CLI_PRINCIPAL) -> TaskOut:
    """Create or replace a task."""
    refuse_partners(principal)
    _check_code(code)
    row = session.get(AcademyTask, code)
    if row is None:
        row = AcademyTask(code=code)
        session.add(row)
    row.title, row.kind, row.required = data.title, data.kind, data.required
    row.points, row.position, row.updated_at = data.points, data.position, clock.now()
    session.flush()
    return _task_out(row)


def install_default_tasks(session: Session, clock: Clock) -> list[TaskOut]:
    """File :data:`DEFAULT_TASKS` that are missing; tasks already there are kept."""
    present = {row.code for row in task_rows(session)}
    for code, data in DEFAULT_TASKS.items():
        if code not in present:
            put_task(session, clock, code, data)
    return list_tasks(session)


def record_completion(session: Session, task_code: str, customer_id: int,
                      when: datetime) -> tuple[TaskCompletion, bool]:
    """Store a completion once: ``(row, True)`` when new, the stored row and False when
    the task was already completed (also when a concurrent request stored it first)."""
    query = select(TaskCompletion).where(TaskCompletion.task_code == task_code,
                                         TaskCompletion.customer_id == customer_id)
    found = session.scalar(query)
    if found is not None:
        return found, False
    row = TaskCompletion(task_code=task_code, customer_id=customer_id, completed_at=when)
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        stored = session.scalar(query)
        if stored is None:
            raise
        return stored, False
    return row, True


def record_completions(session: Session, wanted: dict[tuple[str, int], datetime]) -> int:
    """Store the ``(task code, customer id) -> completed at`` completions that are missing
    (a batch, for :func:`populate_from_content`); how many were new."""
    present = set(session.execute(select(TaskCompletion.task_code, TaskCompletion.customer_id))
                  .tuples().all())
    new = [{"task_code": code, "customer_id": customer_id, "completed_at": when}
           for (code, customer_id), when in sorted(wanted.items())
           if (code, customer_id) not in present]
    if new:
        session.execute(insert(TaskCompletion.__table__), new)  # type: ignore[arg-type]
        audit.record(session, action="populate", entity="academy_completions",
                     entity_id="content", after={"rows": len(new)})
    return len(new)


def complete_task(session: Session, clock: Clock, task_code: str, data: CompletionIn, *,
                  principal: Principal = CLI_PRINCIPAL) -> CompletionOut:
    """Mark a task completed by a creator. Completing it again changes nothing and returns
    the stored completion with ``created`` false."""
    refuse_partners(principal)
    if session.get(AcademyTask, task_code) is None:
        raise NotFound("task_not_found", f"no academy task {task_code!r}", "task_code")
    creator = creator_by_key(session, data.creator_external_id)
    now = clock.now()
    when = data.completed_at or now
    if when > now:
        raise ValidationFailed("time_in_future", "completed_at lies in the future",
                               "completed_at")
    row, created = record_completion(session, task_code, creator.customer_id, when)
    return CompletionOut(id=row.id, task_code=task_code,
                         creator_external_id=data.creator_external_id,
                         completed_at=row.completed_at, created=created)


def completed_counts(session: Session) -> dict[int, tuple[int, int]]:
    """``customer id -> (tasks completed, required tasks completed)``."""
    rows = session.execute(
        select(TaskCompletion.customer_id, func.count(),
               func.sum(case((AcademyTask.required.is_(True), 1), else_=0)))
        .join(AcademyTask, AcademyTask.code == TaskCompletion.task_code)
        .group_by(TaskCompletion.customer_id)).all()
    return {row[0]: (int(row[1]), int(row[2] or 0)) for row in rows}


def required_total(session: Session) -> int:
    """How many tasks are required."""
    return session.scalar(select(func.count()).where(AcademyTask.required.is_(True))) or 0


def progress_of(session: Session, customer_id: int, creator_key: str) -> AcademyProgress:
    """A creator's progress through the curriculum."""
    done = dict(session.execute(select(TaskCompletion.task_code, TaskCompletion.completed_at)
                                .where(TaskCompletion.customer_id == customer_id))
                .tuples().all())
    items = [TaskProgress(code=row.code, title=row.title, kind=row.kind,
                          required=row.required, points=row.points,
                          completed_at=done.get(row.code)) for row in task_rows(session)]
    finished = [item for item in items if item.completed_at is not None]
    return AcademyProgress(
        creator_external_id=creator_key, completed=len(finished), tasks=len(items),
        required_completed=sum(item.required for item in finished),
        required_tasks=sum(item.required for item in items),
        points=sum(item.points for item in finished), items=items)


def progress(session: Session, creator_external_id: str, *,
             principal: Principal = CLI_PRINCIPAL) -> AcademyProgress:
    """A creator's tasks, completions and points."""
    refuse_partners(principal)
    creator = creator_by_key(session, creator_external_id)
    return progress_of(session, creator.customer_id, creator.external_id)
