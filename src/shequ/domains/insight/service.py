"""Insight use cases: refresh every buyer's value profile and tags, read them back, the
five-tier matrix and RFM group figures, and the 360° customer view (``view.py``).

A refresh reads the paid orders (orders domain), the customers (customers domain), the
behaviour (event store), the lifecycle stages and the membership tiers, runs the pure
models of ``shequ.stats.customer_value`` and the tag computation of
``shequ.analytics.tags``, then replaces ``customer_profiles`` and ``customer_tags`` in one
transaction (serialised by ``core.db.exclusive``) and copies the result into the event
store's ``dim_customers`` / ``dim_customer_tags``, where segment rules read it.
Semantics in docs/customer-value.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from shequ.analytics.rollup import local_date, local_day_bounds
from shequ.analytics.tags import compute_tags
from shequ.core.days import day_number, day_of, instants, local_days
from shequ.core.db import exclusive, transaction
from shequ.core.errors import not_found
from shequ.core.permissions import CLI_PRINCIPAL, Principal
from shequ.core.web import Services
from shequ.domains.catalog import service as catalog
from shequ.domains.customers import service as customers
from shequ.domains.events.service import event_store
from shequ.domains.insight.models import CustomerProfile, CustomerTag, ProfileRun
from shequ.domains.insight.schemas import (
    GroupFiguresOut,
    ProfileOut,
    RefreshReport,
    TagOut,
    ValueMatrixOut,
)
from shequ.domains.lifecycle import service as lifecycle
from shequ.domains.membership import service as membership
from shequ.domains.orders import service as orders
from shequ.domains.segments import service as segments
from shequ.stats.customer_value import CustomerValue, ValueConfig, customer_value
from shequ.stats.rfm import GROUPS, group_of, mid_rank_percentiles
from shequ.stats.value_tiers import TIER_CODES, TIER_NAMES, group_figures

__all__ = [
    "PRICE_LEVELS", "check_platform", "customer_tags", "data_end", "get_profile",
    "latest_run", "predicted_clv", "profile_count", "refresh", "refresh_everything",
    "value_labels", "value_matrix",
]

Progress = Callable[[str, float], None]

TAG_WINDOW_DAYS = 180
PURCHASE_WEIGHT = 5.0
# Price sensitivity: half the share of orders bought with a coupon or discount, half how
# low in its category the customer's paid prices sit; levels cut that score.
PRICE_LEVELS = (("high", 0.6), ("medium", 0.35), ("low", 0.0))
PRICE_LABELS = {"high": "高", "medium": "中", "low": "低"}


def check_platform(principal: Principal) -> None:
    """Customer insight spans every brand: partners (brand-limited callers) are refused."""
    principal.refuse_if_partner("platform_only",
                                "customer insight covers every brand; partners cannot read it")


def _zone(services: Services) -> ZoneInfo:
    return ZoneInfo(services.settings.timezone)


def data_end(services: Services) -> datetime:
    """The end of the data: the latest paid order or event, but never after now.

    Profiles and behaviour windows are measured back from here, so an imported or demo
    history is read as of its own last day rather than as of today's empty one.
    """
    now = services.clock.now()
    with services.sessions() as session:
        latest_order = orders.latest_payment(session)
    store = event_store(services)
    events = store.table("events")
    latest_event = store.to_arrow(events.ts.max()).as_py()
    found = [moment.astimezone(UTC) for moment in (latest_order, latest_event)
             if moment is not None]
    return min(now, max(found)) if found else now


def refresh(services: Services, *, as_of: date | None = None,
            config: ValueConfig | None = None,
            on_progress: Progress | None = None) -> RefreshReport:
    """Recompute every buyer's profile and every customer's tags as of ``as_of`` (default:
    the local day of :func:`data_end`), store them, and copy them to the event store."""
    started = time.perf_counter()
    step = on_progress or (lambda _label, _done: None)
    zone = _zone(services)
    as_of = as_of or local_date(data_end(services), zone)
    end = local_day_bounds(as_of, as_of, zone)[1]
    step("reading orders and customers", 0.05)
    with services.sessions() as session:
        paid = orders.purchases(session, until=end)
        attributes = customers.customer_attributes(session)
        lines = orders.purchased_lines(session, since=end - timedelta(days=TAG_WINDOW_DAYS),
                                       until=end)
        products = catalog.product_dimension(session)
        stages = lifecycle.current_stages(session)
        tiers = membership.current_tiers(session)
    step("fitting RFM, CLV and value tiers", 0.2)
    paid_days = local_days(instants(paid.paid_at), zone)
    value = customer_value(paid.customer_ids, paid_days, paid.total_fen,
                           as_of=day_number(as_of), config=config)
    step("computing tags", 0.5)
    keys = dict(zip(attributes["id"].to_pylist(), attributes["external_id"].to_pylist(),
                    strict=True))
    tags = _tags(services, end, keys, paid, lines, products)
    step("storing profiles", 0.75)
    computed_at = services.clock.now()
    models = _models(value)
    with transaction(services.sessions) as session:
        exclusive(session, "insight.refresh")
        session.execute(delete(CustomerTag))
        session.execute(delete(CustomerProfile))
        _insert_chunks(session, CustomerProfile, _profile_rows(value, as_of, computed_at))
        ids_by_key = {key: cid for cid, key in keys.items()}
        tag_rows = [
            {"customer_id": ids_by_key[key], "kind": kind, "value": tag_value,
             "score": float(score), "computed_at": computed_at}
            for key, kind, tag_value, score in zip(
                *(tags[c].to_pylist() for c in ("customer_id", "kind", "value", "score")),
                strict=True)
            if key in ids_by_key
        ]
        _insert_chunks(session, CustomerTag, tag_rows)
        session.add(ProfileRun(as_of=as_of, started_at=computed_at,
                               finished_at=services.clock.now(), customers=len(keys),
                               buyers=len(value), tags=len(tag_rows), models=models,
                               notes=list(value.notes)))
    step("copying to the event store", 0.9)
    _sync_dimensions(services, attributes, value, stages, tiers, tags)
    step("done", 1.0)
    return RefreshReport(as_of=as_of, customers=len(keys), buyers=len(value),
                         tags=len(tag_rows), models=models, notes=list(value.notes),
                         seconds=round(time.perf_counter() - started, 3))


def _models(value: CustomerValue) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if value.bgnbd is not None:
        found["bgnbd"] = {k: v for k, v in asdict(value.bgnbd).items()
                          if k in ("r", "alpha", "a", "b", "n")}
    if value.gamma_gamma is not None:
        found["gamma_gamma"] = {k: v for k, v in asdict(value.gamma_gamma).items()
                                if k in ("p", "q", "v", "n")}
    return found


def _insert_chunks(session: Session, model: Any, rows: list[dict[str, Any]],
                   chunk: int = 5_000) -> None:
    for start in range(0, len(rows), chunk):
        session.execute(insert(model), rows[start:start + chunk])


def _profile_rows(value: CustomerValue, as_of: date,
                  computed_at: datetime) -> list[dict[str, Any]]:
    clv = np.where(np.isnan(value.clv_fen), -1, np.rint(np.nan_to_num(value.clv_fen)))
    rows = []
    for i in range(len(value)):
        rows.append({
            "customer_id": int(value.customer_ids[i]), "as_of": as_of,
            "orders": int(value.orders[i]), "spend_fen": int(value.spend_fen[i]),
            "first_order_on": day_of(int(value.first_day[i])),
            "last_order_on": day_of(int(value.last_day[i])),
            "recency_days": int(value.recency_days[i]), "frequency": int(value.frequency[i]),
            "monetary_fen": int(value.monetary_fen[i]), "r_score": int(value.r_score[i]),
            "f_score": int(value.f_score[i]), "m_score": int(value.m_score[i]),
            "rfm_group": str(value.rfm_group[i]),
            "clv_fen": None if clv[i] < 0 else int(clv[i]),
            "p_alive": None if np.isnan(value.p_alive[i]) else float(value.p_alive[i]),
            "value_tier": TIER_CODES[int(value.value_tier[i]) - 1],
            "computed_at": computed_at,
        })
    return rows


def _tags(services: Services, end: datetime, keys: dict[int, str], paid: Any,
          lines: pa.Table, products: list[tuple[str, str, str | None]]) -> pa.Table:
    """Behaviour tags from the event store (with purchases as strong interactions) plus
    price sensitivity from the orders."""
    purchases = pa.table({
        "customer_id": pa.array([keys.get(c) for c in lines["customer_id"].to_pylist()],
                                pa.string()),
        "sku": lines["sku"], "ts": lines["ts"],
        "weight": pa.array(np.full(lines.num_rows, PURCHASE_WEIGHT), pa.float64()),
    }).filter(pc.is_valid(pc.field("customer_id")))
    behaviour = compute_tags(event_store(services), reference=end,
                             window_days=TAG_WINDOW_DAYS, extra_interactions=purchases)
    price = _price_sensitivity(keys, paid, lines, products, since=end - timedelta(days=365))
    return pa.concat_tables([behaviour.select(["customer_id", "kind", "value", "score"])
                             .cast(price.schema), price])


def _price_sensitivity(keys: dict[int, str], paid: Any, lines: pa.Table,
                       products: list[tuple[str, str, str | None]], *,
                       since: datetime) -> pa.Table:
    """``price_sensitivity`` tag per buyer: 0.5 × share of the last year's orders with a
    coupon or discount + 0.5 × (1 − mean percentile of the customer's paid unit prices
    among all paid lines of the same category, recent 180 days), cut into three levels."""
    recent = paid.paid_at >= np.datetime64(since.astimezone(UTC).replace(tzinfo=None), "us")
    customer = paid.customer_ids[recent]
    deal = (paid.with_coupon | (paid.discount_fen > 0))[recent]
    buyers, index = np.unique(customer, return_inverse=True)
    deal_share = (np.bincount(index, weights=deal, minlength=len(buyers))
                  / np.maximum(np.bincount(index, minlength=len(buyers)), 1))
    position = np.full(len(buyers), 0.5)
    if lines.num_rows:
        category = {sku: cat or "" for sku, _brand, cat in products}
        line_cat = np.array([category.get(s, "") for s in lines["sku"].to_pylist()])
        price = lines["unit_price_fen"].to_numpy().astype(np.float64)
        percentile = np.zeros(len(price))
        for name in np.unique(line_cat):
            members = line_cat == name
            percentile[members] = mid_rank_percentiles(price[members])
        slot, known = _positions(buyers, lines["customer_id"].to_numpy())
        weight = lines["quantity"].to_numpy().astype(np.float64)
        sums = np.bincount(slot[known], weights=(percentile * weight)[known],
                           minlength=len(buyers))
        totals = np.bincount(slot[known], weights=weight[known], minlength=len(buyers))
        position = np.where(totals > 0, sums / np.maximum(totals, 1e-12), 0.5)
    score = np.clip(0.5 * deal_share + 0.5 * (1.0 - position), 0.0, 1.0)
    level = np.select([score >= PRICE_LEVELS[0][1], score >= PRICE_LEVELS[1][1]],
                      [PRICE_LEVELS[0][0], PRICE_LEVELS[1][0]], PRICE_LEVELS[2][0])
    return pa.table({
        "customer_id": pa.array([keys.get(int(b)) for b in buyers], pa.string()),
        "kind": pa.array(["price_sensitivity"] * len(buyers), pa.string()),
        "value": pa.array(level.tolist(), pa.string()),
        "score": pa.array(np.round(score, 6), pa.float64()),
    })


def _positions(sorted_keys: NDArray[Any], wanted: NDArray[Any]
               ) -> tuple[NDArray[np.intp], NDArray[np.bool_]]:
    """Where each of ``wanted`` sits in the sorted, unique ``sorted_keys``, and whether it is
    there at all (a missing key gets some in-range slot and ``False``)."""
    if not len(sorted_keys):
        return np.zeros(len(wanted), np.intp), np.zeros(len(wanted), np.bool_)
    slot = np.minimum(np.searchsorted(sorted_keys, wanted), len(sorted_keys) - 1)
    return slot, sorted_keys[slot] == wanted


def _sync_dimensions(services: Services, attributes: pa.Table, value: CustomerValue,
                     stages: dict[int, str], tiers: dict[int, str], tags: pa.Table) -> None:
    """Replace ``dim_customers`` (every customer, with their profile when they bought; CLV
    and P(alive) null where the models were not fitted, as in ``customer_profiles``) and
    ``dim_customer_tags`` in the event store."""
    ids = attributes["id"].to_numpy()
    slot, bought = _positions(value.customer_ids, ids)

    def at(values: NDArray[Any]) -> NDArray[Any]:
        return values[slot] if len(values) else np.zeros(len(ids), values.dtype)

    def column(values: NDArray[Any], kind: pa.DataType,
               known: NDArray[np.bool_] = bought) -> pa.Array:
        return pa.array(at(values), kind, mask=~known)

    fitted = bought & ~np.isnan(at(value.clv_fen))
    store = event_store(services)
    store.replace_rows("dim_customers", pa.table({
        "customer_id": attributes["external_id"],
        "gender": attributes["gender"], "city": attributes["city"],
        "birth_year": attributes["birth_year"],
        "registered_at": attributes["registered_at"],
        "acquisition_channel": attributes["acquisition_channel"],
        "recency_days": column(value.recency_days, pa.int32()),
        "frequency": column(value.frequency, pa.int32()),
        "monetary_fen": column(value.monetary_fen, pa.int64()),
        "r_score": column(value.r_score, pa.int32()),
        "f_score": column(value.f_score, pa.int32()),
        "m_score": column(value.m_score, pa.int32()),
        "rfm_group": column(value.rfm_group, pa.string()),
        "clv_fen": column(np.rint(np.nan_to_num(value.clv_fen)).astype(np.int64), pa.int64(),
                          fitted),
        "p_alive": column(np.nan_to_num(value.p_alive), pa.float64(), fitted),
        "value_tier": column(np.array(TIER_CODES)[value.value_tier.astype(np.int64) - 1],
                             pa.string()),
        "lifecycle_stage": pa.array([stages.get(int(i)) for i in ids], pa.string()),
        "member_tier": pa.array([tiers.get(int(i)) for i in ids], pa.string()),
    }))
    store.replace_rows("dim_customer_tags", tags)


def latest_run(session: Session) -> ProfileRun | None:
    """The most recent refresh, if any."""
    return session.scalars(select(ProfileRun).order_by(ProfileRun.id.desc()).limit(1)).first()


def _profile_out(row: CustomerProfile, key: str) -> ProfileOut:
    return ProfileOut(
        customer=key, as_of=row.as_of, orders=row.orders, spend_fen=row.spend_fen,
        first_order_on=row.first_order_on, last_order_on=row.last_order_on,
        recency_days=row.recency_days, frequency=row.frequency,
        monetary_fen=row.monetary_fen, r_score=row.r_score, f_score=row.f_score,
        m_score=row.m_score, rfm_group=row.rfm_group,
        rfm_group_name=group_of(row.rfm_group).label_zh, clv_fen=row.clv_fen,
        p_alive=row.p_alive, value_tier=row.value_tier,
        value_tier_name=TIER_NAMES[row.value_tier][0],
    )


def _customer_id(session: Session, external_id: str) -> int:
    found = customers.customer_ids_by_key(session, [external_id])
    if external_id not in found:
        raise not_found("customer", external_id)
    return int(found[external_id])


def get_profile(session: Session, principal: Principal, external_id: str) -> ProfileOut | None:
    """The customer's value profile, or None when they have not bought (yet)."""
    check_platform(principal)
    customer_id = _customer_id(session, external_id)
    row = session.get(CustomerProfile, customer_id)
    return None if row is None else _profile_out(row, external_id)


