"""The demo's moderation team at work: the shop's own lexicon terms go in before the content
is loaded (so every post, comment and review is checked against them on arrival), then
four moderators work the queue the way a small team does, through the same service calls
the console makes, each at its simulated moment:

* two on level 1 and one each on levels 2 and 3, round the clock with a thin night shift
  (00:00–09:00 Shanghai time);
* a case is picked up after an exponential wait (mean ``PICKUP_MEAN_MIN`` by day,
  ``NIGHT_PICKUP_MEAN_MIN`` at night) and handled in 0.5–3 minutes; level 1 sends
  ``ESCALATE_SHARE`` of its cases up to level 2;
* planted violations are blocked, everything else the machine held is passed;
* ``APPEAL_SHARE`` of the blocks are appealed 1–12 hours later and decided at level 3,
  which restores the text when it was not a planted violation (a machine block of an
  innocent text) and otherwise upholds the block;
* cases that arrived in the last ``LEFT_WAITING_H`` hours of the demo are left in the
  queue, so the console has work to show.

The figures (share decided automatically, time to decision, overturn rate, throughput)
come from these decisions through ``moderation.service.figures``, like a real shop's.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy.orm import Session

from shequ.core.clock import FixedClock
from shequ.core.db import transaction
from shequ.core.permissions import CLI_PRINCIPAL, ROLE_PERMISSIONS, Principal, Role
from shequ.core.web import Services
from shequ.demo.violations import SHOP_ALLOW, SHOP_TERMS
from shequ.domains.moderation import incidents
from shequ.domains.moderation import service as moderation
from shequ.domains.moderation.incident_schemas import AdvanceIn, DetectIn, OwnerIn, ReviewIn
from shequ.domains.moderation.schemas import CaseOut, QueueFigures, TermIn

SHANGHAI = ZoneInfo("Asia/Shanghai")
MODERATORS = {1: ("mod_li", "mod_wang"), 2: ("mod_zhao",), 3: ("mod_chen",)}
DAY_STARTS_H = 9
PICKUP_MEAN_MIN = 4.0
NIGHT_PICKUP_MEAN_MIN = 15.0
ESCALATE_SHARE = 0.08
APPEAL_SHARE = 0.15
LEFT_WAITING_H = 48
REASONS = {"block": ("导流站外联系方式", "广告引流", "违规内容", "辱骂他人"),
           "pass": ("正常讨论", "正常评价，非广告", "误报：商品描述用语")}


def install_shop_terms(services: Services) -> int:
    """The shop's lexicon additions (``violations.SHOP_TERMS``) and allow-list phrases
    (``violations.SHOP_ALLOW``); how many were added."""
    terms = [TermIn(term=t, category=c, severity=s, note="demo shop term")
             for t, c, s in SHOP_TERMS]
    terms += [TermIn(term=t, category="allow", note="demo shop vocabulary") for t in SHOP_ALLOW]
    with transaction(services.sessions, actor="cli", clock=services.clock) as session:
        return moderation.import_terms(session, services.clock, CLI_PRINCIPAL, terms).added


def _principal(name: str, number: int) -> Principal:
    return Principal(kind="user", id=1_000 + number, name=name,
                     permissions=ROLE_PERMISSIONS[Role.MODERATOR], role=Role.MODERATOR)


def _pickup_mean(at: datetime) -> float:
    night = at.astimezone(SHANGHAI).hour < DAY_STARTS_H
    return NIGHT_PICKUP_MEAN_MIN if night else PICKUP_MEAN_MIN


class _Team:
    def __init__(self, session: Session, seed: int) -> None:
        self.session = session
        self.rng = np.random.default_rng([seed, 10])
        names = [n for level in (1, 2, 3) for n in MODERATORS[level]]
        self.people = {n: _principal(n, i) for i, n in enumerate(names)}
        self.acts = 0

    def minutes(self, mean: float) -> timedelta:
        return timedelta(minutes=float(self.rng.exponential(mean)))

    def handling(self) -> timedelta:
        return timedelta(minutes=float(self.rng.uniform(0.5, 3.0)))

    def who(self, level: int) -> Principal:
        names = MODERATORS[level]
        return self.people[names[int(self.rng.integers(len(names)))]]

    def reason(self, label: str) -> str:
        options = REASONS[label]
        return options[int(self.rng.integers(len(options)))]

    def work(self, case: CaseOut, bad: bool) -> tuple[str, datetime]:
        """Pick up, maybe escalate, decide; the label and when it was decided."""
        at = case.submitted_at + self.minutes(_pickup_mean(case.submitted_at))
        level = case.level or 1
        person = self.who(level)
        moderation.assign(self.session, FixedClock(at), person, case.id, person.name)
        at += self.handling()
        if level == 1 and self.rng.random() < ESCALATE_SHARE:
            moderation.escalate(self.session, FixedClock(at), person, case.id, "拿不准，交资深审核")
            at += self.minutes(_pickup_mean(at) * 2)
            person = self.who(2)
            moderation.assign(self.session, FixedClock(at), person, case.id, person.name)
            at += self.handling()
        label = "block" if bad else "pass"
        moderation.decide(self.session, FixedClock(at), person, case.id, label,
                          self.reason(label))
        self.acts += 1
        return label, at

    def appeal(self, case_id: int, blocked_at: datetime, bad: bool) -> None:
        at = blocked_at + timedelta(hours=float(self.rng.uniform(1, 12)))
        moderation.appeal(self.session, FixedClock(at), CLI_PRINCIPAL, case_id,
                          "我没有违规，请复核")
        at += self.minutes(60)
        person = self.who(3)
        moderation.assign(self.session, FixedClock(at), person, case_id, person.name)
        at += self.handling()
        label = "block" if bad else "pass"
        reason = "维持原判" if bad else "申诉成立：误判"
        moderation.decide(self.session, FixedClock(at), person, case_id, label, reason)


def _all(session: Session, clock: FixedClock, **filters: Any) -> list[CaseOut]:
    found: list[CaseOut] = []
    while True:
        page = moderation.list_cases(session, clock, CLI_PRINCIPAL, limit=500,
                                     offset=len(found), **filters)
        found.extend(page.items)
        if len(found) >= page.total or not page.items:
            return found


def work_the_queue(services: Services, planted: dict[str, Any], end: datetime,
                   seed: int) -> QueueFigures:
    """Let the demo's moderators decide the waiting cases; the resulting figures."""
    bad = {str(v["comment_external_id"]) for v in planted.get("comments", [])}
    cutoff = end - timedelta(hours=LEFT_WAITING_H)
    with transaction(services.sessions) as session:
        team = _Team(session, seed)
        waiting = sorted(_all(session, FixedClock(end), state="queued"),
                         key=lambda c: (c.submitted_at, c.id))
        blocks: list[tuple[int, datetime, bool]] = []
        for case in waiting:
            if case.submitted_at > cutoff:
                continue
            violation = case.subject_kind == "comment" and case.subject_id in bad
            label, at = team.work(case, violation)
            if label == "block":
                blocks.append((case.id, at, violation))
        auto_blocks = [c for c in _all(session, FixedClock(end), state="decided", label="block")
                       if c.decided_by == moderation.AUTO and c.submitted_at <= cutoff]
        for case in auto_blocks:
            blocks.append((case.id, case.submitted_at,
                           case.subject_kind == "comment" and case.subject_id in bad))
        for case_id, at, violation in sorted(blocks, key=lambda b: b[0]):
            if team.rng.random() < APPEAL_SHARE and at + timedelta(hours=12) < end:
                team.appeal(case_id, at, violation)
    with transaction(services.sessions) as session:
        start = end - timedelta(days=365)
        return moderation.figures(session, FixedClock(end), CLI_PRINCIPAL, start, end)


