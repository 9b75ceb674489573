"""Profile tags on hand-written journeys (DuckDB and PostgreSQL) and against a brute-force
reference on random event streams."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from journeys import (
    backend_url_fixture,  # noqa: F401
    draw_identity,  # the two fixtures are used by name: pg_url, store
    ingest_rows,
    journeys_for,
    open_store,
    pg_url_fixture,  # noqa: F401
    store_fixture,  # noqa: F401,
)

from shequ.analytics.store import EventStore
from shequ.analytics.tags import DAYPARTS, DEFAULT_WEIGHTS, TAG_SCHEMA, compute_tags
from shequ.core.errors import ValidationFailed

SHANGHAI = ZoneInfo("Asia/Shanghai")
REFERENCE = datetime(2026, 11, 20, 16, tzinfo=UTC)  # 2026-11-21 00:00 in Asia/Shanghai
# sku → (category, brand); SK4 has no category, SK3 no brand.
PRODUCTS = {"SK1": ("beauty.cream", "b01"), "SK2": ("beauty.mask", "b01"),
            "SK3": ("food.tea", None), "SK4": (None, "b02")}  # fmt: skip
Tags = dict[tuple[str, str], list[tuple[str, float]]]


def add_products(store: EventStore, products: Mapping[str, tuple[str | None, str | None]]
                 = PRODUCTS) -> None:  # fmt: skip
    store.replace_rows("dim_products", pa.table({
        "sku": pa.array(list(products), pa.string()),
        "brand_id": pa.array([brand for _, brand in products.values()], pa.string()),
        "category_id": pa.array([category for category, _ in products.values()], pa.string()),
    }))  # fmt: skip


def ago(days: float = 0, **parts: float) -> str:
    """The ISO instant ``days`` (and ``hours=``, ``seconds=``…) before REFERENCE."""
    return (REFERENCE - timedelta(days=days, **parts)).isoformat()


def view(sku: str, ts: str, name: str = "product_view", **fields: Any) -> dict[str, Any]:
    return {"event": name, "ts": ts, "properties": json.dumps({"sku": sku}), **fields}


def tags(store: EventStore, **options: Any) -> Tags:
    """{(customer, kind): [(value, score), …]} in the order returned."""
    options.setdefault("reference", REFERENCE)
    table = compute_tags(store, **options)
    assert table.schema == TAG_SCHEMA
    found: Tags = {}
    for row in table.to_pylist():
        found.setdefault((row["customer_id"], row["kind"]), []).append((row["value"], row["score"]))
    return found


def scores(found: Tags, customer: str, kind: str) -> dict[str, float]:
    return dict(found.get((customer, kind), []))


def ranked(found: Tags, customer: str, kind: str) -> list[str]:
    return [value for value, _ in found.get((customer, kind), [])]


def test_decay_halves_the_weight_after_one_half_life(store: EventStore) -> None:
    add_products(store)
    journeys_for(store, {"c1": [view("SK1", ago(0)), view("SK2", ago(30))],
                         "c2": [view("SK1", ago(10)), view("SK2", ago(20))]})  # fmt: skip
    found = tags(store, half_life_days=30)
    assert scores(found, "c1", "category_affinity") == pytest.approx(
        {"beauty.cream": 2 / 3, "beauty.mask": 1 / 3}, abs=1e-12
    )
    share = 1 / (1 + 0.5 ** (1 / 3))  # ten days apart, a third of a half-life
    assert scores(found, "c2", "category_affinity") == pytest.approx(
        {"beauty.cream": share, "beauty.mask": 1 - share}, abs=1e-12
    )
    assert scores(found, "c1", "brand_affinity") == pytest.approx({"b01": 1.0})
    shorter = tags(store, half_life_days=10)
    assert scores(shorter, "c1", "category_affinity") == pytest.approx(
        {"beauty.cream": 8 / 9, "beauty.mask": 1 / 9}, abs=1e-12
    )


def test_event_weights_and_top_with_ties(store: EventStore) -> None:
    add_products(store, {f"S{k}": (f"cat{k}", f"b{k}") for k in range(5)})
    now = ago(0)
    journeys_for(
        store,
        {
            "c1": [
                view("S4", now, "add_to_cart"),
                view("S3", now),
                view("S2", now),
                view("S1", now),
                view("S0", now, "checkout"),
            ]
        },
    )
    found = tags(store, top=3)
    # add_to_cart weighs 3, a view 1: 3/6 and three ties at 1/6 of which cat1, cat2 stay.
    assert ranked(found, "c1", "category_affinity") == ["cat4", "cat1", "cat2"]
    assert scores(found, "c1", "category_affinity") == pytest.approx(
        {"cat4": 0.5, "cat1": 1 / 6, "cat2": 1 / 6}
    )
    assert ranked(tags(store, top=1), "c1", "brand_affinity") == ["b4"]
    custom = tags(store, weights={"checkout": 1.0, "product_view": 2.0}, top=5)
    assert scores(custom, "c1", "category_affinity") == pytest.approx(
        {"cat0": 1 / 7, "cat1": 2 / 7, "cat2": 2 / 7, "cat3": 2 / 7}
    )


def test_anonymous_events_count_for_the_linked_customer(store: EventStore) -> None:
    add_products(store)
    journeys_for(store, {
        "visitor": [view("SK1", ago(2), anonymous_id="a1", channel="h5"),
                    view("SK1", ago(2), anonymous_id="a1", channel="h5")],
        "login": [{"event": "login", "ts": ago(1), "anonymous_id": "a1", "customer_id": "c1",
                   "channel": "app"}],
        "c1": [view("SK3", ago(0), channel="app")],
        "stranger": [view("SK2", ago(0), anonymous_id="a2", channel="web")],
    })  # fmt: skip
    found = tags(store, half_life_days=1000)
    assert {customer for customer, _ in found} == {"c1"}
    assert scores(found, "c1", "category_affinity") == pytest.approx(
        {"beauty.cream": 2 / 3, "food.tea": 1 / 3}, rel=1e-3
    )
    # two events on h5, two on app: app's are the more recent
    assert scores(found, "c1", "preferred_channel") == pytest.approx({"app": 0.5}, rel=1e-3)


def test_unknown_skus_and_missing_dimensions_are_ignored(store: EventStore) -> None:
    add_products(store)
    now = ago(0)
    journeys_for(store, {"c1": [
        view("SK9", now), view("SK3", now), view("SK4", now),
        {"event": "product_view", "ts": now, "properties": '{"sku": 3}'},
        {"event": "product_view", "ts": now, "properties": None},
        {"event": "add_to_cart", "ts": now, "properties": '{"quantity": 1}'},
    ]})  # fmt: skip
    found = tags(store)
    assert scores(found, "c1", "category_affinity") == pytest.approx({"food.tea": 1.0})
    assert scores(found, "c1", "brand_affinity") == pytest.approx({"b02": 1.0})
    journeys_for(store, {"c2": [view("SK9", now), {"event": "page_view", "ts": now}]})
    found = tags(store)
    assert ("c2", "category_affinity") not in found
    assert ("c2", "brand_affinity") not in found
    assert scores(found, "c2", "preferred_hour") == {"0": 1.0}


def test_window_is_open_at_its_start_and_closed_at_the_reference(store: EventStore) -> None:
    add_products(store, {f"S{k}": (f"cat{k}", None) for k in range(5)})
    journeys_for(store, {"c1": [
        view("S0", ago(7)),  # exactly window_days before: out
        view("S1", ago(7, microseconds=-1)),  # a microsecond later: in
        view("S2", ago(0)),  # the reference itself: in
        view("S3", ago(0, microseconds=-1)),  # after the reference: out
        view("S4", ago(7, seconds=-0.5)),
    ]})  # fmt: skip
    found = tags(store, window_days=7, top=5, half_life_days=7)
    got = scores(found, "c1", "category_affinity")
    assert set(got) == {"cat1", "cat2", "cat4"}
    assert got["cat2"] == pytest.approx(1 / (1 + 0.5 + 0.5 * 2 ** (0.5 / 86400 / 7)), abs=1e-9)
    assert tags(store, reference=REFERENCE - timedelta(days=30)) == {}


def test_preferred_channel_hour_and_daypart(store: EventStore) -> None:
    def at(hour: int, minute: int, channel: str | None) -> dict[str, Any]:
        local = datetime(2026, 11, 20, hour, minute, tzinfo=SHANGHAI)
        return {"event": "page_view", "ts": local.isoformat(), "channel": channel}

    journeys_for(store, {"c1": [at(9, 0, "web"), at(9, 5, "web"), at(9, 10, "web"),
                                at(10, 0, "web"), at(23, 30, "app"), at(23, 59, "app"),
                                at(22, 10, None)]})  # fmt: skip
    found = tags(store, half_life_days=10_000)
    assert scores(found, "c1", "preferred_channel") == pytest.approx({"web": 4 / 6}, rel=1e-3)
    assert scores(found, "c1", "preferred_hour") == pytest.approx({"9": 3 / 7}, rel=1e-3)
    assert scores(found, "c1", "preferred_daypart") == pytest.approx({"上午": 4 / 7}, rel=1e-3)
    utc = tags(store, half_life_days=10_000, tz="UTC")
    assert scores(utc, "c1", "preferred_hour") == pytest.approx({"1": 3 / 7}, rel=1e-3)
    assert scores(utc, "c1", "preferred_daypart") == pytest.approx({"凌晨": 4 / 7}, rel=1e-3)
    kolkata = tags(store, half_life_days=10_000, tz="Asia/Kolkata")  # 9:00 here is 6:30 there
    assert scores(kolkata, "c1", "preferred_hour") == pytest.approx({"6": 3 / 7}, rel=1e-3)


def test_extra_interactions_are_decayed_and_credited(store: EventStore) -> None:
    add_products(store)
    journeys_for(store, {"c1": [view("SK1", ago(0))]})
    extras = pa.table({
        "customer_id": ["c1", "c1", "c1", "c3"],
        "sku": ["SK2", "SK9", "SK2", "SK3"],
        "ts": pa.array([REFERENCE - timedelta(days=30), REFERENCE, REFERENCE + timedelta(1),
                        REFERENCE - timedelta(days=1)], pa.timestamp("us", tz="UTC")),
        "weight": [5, 5, 5, 5],
    })  # fmt: skip
    found = tags(store, extra_interactions=extras)
    assert scores(found, "c1", "category_affinity") == pytest.approx(
        {"beauty.mask": 2.5 / 3.5, "beauty.cream": 1 / 3.5}, abs=1e-12
    )
    assert scores(found, "c3", "category_affinity") == {"food.tea": 1.0}
    assert ("c3", "preferred_hour") not in found  # no events, no preferences
    assert tags(store, extra_interactions=extras.slice(0, 0)) == tags(store)


def test_rows_come_ordered_by_customer_kind_and_rank(store: EventStore) -> None:
    add_products(store)
    journeys_for(store, {
        "c2": [view("SK1", ago(0), channel="app"), view("SK2", ago(1), channel="app")],
        "c1": [view("SK3", ago(3), channel="web"), view("SK2", ago(2), channel="web"),
               view("SK1", ago(1), channel="web")],
    })  # fmt: skip
    table = compute_tags(store, reference=REFERENCE)
    keys = list(zip(table["customer_id"].to_pylist(), table["kind"].to_pylist(), strict=True))
    assert keys == sorted(keys)
    category = [
        row["value"]
        for row in table.to_pylist()
        if row["kind"] == "category_affinity" and row["customer_id"] == "c1"
    ]
    assert category == ["beauty.cream", "beauty.mask", "food.tea"]


@pytest.mark.parametrize(("options", "code", "attr"), [
    ({"half_life_days": 0}, "half_life_not_positive", "half_life_days"),
    ({"half_life_days": -3.0}, "half_life_not_positive", "half_life_days"),
    ({"half_life_days": math.nan}, "half_life_not_positive", "half_life_days"),
    ({"half_life_days": 0.1, "window_days": 180}, "half_life_too_short", "half_life_days"),
    ({"top": 0}, "top_out_of_range", "top"),
    ({"top": 21}, "top_out_of_range", "top"),
    ({"window_days": 0}, "window_out_of_range", "window_days"),
    ({"window_days": 731}, "window_out_of_range", "window_days"),
    ({"reference": datetime(2026, 11, 20)}, "naive_reference", "reference"),
    ({"weights": {}}, "no_weights", "weights"),
    ({"weights": {"Product View": 1.0}}, "bad_event_name", "weights"),
    ({"weights": {"product_view": 0.0}}, "weight_out_of_range", "weights"),
    ({"weights": {"product_view": math.inf}}, "weight_out_of_range", "weights"),
    ({"tz": "Mars/Olympus"}, "unknown_timezone", "tz"),
])  # fmt: skip
def test_bad_arguments_are_named(tmp_path: Any, options: dict[str, Any], code: str,
                                 attr: str) -> None:  # fmt: skip
    options.setdefault("reference", REFERENCE)
    with (open_store(f"duckdb://{tmp_path}/events.duckdb") as store,
          pytest.raises(ValidationFailed) as info):  # fmt: skip
        compute_tags(store, **options)
    assert (info.value.code, info.value.attr) == (code, attr)
    assert info.value.detail


def extra_table(**columns: Any) -> pa.Table:
    base: dict[str, Any] = {
        "customer_id": ["c1"], "sku": ["SK1"],
        "ts": pa.array([REFERENCE], pa.timestamp("us", tz="UTC")), "weight": [5.0],
    }  # fmt: skip
    base.update(columns)
    return pa.table({name: value for name, value in base.items() if value is not None})


@pytest.mark.parametrize(("table", "code", "attr"), [
    (extra_table(sku=None), "bad_extra_interactions", "extra_interactions.sku"),
    (extra_table(ts=pa.array([datetime(2026, 11, 20)], pa.timestamp("us"))),
     "bad_extra_interactions", "extra_interactions.ts"),
    (extra_table(ts=["2026-11-20"]), "bad_extra_interactions", "extra_interactions.ts"),
    (extra_table(customer_id=pa.array([None], pa.string())), "bad_extra_interactions",
     "extra_interactions.customer_id"),
    (extra_table(weight=["heavy"]), "bad_extra_interactions", "extra_interactions.weight"),
    (extra_table(weight=[0.0]), "weight_out_of_range", "extra_interactions.weight"),
    (extra_table(weight=[math.nan]), "weight_out_of_range", "extra_interactions.weight"),
])  # fmt: skip
def test_bad_extra_interactions_name_the_column(tmp_path: Any, table: pa.Table, code: str,
                                                attr: str) -> None:  # fmt: skip
    with (open_store(f"duckdb://{tmp_path}/events.duckdb") as store,
          pytest.raises(ValidationFailed) as info):  # fmt: skip
        compute_tags(store, reference=REFERENCE, extra_interactions=table)
    assert (info.value.code, info.value.attr) == (code, attr)


# --- brute force reference -----------------------------------------------------------------


def reference_tags(
    rows: Sequence[Mapping[str, Any]],
    extras: Sequence[Mapping[str, Any]],
    options: Mapping[str, Any],
) -> dict[tuple[str, str], dict[str, float]]:
    """Every (customer, kind)'s score per value, before the cut to ``top``, by plain Python."""
    reference, zone = options["reference"], ZoneInfo(options["tz"])
    start = reference - timedelta(days=options["window_days"])
    weights = options.get("weights", DEFAULT_WEIGHTS)
    links: dict[str, str] = {}
    for row in rows:
        if row.get("anonymous_id") and row.get("customer_id"):
            links.setdefault(row["anonymous_id"], row["customer_id"])

    def decay(ts: datetime) -> float:
        age = (reference - ts).total_seconds() / 86400
        return float(0.5 ** (age / options["half_life_days"]))

    credits: dict[tuple[str, str], dict[str, float]] = {}

    def credit(customer: str, kind: str, value: str | None, amount: float) -> None:
        if value is not None:
            found = credits.setdefault((customer, kind), {})
            found[value] = found.get(value, 0.0) + amount

    interactions: list[tuple[str, str | None, float]] = []
    for row in rows:
        customer = row.get("customer_id") or links.get(row.get("anonymous_id") or "")
        if customer is None or not start < row["ts"] <= reference:
            continue
        hour = row["ts"].astimezone(zone).hour
        credit(customer, "preferred_channel", row.get("channel"), decay(row["ts"]))
        credit(customer, "preferred_hour", str(hour), decay(row["ts"]))
        daypart = next(name for name, first, end in DAYPARTS if first <= hour < end)
        credit(customer, "preferred_daypart", daypart, decay(row["ts"]))
        properties = json.loads(row["properties"]) if row.get("properties") else {}
        sku = properties.get("sku")
        if row["name"] in weights and isinstance(sku, str):
            interactions.append((customer, sku, weights[row["name"]] * decay(row["ts"])))
    for extra in extras:
        if start < extra["ts"] <= reference:
            interactions.append((extra["customer_id"], extra["sku"],
                                 extra["weight"] * decay(extra["ts"])))  # fmt: skip
    for customer, sku, amount in interactions:
        category, brand = PRODUCTS.get(sku or "", (None, None))
        credit(customer, "category_affinity", category, amount)
        credit(customer, "brand_affinity", brand, amount)
    return {key: {value: amount / sum(found.values()) for value, amount in found.items()}
            for key, found in credits.items()}  # fmt: skip


