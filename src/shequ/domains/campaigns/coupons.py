"""Coupon use cases: templates, issuance, quote, checkout with a coupon, release on
cancel, figures and the invariant check (docs/coupons.md).

Exactly once, under concurrency:

* issuance locks the template row (``SELECT … FOR UPDATE`` on PostgreSQL, the write lock
  of a no-op UPDATE on SQLite), so the per-customer limit and the total quantity are
  checked and counted by one issuer at a time; a coupon is unique per (template,
  customer, batch key), so a repeated batch issues nothing new;
* checkout creates the order and uses the coupon in one savepoint of the caller's
  transaction: the order (``orders.service.create_order``, idempotent on its number),
  then the discount added to the template's ``granted_fen`` by a conditional UPDATE
  that refuses to pass ``budget_fen`` (``budget_exhausted``), then the coupon moved
  ``issued → used`` by a conditional UPDATE (``coupon_used`` when another order got it
  first), then the redemption row (unique on the order, one active row per coupon). Any
  refusal rolls all of it back, order and stock included;
* cancelling an order (created → cancelled) releases its redemption once (a conditional
  UPDATE on its state), gives the discount back to the budget and the coupon back to its
  holder. A refund after payment gives nothing back: the coupon stays used.
"""

from __future__ import annotations

import random
import secrets
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, and_, func, select, update
from sqlalchemy.orm import Session

from shequ.core.clock import Clock
from shequ.core.db import Base, lookup
from shequ.core.errors import Conflict, NotFound, ValidationFailed
from shequ.core.permissions import CLI_PRINCIPAL, Principal
from shequ.core.web import Services
from shequ.domains.campaigns.coupon_models import (
    Coupon,
    CouponBatch,
    CouponRedemption,
    CouponScopeSku,
    CouponTemplate,
)
from shequ.domains.campaigns.coupon_schemas import (
    MAX_RECIPIENTS,
    BatchOut,
    CheckoutIn,
    CheckoutOut,
    CouponOut,
    FiguresOut,
    IssueIn,
    IssueOut,
    QuoteIn,
    QuoteOut,
    RedemptionOut,
    Skipped,
    TemplateDetail,
    TemplateIn,
    TemplateOut,
)
from shequ.domains.catalog.service import brand_ids_by_key, get_product, product_brands
from shequ.domains.customers.service import customer_ids_by_key, customer_keys_by_id
from shequ.domains.orders.schemas import LineIn, OrderIn
from shequ.domains.orders.service import (
    OrderTransition,
    create_order,
    get_order,
    list_orders,
    on_transition,
)
from shequ.domains.segments import service as segments

__all__ = [
    "batches", "checkout", "create_template", "customer_coupons", "discount_for", "figures",
    "get_template", "invariant_violations", "issue", "list_figures", "list_templates",
    "quote", "recipients", "redemptions", "template_detail", "template_errors",
]

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud at a till
CODE_LENGTH = 12
PAID_STATUSES = ("paid", "shipped", "completed")
SEGMENT_PAGE = 10_000
REDEMPTIONS_SHOWN = 200


# --- templates --------------------------------------------------------------------------


def _template(session: Session, code: str) -> CouponTemplate:
    found = session.scalar(select(CouponTemplate).where(CouponTemplate.code == code)
                           .execution_options(populate_existing=True))
    if found is None:
        raise NotFound("template_not_found", f"no coupon template {code!r}", "code")
    return found