# --- crisis response ---------------------------------------------------------------------

RESPONSE_STEPS = (  # (hours after opening, state, note)
    (0.7, "assess", "核实：同一批次多位顾客反馈过敏，评论集中在 48 小时内"),
    (3.0, "respond", "已下架该批次，客服逐一联系受影响顾客退款并致歉，发布说明公告"),
    (72.0, "review", "负面评论回落到基线，进入复盘"),
)


def detect_crises(services: Services, start: datetime, end: datetime) -> int:
    """Run crisis detection the way the hourly job would have: a dry run over the window
    finds when each burst became visible, detection then runs at the next hour after each,
    and an operator takes every incident it opened through the workflow within the 24 h
    SLA and writes the post-incident review. A last run covers the whole window. How many
    incidents were opened."""
    dry = services.sessions()
    try:
        found = incidents.detect_bursts(dry, FixedClock(end), DetectIn(as_of=end, since=start))
    finally:
        dry.rollback()
        dry.close()
    moments = sorted({b.window_end.replace(minute=0, second=0, microsecond=0)
                      + timedelta(hours=1) for b in found.bursts if b.outcome == "opened"})
    opened = 0
    for at in moments:
        with transaction(services.sessions, actor="worker", clock=services.clock) as session:
            report = incidents.detect_bursts(session, FixedClock(at), DetectIn(
                as_of=at, since=at - timedelta(days=7)))
            opened += report.opened
            for key in {b.incident_key for b in report.bursts if b.outcome == "opened"}:
                if key is not None:
                    _respond(session, key, at)
    with transaction(services.sessions, actor="worker", clock=services.clock) as session:
        opened += incidents.detect_bursts(session, FixedClock(end),
                                          DetectIn(as_of=end, since=start)).opened
    return opened


def _respond(session: Session, key: str, opened_at: datetime) -> None:
    owner = _principal("ops_wang", 99)
    incidents.set_owner(session, FixedClock(opened_at + timedelta(minutes=20)), key,
                        OwnerIn(owner=owner.name))
    for hours, state, note in RESPONSE_STEPS:
        incidents.advance(session, FixedClock(opened_at + timedelta(hours=hours)), key,
                          AdvanceIn(to_state=state, note=note))
    closing = opened_at + timedelta(hours=RESPONSE_STEPS[-1][0] + 1)
    incidents.write_review(session, FixedClock(closing), key, ReviewIn(
        root_cause="单一批次原料问题引发集中过敏反馈；质检未覆盖该批次的敏感测试",
        actions="该批次全部下架并退款；供应商整改后加测斑贴试验；客服话术与公告模板入库"))
    incidents.advance(session, FixedClock(closing + timedelta(minutes=10)), key,
                      AdvanceIn(to_state="closed", note="复盘完成，关闭事件"))
