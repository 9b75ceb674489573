"""The behaviour the lifecycle stages are judged from, read once per refresh.

The orders, customers and content domains offer no bulk read of their rows, so this module
reads them itself, read-only, with SQLAlchemy Core over lightweight ``table()``/``column()``
constructs named after their tables (it imports none of their models). The event store is
read through ``events.service.event_store`` with ibis, persons resolved as in
:mod:`shequ.analytics.persons`. Times become whole local days (days since 1970-01-01 in
the deployment's time zone).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import ibis
import numpy as np
import pandas as pd
import pyarrow as pa
from sqlalchemy import and_, case, column, func, literal, or_, select, table
from sqlalchemy.orm import Session

from shequ.analytics.events import POST_ID_PATTERN
from shequ.analytics.persons import ANONYMOUS_PREFIX, with_person_id
from shequ.analytics.rollup import local_day_bounds, local_time
from shequ.analytics.store import EventStore
from shequ.core.days import NEVER, day_number, instants, local_days
from shequ.core.db import UTCDateTime
from shequ.stats.lifecycle import (
    IntArray,
    LifecycleConfig,
    StageFeatures,
    trailing_counts,
)

# Times are read untyped and parsed by pandas in one vectorised pass: SQLite hands back
# ISO text in UTC, PostgreSQL aware datetimes, and a per-row type conversion of a million
# stamps would cost seconds. ``_orders_typed`` is for the few aggregate reads.
_customers = table("customers", column("id"), column("external_id"), column("registered_at"),
                   column("created_at"))
_orders = table("orders", column("id"), column("customer_id"), column("total_fen"),
                column("created_at"), column("paid_at"), column("refunded_at"))
_orders_typed = table("orders", column("customer_id"), column("total_fen"),
                      column("created_at", UTCDateTime()), column("paid_at", UTCDateTime()),
                      column("refunded_at", UTCDateTime()))
_order_lines = table("order_lines", column("order_id"), column("product_id"))
_posts = table("posts", column("external_id"), column("customer_id"), column("product_id"))


def _never(count: int) -> IntArray:
    return np.full(count, NEVER, dtype=np.int64)


def _at(moment: datetime) -> Any:
    """A bound instant typed like the stored ones (naive UTC text on SQLite)."""
    return literal(moment, UTCDateTime())


@dataclass(frozen=True, slots=True)
class DatedRows:
    """Rows owned by customers (index into ``Behaviour.customer_ids``) on local days,
    counting until their ``until`` day (``NEVER``: for ever)."""

    owner: IntArray
    day: IntArray
    until: IntArray

    @classmethod
    def empty(cls) -> DatedRows:
        nothing = np.zeros(0, dtype=np.int64)
        return cls(nothing, nothing, nothing)

    def __add__(self, other: DatedRows) -> DatedRows:
        return DatedRows(np.concatenate([self.owner, other.owner]),
                         np.concatenate([self.day, other.day]),
                         np.concatenate([self.until, other.until]))


@dataclass(frozen=True, slots=True)
class Behaviour:
    """Everything the stage rules read, for every customer (sorted ids)."""

    customer_ids: IntArray
    registered_day: IntArray
    activity: DatedRows
    paid: DatedRows
    conversions: DatedRows

    def features_on(self, day: int, config: LifecycleConfig) -> StageFeatures:
        """The :class:`StageFeatures` of local day number ``day``."""
        population = len(self.customer_ids)
        return StageFeatures(
            days_since_registration=day - self.registered_day,
            activity=trailing_counts(self.activity.owner, self.activity.day, day,
                                     config.engaged_days, population),
            paid_orders=trailing_counts(self.paid.owner, self.paid.day, day,
                                        config.paying_days, population, self.paid.until),
            conversions=trailing_counts(self.conversions.owner, self.conversions.day, day,
                                        config.advocate_days, population,
                                        self.conversions.until),
        )


def _positions(ids: IntArray, wanted: Iterable[Any]) -> IntArray:
    """Index of each wanted id in the sorted ``ids`` (-1 when unknown)."""
    values = np.asarray(list(wanted), dtype=np.int64)
    if len(ids) == 0:
        return np.full(len(values), -1, dtype=np.int64)
    found = np.minimum(np.searchsorted(ids, values), len(ids) - 1)
    return np.where(ids[found] == values, found, -1).astype(np.int64)


def _read_customers(session: Session, zone: ZoneInfo) -> tuple[IntArray, IntArray, list[str]]:
    c = _customers.c
    frame = pd.DataFrame(session.execute(
        select(c.id, c.external_id, c.registered_at, c.created_at).order_by(c.id)).all(),
        columns=["id", "external_id", "registered_at", "created_at"])
    # A customer imported without a registration time counts from its creation.
    registered = instants(frame["registered_at"]).fillna(instants(frame["created_at"]))
    return (frame["id"].to_numpy(np.int64), local_days(registered, zone),
            frame["external_id"].tolist())


@dataclass(frozen=True, slots=True)
class _PaidOrders:
    order_id: IntArray
    rows: DatedRows
    paid_at: pd.Series


def _read_orders(session: Session, ids: IntArray, since: datetime, until: datetime,
                 zone: ZoneInfo) -> tuple[DatedRows, _PaidOrders]:
    """Order creation days (activity) and paid orders with their refund days."""
    o = _orders.c
    frame = pd.DataFrame(session.execute(
        select(o.id, o.customer_id, o.created_at, o.paid_at, o.refunded_at)
        .where(o.created_at < _at(until), or_(o.created_at >= _at(since),
                                              o.paid_at >= _at(since)))
        .order_by(o.id)).all(), columns=["id", "customer_id", "created_at", "paid_at",
                                          "refunded_at"])
    owner = _positions(ids, frame["customer_id"])
    made = DatedRows(owner, local_days(instants(frame["created_at"]), zone),
                     _never(len(frame)))
    paid_at = instants(frame["paid_at"])
    is_paid = (paid_at.notna() & (paid_at >= since) & (paid_at < until)).to_numpy()
    paid_at = paid_at[is_paid].reset_index(drop=True)
    paid = DatedRows(owner[is_paid], local_days(paid_at, zone),
                     local_days(instants(frame["refunded_at"][is_paid]), zone))
    return made, _PaidOrders(frame["id"].to_numpy(np.int64)[is_paid], paid, paid_at)


def _arrow_positions(keys: list[str], values: pa.ChunkedArray | pa.Array) -> IntArray:
    """Index of each external id in ``keys`` (-1 when it is not a known customer)."""
    found = pd.Index(keys).get_indexer(pd.Series(values.to_pylist(), dtype="object"))
    return np.asarray(found, dtype=np.int64)


def _known_events(store: EventStore, start: datetime, end: datetime) -> ibis.Table:
    events = store.table("events")
    window = events.filter(events.ts >= start, events.ts < end)
    persons = with_person_id(store, window)
    return persons.filter(~persons.person_id.startswith(ANONYMOUS_PREFIX))


def _read_activity(store: EventStore, keys: list[str], start: datetime, end: datetime,
                   zone: ZoneInfo) -> DatedRows:
    """One row per (customer, local day) with any event."""
    known = _known_events(store, start, end)
    daily = known.select(person_id=known.person_id,
                         day=local_time(zone.key, known.ts).date()).distinct()
    found = store.to_arrow(daily)
    owner = _arrow_positions(keys, found["person_id"])
    days = found["day"].to_numpy().astype("datetime64[D]").astype(np.int64)
    keep = owner >= 0
    return DatedRows(owner[keep], days[keep], _never(int(keep.sum())))


def _read_conversions(session: Session, store: EventStore, ids: IntArray, keys: list[str],
                      paid: _PaidOrders, start: datetime, end: datetime,
                      config: LifecycleConfig) -> DatedRows:
    """One row per (post, paid order) where a viewer of the post other than its author
    paid an order holding the post's product within ``conversion_days`` of viewing it;
    owned by the author, dated on the payment day, counting until a refund."""
    known = _known_events(store, start, end)
    views = known.filter(known.name == "post_view")
    views = views.select(person_id=views.person_id, ts=views.ts,
                         post=views.properties.re_extract(POST_ID_PATTERN, 1))
    found = store.to_arrow(views)
    if found.num_rows == 0 or len(paid.order_id) == 0:
        return DatedRows.empty()
    posts = session.execute(select(_posts.c.external_id, _posts.c.customer_id,
                                   _posts.c.product_id)
                            .where(_posts.c.product_id.is_not(None))).all()
    post_frame = pd.DataFrame(posts, columns=["post", "author_id", "product_id"])
    post_frame["author"] = _positions(ids, post_frame["author_id"])
    view_frame = pd.DataFrame({
        "viewer": _arrow_positions(keys, found["person_id"]),
        "post": found["post"].to_pylist(),
        "viewed_at": pd.to_datetime(found["ts"].to_pandas(), utc=True),
    })
    view_frame = view_frame.merge(post_frame[["post", "author", "product_id"]], on="post")
    view_frame = view_frame[(view_frame.viewer >= 0) & (view_frame.author >= 0)
                            & (view_frame.viewer != view_frame.author)]
    lines = _paid_lines(session, paid)
    joined = view_frame.merge(lines, left_on=["viewer", "product_id"],
                              right_on=["buyer", "product_id"])
    reach = pd.Timedelta(days=config.conversion_days)
    joined = joined[(joined.paid_at >= joined.viewed_at)
                    & (joined.paid_at <= joined.viewed_at + reach)]
    joined = joined.drop_duplicates(["post", "order_id"])
    return DatedRows(joined["author"].to_numpy(np.int64), joined["day"].to_numpy(np.int64),
                     joined["until"].to_numpy(np.int64))


def _paid_lines(session: Session, paid: _PaidOrders) -> pd.DataFrame:
    """(order, product) of the paid orders, with buyer, payment time and days."""
    orders = pd.DataFrame({"order_id": paid.order_id, "buyer": paid.rows.owner,
                           "paid_at": paid.paid_at,
                           "day": paid.rows.day, "until": paid.rows.until})
    lo, hi = int(paid.order_id.min()), int(paid.order_id.max())
    lines = session.execute(select(_order_lines.c.order_id, _order_lines.c.product_id)
                            .where(and_(_order_lines.c.order_id >= lo,
                                        _order_lines.c.order_id <= hi))).all()
    line_frame = pd.DataFrame(lines, columns=["order_id", "product_id"])
    return line_frame.merge(orders, on="order_id").drop_duplicates(["order_id", "product_id"])


def order_bounds(session: Session) -> list[datetime]:
    """The first and last order creation times (empty without orders)."""
    bounds = session.execute(select(func.min(_orders_typed.c.created_at),
                                    func.max(_orders_typed.c.created_at))).one()
    return [moment for moment in bounds if moment is not None]


def realised_spend(session: Session, until: datetime) -> dict[int, int]:
    """Customer id → net spend in fen: orders paid before ``until`` less those refunded
    before it."""
    o = _orders_typed.c
    kept = case((and_(o.refunded_at.is_not(None), o.refunded_at < until), 0),
                else_=o.total_fen)
    rows = session.execute(select(o.customer_id, func.sum(kept))
                           .where(o.paid_at.is_not(None), o.paid_at < until)
                           .group_by(o.customer_id)).tuples().all()
    return {customer_id: int(total or 0) for customer_id, total in rows}


def referral_rows(ids: IntArray, referrals: Iterable[tuple[int, date]]) -> DatedRows:
    """Referrals ``(referring customer id, local day)`` as conversions of the referrer."""
    given = list(referrals)
    owner = _positions(ids, (customer for customer, _ in given))
    days = np.array([day_number(day) for _, day in given], dtype=np.int64)
    keep = owner >= 0
    return DatedRows(owner[keep], days[keep], _never(int(keep.sum())))


def read_behaviour(session: Session, store: EventStore, zone: ZoneInfo, first: date,
                   last: date, config: LifecycleConfig,
                   referrals: Iterable[tuple[int, date]] = ()) -> Behaviour:
    """Everything needed to judge the days ``first..last``, read once."""
    def start(days: int) -> datetime:
        return local_day_bounds(first - timedelta(days=days), last, zone)[0]

    until = local_day_bounds(first, last, zone)[1]
    ids, registered, keys = _read_customers(session, zone)
    made, paid = _read_orders(session, ids, start(config.lookback_days), until, zone)
    activity = _read_activity(store, keys, start(config.engaged_days), until, zone) + made
    conversions = _read_conversions(
        session, store, ids, keys, paid,
        start(config.advocate_days + config.conversion_days), until, config)
    return Behaviour(ids, registered, activity, paid.rows,
                     conversions + referral_rows(ids, referrals))
