"""Profile tags from behaviour: what each known customer is drawn to and when and where
they shop, for the customer-intelligence modules (segments, recommendations, outreach).

Semantics (docs/tags.md): every event in the window ``(reference - window_days,
reference]`` counts ``0.5 ** (age_days / half_life_days)`` of its weight, so an event one
half-life old counts half as much as one at ``reference``.

* ``category_affinity`` / ``brand_affinity``: events whose ``properties`` name a ``sku``
  (weighted by event name) and the caller's ``extra_interactions`` (order lines, say) are
  credited to the product's category and brand (``dim_products``); a value's score is its
  share of the customer's credit over all categories (brands); the ``top`` largest are kept.
* ``preferred_channel``: the channel with the largest share of the customer's events that
  carry a channel; ``preferred_hour`` / ``preferred_daypart``: the local hour ("0".."23") /
  band of hours (:data:`DAYPARTS`) with the largest share of all their events.

Everything is one ibis plan (DuckDB and PostgreSQL alike). Events of anonymous visitors
count for the customer their ``anonymous_id`` is linked to (as in
:mod:`shequ.analytics.persons`); visitors never linked get no tags.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from shequ.analytics.funnels import SKU_PATTERN
from shequ.analytics.rollup import DEFAULT_TZ, local_time
from shequ.core.errors import ValidationFailed

if TYPE_CHECKING:
    from shequ.analytics.store import EventStore

TagKind = Literal["category_affinity", "brand_affinity", "preferred_channel",
                  "preferred_hour", "preferred_daypart"]  # fmt: skip
AFFINITY_KINDS: tuple[TagKind, ...] = ("category_affinity", "brand_affinity")
# A favourite or a cart addition says more about taste than a glance; purchases come from
# the order lines (``extra_interactions``) because checkout events carry no SKU.
DEFAULT_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {"product_view": 1.0, "favorite": 2.0, "add_to_cart": 3.0}
)
# Bands of local hours (name, first, end) covering 0-23 in order: 凌晨 0-5, 上午 6-10,
# 中午 11-12, 下午 13-17, 晚上 18-21, 深夜 22-23.
DAYPARTS: tuple[tuple[str, int, int], ...] = (
    ("凌晨", 0, 6), ("上午", 6, 11), ("中午", 11, 13), ("下午", 13, 18), ("晚上", 18, 22),
    ("深夜", 22, 24),
)  # fmt: skip
MAX_WINDOW_DAYS = 730
MAX_TOP = 20
# PostgreSQL raises on a float underflow instead of answering 0, so the smallest credit,
# MIN_WEIGHT * 0.5 ** MAX_HALF_LIVES (about 3e-157), must stay far above the double range.
MAX_HALF_LIVES = 500
MIN_WEIGHT, MAX_WEIGHT = 1e-6, 1e6
EVENT_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
# Only ``sku`` may be null (such a row credits nothing, like an unknown SKU).
EXTRA_SCHEMA = pa.schema([
    ("customer_id", pa.string()), ("sku", pa.string()), ("ts", pa.timestamp("us", tz="UTC")),
    ("weight", pa.float64()),
])  # fmt: skip
_EXTRA_REQUIRED = ("customer_id", "ts", "weight")
TAG_SCHEMA = pa.schema([
    pa.field("customer_id", pa.string(), nullable=False),
    pa.field("kind", pa.string(), nullable=False),
    pa.field("value", pa.string(), nullable=False),
    pa.field("score", pa.float64(), nullable=False),
])  # fmt: skip
DAY_SECONDS = 86_400
QUARTER_SECONDS = 900
UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def compute_tags(
    store: EventStore,
    *,
    reference: datetime,
    window_days: int = 180,
    half_life_days: float = 30.0,
    top: int = 3,
    weights: Mapping[str, float] = DEFAULT_WEIGHTS,
    extra_interactions: pa.Table | None = None,
    tz: str = DEFAULT_TZ,
) -> pa.Table:
    """The behavioural tags of every known customer active in the window, as of ``reference``.

    Returns :data:`TAG_SCHEMA` rows ``customer_id, kind, value, score`` ordered by customer,
    kind, score (largest first) and value: at most ``top`` rows per customer for each
    affinity kind, one for each preference kind; ``score`` is the value's decayed share
    (0 < score ≤ 1). Ties go to the smaller hour or daypart, else to the smaller value.

    ``weights`` maps the event names that count as product interactions to their weights;
    ``extra_interactions`` (columns ``customer_id, sku, ts, weight``; :data:`EXTRA_SCHEMA`)
    adds interactions the event store does not hold. ``tz`` is the zone of the local hours.
    Bad arguments raise :class:`ValidationFailed` naming the argument.
    """
    _check_arguments(reference, window_days, half_life_days, top, weights, tz)
    extras = None if extra_interactions is None else conform_extras(extra_interactions)
    options = _Options(reference=reference, start=reference - timedelta(days=window_days),
                       half_life_seconds=half_life_days * DAY_SECONDS, top=top,
                       weights=dict(weights), tz=tz)  # fmt: skip
    plan = _tags_plan(store, options, extras)
    return store.to_arrow(plan).cast(TAG_SCHEMA)


@dataclass(frozen=True, slots=True)
class _Options:
    """The validated arguments of :func:`compute_tags`: the window ``(start, reference]``,
    the half-life in seconds, ``top``, the event weights and the local time zone."""

    reference: datetime
    start: datetime
    half_life_seconds: float
    top: int
    weights: Mapping[str, float]
    tz: str


def _check_arguments(reference: datetime, window_days: int, half_life_days: float, top: int,
                     weights: Mapping[str, float], tz: str) -> None:  # fmt: skip
    if reference.tzinfo is None or reference.utcoffset() is None:
        raise ValidationFailed("naive_reference", "reference must be timezone-aware", "reference")
    if isinstance(window_days, bool) or not 1 <= window_days <= MAX_WINDOW_DAYS:
        raise ValidationFailed(
            "window_out_of_range",
            f"window_days must be between 1 and {MAX_WINDOW_DAYS}, got {window_days!r}",
            "window_days",
        )
    if not (math.isfinite(half_life_days) and half_life_days > 0):
        raise ValidationFailed(
            "half_life_not_positive",
            f"half_life_days must be a positive number of days, got {half_life_days!r}",
            "half_life_days",
        )
    if window_days / half_life_days > MAX_HALF_LIVES:
        raise ValidationFailed(
            "half_life_too_short",
            f"window_days / half_life_days must be at most {MAX_HALF_LIVES} (the oldest event "
            f"must keep a weight the database can represent), got {window_days / half_life_days:g}",
            "half_life_days",
        )
    if isinstance(top, bool) or not 1 <= top <= MAX_TOP:
        raise ValidationFailed(
            "top_out_of_range", f"top must be between 1 and {MAX_TOP}, got {top!r}", "top"
        )
    if not weights:
        raise ValidationFailed("no_weights", "weights must name at least one event",
                               "weights")  # fmt: skip
    for name, weight in weights.items():
        if EVENT_NAME.fullmatch(name) is None:
            raise ValidationFailed(
                "bad_event_name",
                f"{name!r} is not an event name ([a-z][a-z0-9_]*, at most 64 characters)",
                "weights",
            )
        _check_weight(weight, f"weights[{name!r}]", "weights")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationFailed("unknown_timezone", f"unknown time zone {tz!r}", "tz") from None


def _check_weight(weight: object, what: str, attr: str) -> None:
    if not (isinstance(weight, int | float) and MIN_WEIGHT <= weight <= MAX_WEIGHT):
        raise ValidationFailed(
            "weight_out_of_range",
            f"{what} must be between {MIN_WEIGHT:g} and {MAX_WEIGHT:g}, got {weight!r}",
            attr,
        )


def conform_extras(table: pa.Table) -> pa.Table:
    """``table`` selected and cast to :data:`EXTRA_SCHEMA`, or :class:`ValidationFailed`
    naming the column (``extra_interactions.<column>``) that is missing, of the wrong type,
    null where a value is required, naive (``ts``) or out of range (``weight``)."""
    columns = []
    for field in EXTRA_SCHEMA:
        attr = f"extra_interactions.{field.name}"
        if field.name not in table.column_names:
            raise ValidationFailed("bad_extra_interactions", "the column is missing", attr)
        column = table.column(field.name)
        naive = not pa.types.is_timestamp(column.type) or column.type.tz is None
        if field.name == "ts" and naive:
            raise ValidationFailed(
                "bad_extra_interactions",
                f"must be a timezone-aware timestamp column, got {column.type}",
                attr,
            )
        try:
            column = column.cast(field.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise ValidationFailed(
                "bad_extra_interactions", f"cannot be read as {field.type}: {exc}", attr
            ) from None
        if field.name in _EXTRA_REQUIRED and column.null_count:
            raise ValidationFailed(
                "bad_extra_interactions", f"{column.null_count} row(s) have no value", attr
            )
        columns.append(column)
    extras = pa.Table.from_arrays(columns, schema=EXTRA_SCHEMA)
    weights = extras.column("weight").to_numpy()
    outside = ~((weights >= MIN_WEIGHT) & (weights <= MAX_WEIGHT))  # NaN is outside too
    if outside.any():
        row = int(outside.argmax())
        _check_weight(float(weights[row]), f"weight (row {row})", "extra_interactions.weight")
    return extras


def _tags_plan(store: EventStore, options: _Options, extras: pa.Table | None) -> ibis.Table:
    """One expression for every tag: the decayed credits of (customer, kind, value), their
    shares per (customer, kind), ranked and cut to ``top`` (affinities) or 1 (preferences)."""
    events = _customer_events(store, options)
    credits = _affinity_credits(store, events, options, extras).union(
        _preference_credits(events, options)
    )
    sums = credits.group_by(["customer", "kind", "value", "ordinal"]).aggregate(
        credit=credits.credit.sum()
    )
    per_kind = ibis.window(group_by=[sums.customer, sums.kind])
    ranking = ibis.window(group_by=[sums.customer, sums.kind],
                          order_by=[sums.credit.desc(), sums.ordinal, sums.value])  # fmt: skip
    shares = sums.mutate(score=sums.credit / sums.credit.sum().over(per_kind),
                         rank=ibis.row_number().over(ranking))  # fmt: skip
    limit = ibis.ifelse(shares.kind.isin(AFFINITY_KINDS), options.top, 1)
    kept = shares.filter(shares.rank < limit)  # row_number counts from 0
    kept = kept.select(customer_id=kept.customer, kind=kept.kind, value=kept.value,
                       score=kept.score)  # fmt: skip
    return kept.order_by([kept.customer_id, kept.kind, kept.score.desc(), kept.value])


def _customer_events(store: EventStore, options: _Options) -> ibis.Table:
    """The window's events of known customers: ``customer, name, channel, properties,
    epoch, decay`` (the customer id, else the customer linked to the anonymous id)."""
    events = store.table("events")
    events = events.filter(events.ts > options.start, events.ts <= options.reference)
    events = events.select("customer_id", "anonymous_id", "name", "ts", "channel", "properties")
    links = store.table("identity_links")
    links = links.select(link_anonymous_id=links.anonymous_id, link_customer_id=links.customer_id)
    joined = events.left_join(links, events.anonymous_id == links.link_anonymous_id)
    customer = ibis.coalesce(joined.customer_id, joined.link_customer_id)
    known = joined.select(customer=customer, name=joined.name, channel=joined.channel,
                          properties=joined.properties, epoch=_epoch(joined.ts))  # fmt: skip
    known = known.filter(known.customer.notnull())
    return known.mutate(decay=_decay(known.epoch, options))


def _date_part(part: str, ts: datetime) -> float:  # type: ignore[empty-body]
    """Signature of ``date_part(part, instant)``, spelled the same in DuckDB and PostgreSQL."""


_DATE_PART_UDF = ibis.udf.scalar.builtin(name="date_part")(_date_part)


def _epoch(ts: ir.TimestampValue) -> ir.FloatingValue:
    """Seconds since 1970-01-01 UTC of the instants ``ts``, with their fraction.

    ``date_part('epoch', ts)`` rather than ibis' ``epoch_seconds``: that one truncates to
    whole seconds on some backends and, on DuckDB, converts every value to a naive
    timestamp first, which costs more than the rest of the tag plan.
    """
    return cast(ir.FloatingValue, _DATE_PART_UDF("epoch", ts))


def _decay(epoch: ir.FloatingValue, options: _Options) -> ir.FloatingValue:
    """``0.5 ** (age / half_life)``, ``age`` being the seconds from ``epoch`` to
    ``reference``."""
    age = ibis.literal(options.reference.timestamp()) - epoch
    return ibis.literal(0.5) ** (age / options.half_life_seconds)


def _affinity_credits(store: EventStore, events: ibis.Table, options: _Options,
                      extras: pa.Table | None) -> ibis.Table:  # fmt: skip
    """``customer, kind, value, ordinal, credit``: each product interaction's weight ×
    decay, credited to its product's category and to its brand (unknown SKUs get none)."""
    weighted = events.filter(events.name.isin(list(options.weights)))
    weight = weighted.name.cases(*((name, ibis.literal(float(value), type="float64"))
                                   for name, value in options.weights.items()))  # fmt: skip
    interactions = weighted.select(
        customer=weighted.customer,
        sku=weighted.properties.re_extract(SKU_PATTERN, 1).nullif(""),
        credit=weight * weighted.decay,
    )
    if extras is not None and extras.num_rows:
        # A registered Arrow table on DuckDB; on PostgreSQL ibis INSERTs it row by row into
        # a temporary table (about 5,000 rows/s), the one part of the plan that is slow there.
        added = ibis.memtable(extras)
        added = added.filter(added.ts > options.start, added.ts <= options.reference)
        interactions = interactions.union(added.select(
            customer=added.customer_id, sku=added.sku,
            credit=added.weight * _decay(_epoch(added.ts), options),
        ))  # fmt: skip
    # One row per (customer, SKU) before the join, as a view and a cart addition of the
    # same product are usually both there: fewer rows to join, split in two and regroup.
    per_sku = interactions.group_by(["customer", "sku"]).aggregate(credit=interactions.credit.sum())
    products = store.table("dim_products")
    products = products.select(p_sku=products.sku, p_brand=products.brand_id,
                               p_category=products.category_id)  # fmt: skip
    credited = per_sku.join(products, per_sku.sku == products.p_sku)
    parts = [
        credited.filter(credited[column].notnull()).select(
            customer=credited.customer, kind=ibis.literal(kind), value=credited[column],
            ordinal=ibis.literal(0, type="int64"), credit=credited.credit,
        )
        for kind, column in (("category_affinity", "p_category"), ("brand_affinity", "p_brand"))
    ]  # fmt: skip
    return parts[0].union(parts[1])