def _labels(session: Session) -> dict[tuple[str, str], str]:
    """Readable names of tag values: brands and categories by key."""
    names: dict[tuple[str, str], str] = {}
    for brand in catalog.list_brands(session, CLI_PRINCIPAL):
        names[("brand_affinity", brand.external_id)] = brand.name
    for category in catalog.list_categories(session):
        names[("category_affinity", category.external_id)] = category.name
    return names


def _tag_label(kind: str, value: str, names: dict[tuple[str, str], str]) -> str:
    if kind == "price_sensitivity":
        return PRICE_LABELS.get(value, value)
    if kind == "preferred_hour":
        return f"{int(value):02d}:00" if value.isdigit() else value
    return names.get((kind, value), value)


def customer_tags(session: Session, principal: Principal, external_id: str) -> list[TagOut]:
    """The customer's profile tags, strongest first within each kind."""
    check_platform(principal)
    customer_id = _customer_id(session, external_id)
    rows = session.scalars(select(CustomerTag).where(CustomerTag.customer_id == customer_id)
                           .order_by(CustomerTag.kind, CustomerTag.score.desc(),
                                     CustomerTag.value)).all()
    names = _labels(session) if rows else {}
    return [TagOut(kind=r.kind, value=r.value, score=round(r.score, 4),
                   label=_tag_label(r.kind, r.value, names)) for r in rows]


