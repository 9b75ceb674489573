"""Tier rules: reading, validated changes and the default programme."""

from __future__ import annotations

from collections.abc import Mapping
from itertools import pairwise

from sqlalchemy import select
from sqlalchemy.orm import Session

from shequ.core.clock import Clock
from shequ.core.errors import ValidationFailed, not_found
from shequ.core.permissions import CLI_PRINCIPAL, Principal
from shequ.domains.membership.models import TierRule
from shequ.domains.membership.schemas import Benefit, TierRuleIn, TierRuleOut, TierRulesIn
from shequ.stats.membership import TIERS

RANKS = {code: rank for rank, code in enumerate(TIERS, start=1)}


def _benefits(*items: tuple[str, str, str]) -> list[Benefit]:
    return [Benefit(code=code, title=title, description=text) for code, title, text in items]


_SHIPPING = ("free_shipping", "包邮", "订单满 49 元包邮")
_BIRTHDAY = ("birthday_gift", "生日礼", "生日当月领取生日礼券")
_SHIPPING_ALL = ("free_shipping", "包邮", "全部订单包邮")
_SERVICE = ("dedicated_service", "专属客服", "专属客服优先接待")
_EARLY = ("early_access", "优先购", "新品与大促提前 24 小时购买")
_RETURNS = ("free_returns", "免费退换", "运费险全免，上门取件")

#: The default programme. Thresholds are fen of rolling 12-month net spend (¥1,000 /
#: ¥5,000 / ¥20,000): on the default demo (90 days of orders, seed 7) they make a pyramid
#: of about 26 %, 9 % and 1.8 % of the customers who bought.
DEFAULT_RULES: Mapping[str, TierRuleIn] = {
    "silver": TierRuleIn(name="银卡", threshold=100_000, grace_days=30,
                         benefits=_benefits(_SHIPPING, _BIRTHDAY)),
    "gold": TierRuleIn(name="金卡", threshold=500_000, grace_days=30,
                       benefits=_benefits(_SHIPPING_ALL, _BIRTHDAY, _SERVICE)),
    "black_gold": TierRuleIn(name="黑金卡", threshold=2_000_000, grace_days=30,
                             benefits=_benefits(_SHIPPING_ALL, _BIRTHDAY, _SERVICE, _EARLY,
                                                _RETURNS)),
}


def rule_out(row: TierRule) -> TierRuleOut:
    """The contract of a stored rule."""
    return TierRuleOut(code=row.code, rank=row.rank, name=row.name,
                       basis=row.basis, threshold=row.threshold,
                       points_per_review=row.points_per_review,
                       points_per_post=row.points_per_post, grace_days=row.grace_days,
                       benefits=[Benefit.model_validate(b) for b in row.benefits],
                       updated_at=row.updated_at)


def rule_rows(session: Session) -> list[TierRule]:
    """The stored rules, lowest tier first."""
    return list(session.scalars(select(TierRule).order_by(TierRule.rank)))


def refuse_partners(principal: Principal) -> None:
    """Tiers rank customers on their spend across every brand: partners cannot see them."""
    principal.refuse_if_partner("platform_wide_membership", "membership tiers rank customers "
                                "on their spend across every brand; partners cannot use them")


def list_rules(session: Session, *, principal: Principal = CLI_PRINCIPAL) -> list[TierRuleOut]:
    """Every tier's rule, lowest tier first (tiers without a rule are left out)."""
    refuse_partners(principal)
    return [rule_out(row) for row in rule_rows(session)]


def check_programme(rules: Mapping[str, TierRuleIn]) -> None:
    """Refuse a set of rules that cannot rank members: every tier must qualify on one basis
    with the same point weights, and thresholds must rise strictly with the tier."""
    ordered = sorted(rules.items(), key=lambda item: RANKS[item[0]])
    for (low_code, low), (high_code, high) in pairwise(ordered):
        for attr in ("basis", "points_per_review", "points_per_post"):
            if getattr(low, attr) != getattr(high, attr):
                raise ValidationFailed(
                    "tiers_disagree", f"every tier qualifies on the same {attr}: {low_code} "
                    f"has {getattr(low, attr)!r}, {high_code} {getattr(high, attr)!r} "
                    "(change them together with PUT /rules)", attr)
        if high.threshold <= low.threshold:
            raise ValidationFailed(
                "thresholds_not_increasing", f"the {high_code} threshold ({high.threshold}) "
                f"must be above the {low_code} threshold ({low.threshold})", "threshold")


def _store(session: Session, clock: Clock, rules: Mapping[str, TierRuleIn]) -> None:
    existing = {row.code: row for row in rule_rows(session)}
    now = clock.now()
    for code, data in rules.items():
        row = existing.get(code)
        if row is None:
            row = TierRule(code=code, rank=RANKS[code])
            session.add(row)
        row.name, row.basis, row.threshold = data.name, data.basis, data.threshold
        row.points_per_review, row.points_per_post = (data.points_per_review,
                                                      data.points_per_post)
        row.grace_days, row.updated_at = data.grace_days, now
        row.benefits = [benefit.model_dump() for benefit in data.benefits]
    session.flush()


def _current(session: Session) -> dict[str, TierRuleIn]:
    return {row.code: TierRuleIn.model_validate(rule_out(row).model_dump(
        include=set(TierRuleIn.model_fields))) for row in rule_rows(session)}


def put_rule(session: Session, clock: Clock, code: str, data: TierRuleIn, *,
             principal: Principal = CLI_PRINCIPAL) -> TierRuleOut:
    """Create or replace one tier's rule, checked against the other tiers' rules."""
    refuse_partners(principal)
    if code not in RANKS:
        raise not_found("tier", code)
    rules = _current(session) | {code: data}
    check_programme(rules)
    _store(session, clock, {code: data})
    return next(rule for rule in list_rules(session) if rule.code == code)


def put_rules(session: Session, clock: Clock, data: TierRulesIn, *,
              principal: Principal = CLI_PRINCIPAL) -> list[TierRuleOut]:
    """Replace every tier's rule at once (the way to switch basis or point weights)."""
    refuse_partners(principal)
    rules = {code: getattr(data, code) for code in TIERS}
    check_programme(rules)
    _store(session, clock, rules)
    return list_rules(session)


def install_default_rules(session: Session, clock: Clock) -> list[TierRuleOut]:
    """File :data:`DEFAULT_RULES` for the tiers that have no rule yet; rules already
    there are kept, so running it again changes nothing."""
    present = {row.code for row in rule_rows(session)}
    missing = {code: rule for code, rule in DEFAULT_RULES.items() if code not in present}
    if missing:
        check_programme(_current(session) | missing)
        _store(session, clock, missing)
    return list_rules(session)