def assert_matches(got: Tags, expected: dict[tuple[str, str], dict[str, float]],
                   top: int) -> None:  # fmt: skip
    """``got`` keeps, per (customer, kind), the ``top`` (affinities) or 1 largest shares of
    ``expected``, with equal scores; ties may fall either way within 1e-9."""
    assert set(got) == set(expected)
    for key, found in got.items():
        shares = expected[key]
        keep = top if key[1].endswith("affinity") else 1
        assert len(found) == min(keep, len(shares))
        for value, score in found:
            assert score == pytest.approx(shares[value], abs=1e-9)
        listed = [score for _, score in found]
        assert all(a >= b - 1e-9 for a, b in itertools.pairwise(listed))
        left_out = [share for value, share in shares.items() if value not in dict(found)]
        assert all(share <= listed[-1] + 1e-9 for share in left_out)


@st.composite
def event_streams(draw: st.DrawFn) -> list[dict[str, Any]]:
    size = draw(st.integers(0, 30))
    ids = draw(st.permutations(range(size)))
    rows = []
    for i in range(size):
        person = draw(st.sampled_from(["c0", "c1", "a0", "a1"]))
        seconds = draw(st.one_of(st.integers(-3600, 32 * 86400),
                                 st.sampled_from([0, 7 * 86400, 30 * 86400])))  # fmt: skip
        sku = draw(st.sampled_from(["SK1", "SK2", "SK3", "SK4", "SK9", None]))
        properties = draw(st.sampled_from([None, "{}", '{"sku": 7}'])) if sku is None else (
            json.dumps({"sku": sku, "quantity": 1}))  # fmt: skip
        row = {"event_id": f"e{ids[i]:02d}", "ts": REFERENCE - timedelta(seconds=seconds),
               "name": draw(st.sampled_from(["product_view", "add_to_cart", "favorite",
                                             "page_view", "checkout"])),
               "channel": draw(st.sampled_from([None, "app", "web"])),
               "properties": properties}  # fmt: skip
        rows.append(draw_identity(draw, row, person))
    return rows