def _figures(codes: list[str], names: dict[str, str], rows: list[tuple[str, int, int]],
             base: str) -> list[GroupFiguresOut]:
    index = {code: i for i, code in enumerate(codes)}
    groups = np.array([index[r[0]] for r in rows], dtype=np.int64)
    spend = np.array([r[1] for r in rows], dtype=np.float64)
    count = np.array([r[2] for r in rows], dtype=np.float64)
    total = max(len(rows), 1)
    out = []
    for figure in group_figures(groups, spend, count, base=index[base],
                                labels=list(range(len(codes)))):
        code = codes[figure.group]
        out.append(GroupFiguresOut(
            code=code, name=names[code], customers=figure.customers,
            share_of_customers=round(figure.customers / total, 4),
            gmv_fen=round(figure.spend),
            gmv_share=None if figure.gmv_share is None else round(figure.gmv_share, 4),
            average_spend_fen=None if figure.average_spend is None
            else round(figure.average_spend),
            spend_multiple=None if figure.spend_multiple is None
            else round(figure.spend_multiple, 2),
            repurchase_rate=None if figure.repurchase_rate is None
            else round(figure.repurchase_rate, 4),
        ))
    return out


def value_matrix(session: Session, principal: Principal) -> ValueMatrixOut:
    """The five value tiers and the eight RFM groups with their figures (spend and orders
    of the RFM window; base groups: t5 and general_retain)."""
    check_platform(principal)
    run = latest_run(session)
    tier_rows = [(t, int(s), int(f)) for t, s, f in session.execute(
        select(CustomerProfile.value_tier, CustomerProfile.monetary_fen,
               CustomerProfile.frequency))]
    group_rows = [(g, int(s), int(f)) for g, s, f in session.execute(
        select(CustomerProfile.rfm_group, CustomerProfile.monetary_fen,
               CustomerProfile.frequency))]
    tier_names = {code: TIER_NAMES[code][0] for code in TIER_CODES}
    group_names = {g.code: g.label_zh for g in GROUPS}
    return ValueMatrixOut(
        as_of=run.as_of if run else None, buyers=len(tier_rows), base=TIER_CODES[-1],
        tiers=_figures(list(TIER_CODES), tier_names, tier_rows, TIER_CODES[-1]),
        rfm_groups=_figures([g.code for g in GROUPS], group_names, group_rows,
                            "general_retain"),
        models=dict(run.models) if run else {},
    )