def _preference_credits(events: ibis.Table, options: _Options) -> ibis.Table:
    """``customer, kind, value, ordinal, credit``: each event's decay credited to its
    channel (when it has one), its local hour and its daypart; ``ordinal`` orders hours
    and dayparts for ties.

    Events are first summed per (customer, channel, quarter hour since the epoch), and the
    local hour is taken of each quarter's start: every zone's offset from UTC is a whole
    number of quarter hours, so a quarter lies in one local hour, and converting the
    sessions' quarters instead of every event to local time saves most of the work.
    """
    quarter = (events.epoch / QUARTER_SECONDS).floor()
    quarters = events.group_by(customer=events.customer, channel=events.channel,
                               quarter=quarter).aggregate(credit=events.decay.sum())  # fmt: skip
    start = ibis.literal(UNIX_EPOCH) + (quarters.quarter * QUARTER_SECONDS).as_interval("s")
    slots = quarters.mutate(hour=local_time(options.tz, start).hour().cast("int64"))
    daypart_index = ibis.cases(*((slots.hour < end, ibis.literal(index, type="int64"))
                                 for index, (_, _, end) in enumerate(DAYPARTS)))  # fmt: skip
    daypart_name = ibis.cases(*((slots.hour < end, ibis.literal(name))
                                for name, _, end in DAYPARTS))  # fmt: skip
    with_channel = slots.filter(slots.channel.notnull())
    channel = with_channel.select(customer=with_channel.customer,
                                  kind=ibis.literal("preferred_channel"),
                                  value=with_channel.channel,
                                  ordinal=ibis.literal(0, type="int64"),
                                  credit=with_channel.credit)  # fmt: skip
    hours = slots.select(customer=slots.customer, kind=ibis.literal("preferred_hour"),
                         value=slots.hour.cast("string"), ordinal=slots.hour,
                         credit=slots.credit)  # fmt: skip
    dayparts = slots.select(customer=slots.customer, kind=ibis.literal("preferred_daypart"),
                            value=daypart_name, ordinal=daypart_index,
                            credit=slots.credit)  # fmt: skip
    return channel.union(hours).union(dayparts)