@st.composite
def extra_rows(draw: st.DrawFn) -> list[dict[str, Any]]:
    return [{"customer_id": draw(st.sampled_from(["c0", "c1", "c5"])),
             "sku": draw(st.sampled_from(["SK1", "SK2", "SK3", "SK9", None])),
             "ts": REFERENCE - timedelta(seconds=draw(st.integers(-3600, 32 * 86400))),
             "weight": draw(st.sampled_from([5.0, 0.5, 2.25]))}
            for _ in range(draw(st.integers(0, 4)))]  # fmt: skip


@st.composite
def tag_options(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "reference": REFERENCE,
        "window_days": draw(st.sampled_from([7, 30])),
        "half_life_days": draw(st.sampled_from([0.5, 7.5, 30.0])),
        "top": draw(st.integers(1, 3)),
        "tz": draw(st.sampled_from(["Asia/Shanghai", "UTC", "Asia/Kolkata",
                                    "America/New_York"])),
        **draw(st.sampled_from([{}, {"weights": {"product_view": 2.0, "checkout": 0.5}}])),
    }  # fmt: skip


@settings(max_examples=25, deadline=None)
@given(rows=event_streams(), extras=extra_rows(), options=tag_options())
def test_tags_match_brute_force_reference(backend_url: str, rows: list[dict[str, Any]],
                                          extras: list[dict[str, Any]],
                                          options: dict[str, Any]) -> None:  # fmt: skip
    table = pa.Table.from_pylist(extras, schema=pa.schema([
        ("customer_id", pa.string()), ("sku", pa.string()),
        ("ts", pa.timestamp("us", tz="UTC")), ("weight", pa.float64()),
    ]))  # fmt: skip
    with open_store(backend_url) as store:
        add_products(store)
        ingest_rows(store, rows)
        got = tags(store, extra_interactions=table, **options)
    assert_matches(got, reference_tags(rows, extras, options), options["top"])