def value_labels(session: Session, principal: Principal,
                 customer_ids: Iterable[int]) -> dict[int, tuple[str, str]]:
    """``customer id -> (value tier, RFM group)`` of the given customers who have a profile
    (one query for a page of a list)."""
    check_platform(principal)
    return {cid: (tier, group) for cid, tier, group in session.execute(
        select(CustomerProfile.customer_id, CustomerProfile.value_tier,
               CustomerProfile.rfm_group)
        .where(CustomerProfile.customer_id.in_(sorted(set(customer_ids))))).tuples()}


def profile_count(session: Session) -> int:
    """How many buyers have a stored profile."""
    return int(session.scalar(select(func.count()).select_from(CustomerProfile)) or 0)


def predicted_clv(session: Session) -> dict[int, int]:
    """Customer id → CLV in fen of every buyer whose CLV could be fitted (for LTV per
    lifecycle stage, which the lifecycle domain reports without reaching into insight)."""
    return {cid: int(clv) for cid, clv in session.execute(
        select(CustomerProfile.customer_id, CustomerProfile.clv_fen)
        .where(CustomerProfile.clv_fen.is_not(None))).tuples() if clv is not None}


MEMBERSHIP_STEP_DAYS = 7
MEMBERSHIP_BACKFILL_DAYS = 84