def _scope_skus(session: Session, template_ids: Iterable[int]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = defaultdict(list)
    ids = sorted(set(template_ids))
    if ids:
        rows = session.execute(select(CouponScopeSku.template_id, CouponScopeSku.sku)
                               .where(CouponScopeSku.template_id.in_(ids))
                               .order_by(CouponScopeSku.sku))
        for template_id, sku in rows:
            found[template_id].append(sku)
    return found


def _brand_keys(session: Session, brand_ids: Iterable[int | None]) -> dict[int, str]:
    wanted = {b for b in brand_ids if b is not None}
    if not wanted:
        return {}
    brands: Table = Base.metadata.tables["brands"]
    rows = session.execute(select(brands.c.id, brands.c.external_id)
                           .where(brands.c.id.in_(sorted(wanted))))
    return {int(i): str(k) for i, k in rows}


def _outs(session: Session, rows: Sequence[CouponTemplate]) -> list[TemplateOut]:
    skus = _scope_skus(session, (row.id for row in rows if row.scope == "skus"))
    brands = _brand_keys(session, (row.brand_id for row in rows))
    return [TemplateOut(
        code=row.code, name=row.name, description=row.description, kind=row.kind,
        amount_off_fen=row.amount_off_fen, percent_off=row.percent_off,
        max_off_fen=row.max_off_fen, min_subtotal_fen=row.min_subtotal_fen,
        starts_at=row.starts_at, ends_at=row.ends_at, scope=row.scope,
        brand_external_id=brands.get(row.brand_id) if row.brand_id is not None else None,
        skus=skus.get(row.id, []), per_customer_limit=row.per_customer_limit,
        total_quantity=row.total_quantity, issued_count=row.issued_count,
        budget_fen=row.budget_fen, granted_fen=row.granted_fen, created_at=row.created_at,
        created_by=row.created_by) for row in rows]


def _face_value(data: TemplateIn) -> int | None:
    """The most one redemption can take off (None: unbounded, a percent without cap)."""
    return data.max_off_fen if data.kind == "percent" else data.amount_off_fen


def template_errors(session: Session, clock: Clock, data: TemplateIn) -> list[ValidationFailed]:
    """Every rule ``data`` breaks, one error per field (empty: the template is sound)."""
    errors: list[ValidationFailed] = []

    def bad(code: str, detail: str, attr: str) -> None:
        if all(e.attr != attr for e in errors):
            errors.append(ValidationFailed(code, detail, attr))

    if data.kind == "percent":
        if data.percent_off is None:
            bad("percent_required", "a percent coupon needs the percent off (1 to 99)",
                "percent_off")
        if data.amount_off_fen is not None:
            bad("amount_not_allowed", "a percent coupon takes a percent, not an amount",
                "amount_off_fen")
    else:
        if data.amount_off_fen is None:
            bad("amount_required", "give the amount off in fen", "amount_off_fen")
        if data.percent_off is not None:
            bad("percent_not_allowed", f"a {data.kind} coupon takes an amount, not a percent",
                "percent_off")
        if data.max_off_fen is not None:
            bad("cap_not_allowed", "only percent coupons have a cap", "max_off_fen")
    if data.kind == "fixed" and data.min_subtotal_fen:
        bad("minimum_not_allowed", "a fixed coupon has no minimum; make it a threshold "
            "(满减) coupon", "min_subtotal_fen")
    if data.kind == "threshold" and data.amount_off_fen is not None \
            and data.min_subtotal_fen <= data.amount_off_fen:
        bad("threshold_too_low", "the threshold must be above the amount off",
            "min_subtotal_fen")
    if data.ends_at <= data.starts_at:
        bad("window_order", "the end must be after the start", "ends_at")
    elif data.ends_at <= clock.now():
        bad("window_ended", "the end is already past", "ends_at")
    if data.scope == "brand":
        if data.brand_external_id is None:
            bad("brand_required", "name the brand the coupon applies to", "brand_external_id")
        elif not brand_ids_by_key(session, [data.brand_external_id]):
            bad("unknown_brand", f"no brand {data.brand_external_id!r}", "brand_external_id")
    elif data.brand_external_id is not None:
        bad("brand_not_allowed", "only a brand-scoped coupon names a brand",
            "brand_external_id")
    if data.scope == "skus":
        repeated = sorted({s for s in data.skus if data.skus.count(s) > 1})
        unknown = sorted(set(data.skus) - set(product_brands(session, data.skus)))
        if not data.skus:
            bad("skus_required", "list the SKUs the coupon applies to", "skus")
        elif repeated:
            bad("skus_repeated", f"each SKU once; repeated: {', '.join(repeated)}", "skus")
        elif unknown:
            bad("unknown_sku", f"no product {', '.join(unknown[:5])}", "skus")
    elif data.skus:
        bad("skus_not_allowed", "only a SKU-scoped coupon lists SKUs", "skus")
    face = _face_value(data)
    if face is not None and data.budget_fen < face:
        bad("budget_below_face_value", f"the budget ({data.budget_fen} fen) is below one "
            f"coupon's most ({face} fen)", "budget_fen")
    if session.scalar(select(CouponTemplate.id).where(CouponTemplate.code == data.code)):
        errors.insert(0, ValidationFailed("template_exists",
                                          f"a template {data.code!r} exists", "code"))
    return errors


def create_template(session: Session, clock: Clock, data: TemplateIn, *,
                    principal: Principal = CLI_PRINCIPAL) -> TemplateOut:
    """Save a template; the first broken rule is raised (``template_exists`` as a
    conflict), and nothing is written."""
    errors = template_errors(session, clock, data)
    if errors:
        first = errors[0]
        if first.code == "template_exists":
            raise Conflict(first.code, first.detail, first.attr)
        raise first
    brand_id = brand_ids_by_key(session, [data.brand_external_id])[data.brand_external_id] \
        if data.brand_external_id else None
    row = CouponTemplate(
        code=data.code, name=data.name, description=data.description, kind=data.kind,
        amount_off_fen=data.amount_off_fen, percent_off=data.percent_off,
        max_off_fen=data.max_off_fen, min_subtotal_fen=data.min_subtotal_fen,
        starts_at=data.starts_at, ends_at=data.ends_at, scope=data.scope, brand_id=brand_id,
        per_customer_limit=data.per_customer_limit, total_quantity=data.total_quantity,
        issued_count=0, budget_fen=data.budget_fen, granted_fen=0, created_at=clock.now(),
        created_by=principal.name[:64])
    with session.begin_nested():
        session.add(row)
        session.flush()
        session.add_all(CouponScopeSku(template_id=row.id, sku=sku) for sku in data.skus)
        session.flush()
    return _outs(session, [row])[0]


def get_template(session: Session, code: str) -> TemplateOut:
    return _outs(session, [_template(session, code)])[0]


def list_templates(session: Session) -> list[TemplateOut]:
    """Every template, newest first."""
    rows = list(session.scalars(select(CouponTemplate)
                                .order_by(CouponTemplate.created_at.desc(),
                                          CouponTemplate.id.desc())))
    return _outs(session, rows)


# --- figures ------------------------------------------------------------------------------


def _figures(session: Session, rows: Sequence[CouponTemplate]) -> dict[int, FiguresOut]:
    ids = [row.id for row in rows]
    if not ids:
        return {}
    r = CouponRedemption
    active = r.state == "active"
    paid = and_(active, r.order_status.in_(PAID_STATUSES))
    found = {row.template_id: row for row in session.execute(
        select(r.template_id,
               func.count().filter(active).label("redeemed"),
               func.count().filter(paid).label("paid_orders"),
               func.coalesce(func.sum(r.order_total_fen).filter(paid), 0).label("gmv"),
               func.count(func.distinct(r.customer_id)).filter(active).label("redeemers"),
               func.count(func.distinct(r.customer_id)).filter(and_(active, r.first_order))
               .label("new_customers"))
        .where(r.template_id.in_(ids)).group_by(r.template_id))}
    out: dict[int, FiguresOut] = {}
    for row in rows:
        got = found.get(row.id)
        redeemed = int(got.redeemed) if got else 0
        out[row.id] = FiguresOut(
            code=row.code, issued=row.issued_count, redeemed=redeemed,
            redemption_rate=redeemed / row.issued_count if row.issued_count else None,
            granted_fen=row.granted_fen, budget_fen=row.budget_fen,
            budget_used=row.granted_fen / row.budget_fen,
            gmv_fen=int(got.gmv) if got else 0, paid_orders=int(got.paid_orders) if got else 0,
            redeemers=int(got.redeemers) if got else 0,
            new_customers=int(got.new_customers) if got else 0)
    return out


def figures(session: Session, code: str) -> FiguresOut:
    """Issued, redeemed, redemption rate, discount granted against the budget, GMV of the
    paid orders that used the template, and new customers among its redeemers."""
    row = _template(session, code)
    return _figures(session, [row])[row.id]


def list_figures(session: Session) -> list[TemplateDetail]:
    """Every template with its figures, newest first."""
    rows = list(session.scalars(select(CouponTemplate)
                                .order_by(CouponTemplate.created_at.desc(),
                                          CouponTemplate.id.desc())))
    found = _figures(session, rows)
    return [TemplateDetail(template=out, figures=found[row.id])
            for row, out in zip(rows, _outs(session, rows), strict=True)]


def template_detail(session: Session, code: str) -> TemplateDetail:
    row = _template(session, code)
    return TemplateDetail(template=_outs(session, [row])[0],
                          figures=_figures(session, [row])[row.id])


# --- issuance -----------------------------------------------------------------------------


def _lock(session: Session, template_id: int) -> CouponTemplate:
    """The template row, locked until the transaction ends."""
    where = CouponTemplate.id == template_id
    query = select(CouponTemplate).where(where).execution_options(populate_existing=True)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    else:  # SQLite: take the database write lock before reading the counters
        session.execute(update(CouponTemplate).where(where)
                        .values(issued_count=CouponTemplate.issued_count)
                        .execution_options(synchronize_session=False))
    row = session.scalar(query)
    assert row is not None
    return row


def recipients(services: Services, principal: Principal, data: IssueIn) -> tuple[str, list[str]]:
    """``(source, customer external ids)`` of an issuance: the pasted list (repeats
    dropped, order kept) or the members of a saved segment at its last refresh."""
    if (data.segment_id is None) == (data.customer_external_ids is None):
        raise ValidationFailed("one_source", "give either a segment or a list of customers",
                               "segment_id")
    if data.customer_external_ids is not None:
        keys = list(dict.fromkeys(data.customer_external_ids))
        if not keys:
            raise ValidationFailed("no_customers", "the list of customers is empty",
                                   "customer_external_ids")
        return "list", keys
    assert data.segment_id is not None
    segment = segments.get_segment(services, principal, data.segment_id)
    keys = []
    after: str | None = None
    while True:
        page = segments.members(services, principal, data.segment_id, after=after,
                                limit=SEGMENT_PAGE)
        keys.extend(page.items)
        if len(keys) > MAX_RECIPIENTS:
            raise ValidationFailed("too_many_customers", f"the segment has more than "
                                   f"{MAX_RECIPIENTS} members", "segment_id")
        if page.next_after is None:
            break
        after = page.next_after
    if not keys:
        raise ValidationFailed("segment_empty", f"segment {segment.key!r} has no members",
                               "segment_id")
    return f"segment:{segment.key}"[:120], keys


def _new_codes(session: Session, count: int, rng: random.Random) -> list[str]:
    codes: list[str] = []
    while len(codes) < count:
        fresh = {"".join(rng.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
                 for _ in range(count - len(codes))} - set(codes)
        taken = set(lookup(session, Coupon.code, Coupon.code, fresh))
        codes.extend(sorted(fresh - taken))
    return codes


def issue(session: Session, clock: Clock, template_code: str, batch_key: str,
          customer_keys: Sequence[str], *, source: str = "list",
          principal: Principal = CLI_PRINCIPAL, rng: random.Random | None = None) -> IssueOut:
    """Give each customer one coupon of the template under ``batch_key``, in order, as far
    as the per-customer limit and the total quantity allow; the others are skipped with
    the reason. The same batch again issues nothing new (``already_issued``)."""
    now = clock.now()
    template = _lock(session, _template(session, template_code).id)
    if now >= template.ends_at:
        raise Conflict("template_ended", f"template {template.code!r} ended", "code")
    keys = list(dict.fromkeys(customer_keys))
    ids = customer_ids_by_key(session, keys)
    held: dict[int, int] = defaultdict(int)
    in_batch: dict[int, str] = {}
    wanted = sorted(set(ids.values()))
    for start in range(0, len(wanted), 5_000):
        part = wanted[start:start + 5_000]
        for customer_id, batch, code in session.execute(
                select(Coupon.customer_id, Coupon.batch_key, Coupon.code)
                .where(Coupon.template_id == template.id, Coupon.customer_id.in_(part))):
            held[customer_id] += 1
            if batch == batch_key:
                in_batch[customer_id] = code
    left = template.total_quantity - template.issued_count
    chosen: list[tuple[str, int]] = []
    skipped: list[Skipped] = []
    codes: dict[str, str] = {}
    for key in keys:
        customer_id = ids.get(key)
        if customer_id is None:
            skipped.append(Skipped(customer_external_id=key, reason="unknown_customer"))
        elif customer_id in in_batch:
            codes[key] = in_batch[customer_id]
            skipped.append(Skipped(customer_external_id=key, reason="already_issued"))
        elif held[customer_id] >= template.per_customer_limit:
            skipped.append(Skipped(customer_external_id=key, reason="limit_reached"))
        elif len(chosen) >= left:
            skipped.append(Skipped(customer_external_id=key, reason="sold_out"))
        else:
            chosen.append((key, customer_id))
    fresh = _new_codes(session, len(chosen), rng or secrets.SystemRandom())
    session.add_all(Coupon(code=code, template_id=template.id, customer_id=customer_id,
                           batch_key=batch_key, status="issued", issued_at=now)
                    for (_key, customer_id), code in zip(chosen, fresh, strict=True))
    codes.update({key: code for (key, _id), code in zip(chosen, fresh, strict=True)})
    template.issued_count += len(chosen)
    batch = session.scalar(select(CouponBatch).where(CouponBatch.template_id == template.id,
                                                     CouponBatch.batch_key == batch_key))
    if batch is None:
        session.add(CouponBatch(template_id=template.id, batch_key=batch_key,
                                source=source[:120], requested=len(keys), issued=len(chosen),
                                created_at=now, created_by=principal.name[:64]))
    else:
        batch.requested = max(batch.requested, len(keys))
        batch.issued += len(chosen)
    session.flush()
    return IssueOut(template_code=template.code, batch_key=batch_key, requested=len(keys),
                    issued=[key for key, _id in chosen], codes=codes, skipped=skipped)


def batches(session: Session, code: str) -> list[BatchOut]:
    """The template's issue batches, newest first."""
    template = _template(session, code)
    rows = session.scalars(select(CouponBatch).where(CouponBatch.template_id == template.id)
                           .order_by(CouponBatch.created_at.desc(), CouponBatch.id.desc()))
    return [BatchOut(batch_key=b.batch_key, source=b.source, requested=b.requested,
                     issued=b.issued, created_at=b.created_at, created_by=b.created_by)
            for b in rows]


def customer_coupons(session: Session, clock: Clock, customer_key: str) -> list[CouponOut]:
    """The customer's coupons, newest first: ``issued`` (usable in the window),
    ``used``, or ``expired`` (issued, window over)."""
    customer_id = customer_ids_by_key(session, [customer_key]).get(customer_key)
    if customer_id is None:
        raise NotFound("customer_not_found", f"no customer {customer_key!r}",
                       "customer_external_id")
    now = clock.now()
    rows = session.execute(
        select(Coupon, CouponTemplate.code, CouponTemplate.name, CouponTemplate.starts_at,
               CouponTemplate.ends_at)
        .join(CouponTemplate, CouponTemplate.id == Coupon.template_id)
        .where(Coupon.customer_id == customer_id)
        .order_by(Coupon.issued_at.desc(), Coupon.id.desc())).all()
    orders = _order_keys(session, (row[0].order_id for row in rows))
    return [CouponOut(
        code=c.code, template_code=t_code, template_name=t_name,
        customer_external_id=customer_key, batch_key=c.batch_key,
        state="used" if c.status == "used" else ("expired" if now >= ends else "issued"),
        issued_at=c.issued_at, used_at=c.used_at,
        order_external_id=orders.get(c.order_id) if c.order_id is not None else None,
        starts_at=starts, ends_at=ends) for c, t_code, t_name, starts, ends in rows]


def _order_keys(session: Session, order_ids: Iterable[int | None]) -> dict[int, str]:
    wanted = {i for i in order_ids if i is not None}
    if not wanted:
        return {}
    return dict(session.execute(
        select(CouponRedemption.order_id, CouponRedemption.order_external_id)
        .where(CouponRedemption.order_id.in_(sorted(wanted)))).tuples().all())


# --- pricing ------------------------------------------------------------------------------


def discount_for(template: TemplateOut | CouponTemplate, eligible_fen: int) -> int:
    """The discount on ``eligible_fen`` of in-scope goods (0: the coupon does not apply).

    fixed: the amount, at most the eligible subtotal; percent: the share rounded down,
    at most the cap; threshold: the amount once the eligible subtotal reaches the
    threshold.
    """
    if eligible_fen <= 0 or eligible_fen < template.min_subtotal_fen:
        return 0
    if template.kind == "percent":
        assert template.percent_off is not None
        off = eligible_fen * template.percent_off // 100
        return min(off, template.max_off_fen) if template.max_off_fen is not None else off
    assert template.amount_off_fen is not None
    return min(template.amount_off_fen, eligible_fen)


def _usable(session: Session, now: datetime, coupon_code: str, customer_key: str
            ) -> tuple[Coupon, CouponTemplate, int]:
    """The coupon, its template and the customer's id, if the customer may use it now."""
    customer_id = customer_ids_by_key(session, [customer_key]).get(customer_key)
    if customer_id is None:
        raise NotFound("customer_not_found", f"no customer {customer_key!r}",
                       "customer_external_id")
    coupon = session.scalar(select(Coupon).where(Coupon.code == coupon_code)
                            .execution_options(populate_existing=True))
    if coupon is None:
        raise NotFound("coupon_not_found", f"no coupon {coupon_code!r}", "coupon_code")
    if coupon.customer_id != customer_id:
        raise ValidationFailed("coupon_not_owned", f"coupon {coupon_code!r} belongs to "
                               "another customer", "coupon_code")
    if coupon.status == "used":
        raise Conflict("coupon_used", f"coupon {coupon_code!r} was used on another order",
                       "coupon_code")
    template = session.get(CouponTemplate, coupon.template_id,
                           populate_existing=True)
    assert template is not None
    if now < template.starts_at:
        raise Conflict("coupon_not_started", f"coupon {coupon_code!r} can be used from "
                       f"{template.starts_at.isoformat()}", "coupon_code")
    if now >= template.ends_at:
        raise Conflict("coupon_expired", f"coupon {coupon_code!r} expired at "
                       f"{template.ends_at.isoformat()}", "coupon_code")
    return coupon, template, customer_id


def _price(session: Session, template: CouponTemplate, lines: Sequence[LineIn]
           ) -> tuple[dict[str, int], int, int, int]:
    """``(unit price by SKU, subtotal, eligible subtotal, discount)``; refuses lines the
    coupon cannot take anything off."""
    skus = [line.sku for line in lines]
    repeated = sorted({s for s in skus if skus.count(s) > 1})
    if repeated:
        raise ValidationFailed("sku_repeated", f"each SKU once per order; repeated: "
                               f"{', '.join(repeated)}", "lines")
    scope = set(_scope_skus(session, [template.id]).get(template.id, [])) \
        if template.scope == "skus" else set()
    prices: dict[str, int] = {}
    subtotal = eligible = 0
    for line in lines:
        try:
            product = get_product(session, CLI_PRINCIPAL, line.sku)
        except NotFound as exc:
            raise ValidationFailed("unknown_sku", f"no product {line.sku!r}",
                                   "lines.sku") from exc
        prices[line.sku] = product.price_fen
        amount = product.price_fen * line.quantity
        subtotal += amount
        if template.scope == "all" or (template.scope == "brand"
                                       and product.brand_id == template.brand_id) \
                or (template.scope == "skus" and line.sku in scope):
            eligible += amount
    if eligible == 0:
        raise ValidationFailed("not_in_scope", "no line of the order is in the coupon's "
                               "scope", "lines")
    if eligible < template.min_subtotal_fen:
        raise ValidationFailed("below_threshold", f"the coupon needs "
                               f"{template.min_subtotal_fen} fen of goods in its scope; the "
                               f"order has {eligible}", "lines")
    discount = discount_for(template, eligible)
    if discount == 0:
        raise ValidationFailed("no_discount", "the coupon takes nothing off these lines",
                               "lines")
    return prices, subtotal, eligible, discount


def quote(session: Session, clock: Clock, data: QuoteIn) -> QuoteOut:
    """What the coupon takes off these lines now, without using it (the same checks as
    checkout, the budget included, but nothing is locked or written)."""
    _coupon, template, _customer = _usable(session, clock.now(), data.coupon_code,
                                           data.customer_external_id)
    _prices, subtotal, eligible, discount = _price(session, template, data.lines)
    if template.granted_fen + discount > template.budget_fen:
        raise Conflict("budget_exhausted", f"template {template.code!r} has "
                       f"{template.budget_fen - template.granted_fen} fen of budget left",
                       "coupon_code")
    return QuoteOut(coupon_code=data.coupon_code, template_code=template.code,
                    kind=template.kind, subtotal_fen=subtotal, eligible_fen=eligible,
                    discount_fen=discount, total_fen=subtotal - discount)


# --- checkout -----------------------------------------------------------------------------


def _same_lines(order_lines: Iterable[Any], lines: Sequence[LineIn]) -> bool:
    return sorted((line.sku, line.quantity) for line in order_lines) == \
        sorted((line.sku, line.quantity) for line in lines)


def _replay(session: Session, data: CheckoutIn) -> CheckoutOut | None:
    """The earlier checkout of this order number, if the same request made it."""
    found = session.execute(
        select(CouponRedemption, Coupon.code, CouponTemplate.code)
        .join(Coupon, Coupon.id == CouponRedemption.coupon_id)
        .join(CouponTemplate, CouponTemplate.id == CouponRedemption.template_id)
        .where(CouponRedemption.order_external_id == data.order_external_id)
        .execution_options(populate_existing=True)).first()
    if found is None:
        return None
    redemption, coupon_code, template_code = found
    order = get_order(session, CLI_PRINCIPAL, data.order_external_id)
    if coupon_code != data.coupon_code \
            or order.customer_external_id != data.customer_external_id \
            or not _same_lines(order.lines, data.lines):
        raise Conflict("order_exists", f"order {data.order_external_id!r} exists with other "
                       "content", "order_external_id")
    return CheckoutOut(order=order, coupon_code=coupon_code, template_code=template_code,
                       discount_fen=redemption.discount_fen, replayed=True)


def checkout(session: Session, clock: Clock, data: CheckoutIn) -> CheckoutOut:
    """Create the order with the coupon's discount and use the coupon, together.

    Posting the same checkout again returns the same order and discount (``replayed``);
    the coupon on another order is ``coupon_used``; a discount the budget cannot cover is
    ``budget_exhausted``. A refusal leaves no order, no stock taken, no coupon used.
    """
    replay = _replay(session, data)
    if replay is not None:
        return replay
    try:
        return _checkout(session, clock, data)
    except Conflict as exc:
        # A twin of this request may have committed between the replay check and the
        # coupon's use: then this is a replay, not a second use.
        if exc.code != "coupon_used":
            raise
        replay = _replay(session, data)
        if replay is None:
            raise
        return replay


def _checkout(session: Session, clock: Clock, data: CheckoutIn) -> CheckoutOut:
    now = clock.now()
    twin = False
    with session.begin_nested():
        coupon, template, customer_id = _usable(session, now, data.coupon_code,
                                                data.customer_external_id)
        prices, subtotal, eligible, discount = _price(session, template, data.lines)
        first = list_orders(session, CLI_PRINCIPAL, customer=data.customer_external_id,
                            limit=1).total == 0
        order, created = create_order(session, clock, OrderIn(
            external_id=data.order_external_id,
            customer_external_id=data.customer_external_id, lines=data.lines,
            channel=data.channel, discount_fen=discount, coupon_code=data.coupon_code,
            device_external_id=data.device_external_id,
            shipping_address=data.shipping_address, payment_account=data.payment_account))
        if not created:
            twin = True  # a twin of this request filed the order first: answer as it did
        else:
            if any(line.unit_price_fen != prices[line.sku] for line in order.lines):
                raise Conflict("price_changed", "a price changed during checkout; quote again",
                               "lines")
            granted = session.execute(
                update(CouponTemplate)
                .where(CouponTemplate.id == template.id,
                       CouponTemplate.granted_fen + discount <= CouponTemplate.budget_fen)
                .values(granted_fen=CouponTemplate.granted_fen + discount)
                .execution_options(synchronize_session=False))
            if granted.rowcount == 0:  # type: ignore[attr-defined]
                raise Conflict("budget_exhausted", f"template {template.code!r} has not "
                               f"{discount} fen of budget left", "coupon_code")
            used = session.execute(
                update(Coupon).where(Coupon.id == coupon.id, Coupon.status == "issued")
                .values(status="used", order_id=order.id, used_at=now)
                .execution_options(synchronize_session=False))
            if used.rowcount == 0:  # type: ignore[attr-defined]
                raise Conflict("coupon_used", f"coupon {data.coupon_code!r} was used on "
                               "another order", "coupon_code")
            session.add(CouponRedemption(
                coupon_id=coupon.id, template_id=template.id, customer_id=customer_id,
                order_id=order.id, order_external_id=order.external_id,
                subtotal_fen=subtotal, eligible_fen=eligible, discount_fen=discount,
                order_total_fen=subtotal - discount, order_status=order.status,
                first_order=first, state="active", created_at=now))
            session.flush()
    if twin:
        replay = _replay(session, data)
        if replay is None:
            raise Conflict("order_exists", f"order {data.order_external_id!r} exists without "
                           "this coupon", "order_external_id")
        return replay
    return CheckoutOut(order=order, coupon_code=data.coupon_code, template_code=template.code,
                       discount_fen=discount, replayed=False)


def _on_order(session: Session, clock: Clock, moved: OrderTransition) -> None:
    """Follow the order's status; a cancelled order gives its coupon and discount back
    (once: the redemption's ``active → released`` is a conditional UPDATE)."""
    r = CouponRedemption
    if moved.to_status != "cancelled":
        session.execute(update(r).where(r.order_id == moved.order_id)
                        .values(order_status=moved.to_status)
                        .execution_options(synchronize_session=False))
        return
    released = session.execute(
        update(r).where(r.order_id == moved.order_id, r.state == "active")
        .values(state="released", released_at=moved.at, order_status=moved.to_status)
        .returning(r.coupon_id, r.template_id, r.discount_fen)
        .execution_options(synchronize_session=False)).first()
    if released is None:
        return
    coupon_id, template_id, discount = released
    session.execute(update(CouponTemplate).where(CouponTemplate.id == template_id)
                    .values(granted_fen=CouponTemplate.granted_fen - discount)
                    .execution_options(synchronize_session=False))
    session.execute(update(Coupon).where(Coupon.id == coupon_id,
                                         Coupon.order_id == moved.order_id)
                    .values(status="issued", order_id=None, used_at=None)
                    .execution_options(synchronize_session=False))


on_transition("campaigns.coupons", _on_order)


def redemptions(session: Session, code: str, *, limit: int = REDEMPTIONS_SHOWN
                ) -> list[RedemptionOut]:
    """The template's redemptions, newest first."""
    template = _template(session, code)
    rows = session.execute(
        select(CouponRedemption, Coupon.code)
        .join(Coupon, Coupon.id == CouponRedemption.coupon_id)
        .where(CouponRedemption.template_id == template.id)
        .order_by(CouponRedemption.created_at.desc(), CouponRedemption.id.desc())
        .limit(limit)).all()
    keys = customer_keys_by_id(session, (row[0].customer_id for row in rows))
    return [RedemptionOut(
        coupon_code=code, customer_external_id=keys[r.customer_id],
        order_external_id=r.order_external_id, subtotal_fen=r.subtotal_fen,
        eligible_fen=r.eligible_fen, discount_fen=r.discount_fen,
        order_total_fen=r.order_total_fen, order_status=r.order_status,
        first_order=r.first_order, state=r.state,
        created_at=r.created_at, released_at=r.released_at) for r, code in rows]


# --- invariants ---------------------------------------------------------------------------


def _count(session: Session, query: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)


def invariant_violations(session: Session) -> dict[str, int]:
    """Counts of states that must never exist (all zero in a sound store): a coupon used
    twice, an order with two coupons, granted above budget or disagreeing with the
    redemptions, issued above quantity or limit, redemptions that disagree with the
    coupon's status or with their order."""
    r, c, t = CouponRedemption, Coupon, CouponTemplate
    orders: Table = Base.metadata.tables["orders"]
    active = r.state == "active"
    granted = select(r.template_id, func.sum(r.discount_fen).label("fen")) \
        .where(active).group_by(r.template_id).subquery()
    held = select(c.template_id, c.customer_id, func.count().label("n")) \
        .group_by(c.template_id, c.customer_id).subquery()
    counted = select(c.template_id, func.count().label("n")).group_by(c.template_id).subquery()
    return {
        "coupon_used_twice": _count(session, select(r.coupon_id).where(active)
                                    .group_by(r.coupon_id).having(func.count() > 1)),
        "order_with_two_coupons": _count(session, select(r.order_id).group_by(r.order_id)
                                         .having(func.count() > 1)),
        "granted_over_budget": _count(session, select(t.id).where(t.granted_fen > t.budget_fen)),
        "granted_mismatch": _count(session, select(t.id).outerjoin(
            granted, granted.c.template_id == t.id)
            .where(t.granted_fen != func.coalesce(granted.c.fen, 0))),
        "issued_mismatch": _count(session, select(t.id).outerjoin(
            counted, counted.c.template_id == t.id)
            .where((t.issued_count != func.coalesce(counted.c.n, 0))
                   | (t.issued_count > t.total_quantity))),
        "over_customer_limit": _count(session, select(held.c.customer_id).join(
            t, t.id == held.c.template_id).where(held.c.n > t.per_customer_limit)),
        "used_without_redemption": _count(session, select(c.id).where(
            c.status == "used", ~select(r.id).where(
                r.coupon_id == c.id, r.order_id == c.order_id, active).exists())),
        "redemption_without_used_coupon": _count(session, select(r.id).join(
            c, c.id == r.coupon_id).where(active, (c.status != "used")
                                          | (c.order_id.is_(None))
                                          | (c.order_id != r.order_id))),
        "redemption_disagrees_with_order": _count(session, select(r.id).join(
            c, c.id == r.coupon_id).join(orders, orders.c.id == r.order_id).where(
            (orders.c.coupon_code.is_(None)) | (orders.c.coupon_code != c.code)
            | (orders.c.discount_fen != r.discount_fen)
            | (active & (orders.c.status == "cancelled"))
            | (~active & (orders.c.status != "cancelled")))),
    }