def _membership_days(services: Services, as_of: date, first_day: date) -> list[date]:
    """Days to evaluate membership on so that it is current on ``as_of``: every day since
    the last evaluation, or — on a first run — weekly over the last 12 weeks of data, so
    upgrades, grace periods and downgrades of the recent past are in the history."""
    with services.sessions() as session:
        last = membership.last_evaluated_day(session)
    if last is not None:
        if last >= as_of:
            return []
        return [last + timedelta(days=n) for n in range(1, (as_of - last).days + 1)]
    start = max(first_day, as_of - timedelta(days=MEMBERSHIP_BACKFILL_DAYS))
    days = [as_of - timedelta(days=n) for n in range(0, (as_of - start).days + 1,
                                                     MEMBERSHIP_STEP_DAYS)]
    return sorted(days)


def refresh_everything(services: Services, *, as_of: date | None = None,
                       on_progress: Progress | None = None) -> RefreshReport:
    """The whole customer-intelligence chain as of ``as_of``: membership tiers, lifecycle
    stages over the data window, profiles and tags, then every saved segment — in that
    order, since each step reads the ones before it."""
    step = on_progress or (lambda _label, _done: None)
    zone = _zone(services)
    as_of = as_of or local_date(data_end(services), zone)
    notes: list[str] = []
    first_day, last_day = lifecycle.data_window(services)
    days = _membership_days(services, as_of, first_day)
    for n, day in enumerate(days):
        step(f"membership {day}", 0.3 * n / max(len(days), 1))
        membership.evaluate(services, day)
    if days:
        notes.append(f"membership evaluated on {len(days)} day(s) up to {days[-1]}")
    step("lifecycle stages", 0.3)
    last_day = min(last_day, as_of)
    # Stages of earlier days stay in the stored changes; one lifecycle refresh judges at
    # most MAX_RANGE_DAYS.
    first_day = max(first_day, last_day - timedelta(days=lifecycle.MAX_RANGE_DAYS - 1))
    stages = lifecycle.refresh(services, first_day, last_day)
    notes.append(f"lifecycle judged {stages.first_day} … {stages.last_day}: "
                 f"{stages.changes_written} changes")
    report = refresh(services, as_of=as_of,
                     on_progress=lambda label, done: step(label, 0.45 + 0.45 * done))
    step("segments", 0.92)
    summary = segments.refresh_all(services)
    notes.append(f"segments: {summary.refreshed} refreshed, {summary.unchanged} unchanged, "
                 f"{summary.failed} failed")
    step("done", 1.0)
    return report.model_copy(update={"notes": report.notes + notes})
