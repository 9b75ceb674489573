"""Segment rules: parse errors name the wrong part; members on hand-written data (DuckDB
and PostgreSQL, and PySpark for the presets) and against a brute-force reference over
random event streams, profiles, tags and rule trees."""

from __future__ import annotations

import json
import operator
import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from journeys import (
    backend_url_fixture,  # noqa: F401  (the fixtures are used by name)
    ingest_rows,
    journeys_for,
    open_store,
    pg_url_fixture,  # noqa: F401
    store_fixture,  # noqa: F401
)

from shequ.analytics.segments import (
    MAX_DEPTH,
    MAX_NODES,
    PRESETS,
    RFM_GROUPS,
    AllOf,
    AttrCondition,
    BehaviourCondition,
    CountTest,
    Not,
    compile_rule,
    count,
    describe,
    evaluate,
    parse_rule,
    rule_to_json,
)
from shequ.analytics.store import EventStore
from shequ.core.errors import ValidationFailed
from shequ.stats.rfm import GROUPS

REF = datetime(2026, 11, 20, 12, tzinfo=UTC)
DIM_SCHEMA = pa.schema([
    ("customer_id", pa.string()), ("gender", pa.string()), ("city", pa.string()),
    ("birth_year", pa.int32()), ("registered_at", pa.timestamp("us", tz="UTC")),
    ("rfm_group", pa.string()), ("clv_fen", pa.int64()), ("p_alive", pa.float64()),
    ("member_tier", pa.string()),
])  # fmt: skip
TAG_SCHEMA = pa.schema([("customer_id", pa.string()), ("kind", pa.string()),
                        ("value", pa.string()), ("score", pa.float64())])  # fmt: skip


def at(hours_before: float) -> str:
    """The ISO instant ``hours_before`` hours before the reference."""
    return (REF - timedelta(hours=hours_before)).isoformat()


def props(**values: Any) -> str:
    return json.dumps(values, ensure_ascii=False)


def load_dims(store: EventStore, customers: Sequence[dict[str, Any]],
              tags: Sequence[dict[str, Any]] = ()) -> None:
    """Write ``dim_customers`` (the columns of :data:`DIM_SCHEMA`) and ``dim_customer_tags``."""
    store.replace_rows("dim_customers", pa.Table.from_pylist(
        [{f.name: c.get(f.name) for f in DIM_SCHEMA} for c in customers], schema=DIM_SCHEMA))
    store.replace_rows("dim_customer_tags", pa.Table.from_pylist(list(tags), schema=TAG_SCHEMA))


def members(store: EventStore, raw: dict[str, Any]) -> list[str]:
    rule = parse_rule(raw)
    found = evaluate(store, rule, reference=REF)
    assert count(store, rule, reference=REF) == len(found)
    return found


# ------------------------------------------------------------------------------ parsing


def test_rfm_codes_are_the_stats_groups() -> None:
    assert {group.code: group.label_zh for group in GROUPS} == RFM_GROUPS


def nested_nots(levels: int) -> dict[str, Any]:
    rule: dict[str, Any] = {"event": "login", "within_days": 1}
    for _ in range(levels):
        rule = {"not": rule}
    return rule


VIEW = {"event": "product_view", "within_days": 7}
BAD_RULES = [
    ("nope", "rule", "expected an object"),
    ({}, "rule", "exactly one kind key, found none of"),
    ({"attr": "city", "op": "eq", "value": "上海", "event": "x"}, "rule",
     "exactly one kind key, found 2: 'attr', 'event'"),
    ({"all": []}, "rule.all", "the list is empty"),
    ({"any": {"event": "x"}}, "rule.any", "expected a non-empty list, got an object"),
    ({"all": [VIEW, {"not": {"event": "payment", "within_days": 0}}]},
     "rule.all[1].not.within_days", "expected an integer 1..365, got 0"),
    ({**VIEW, "within_days": 366}, "rule.within_days", "1..365, got 366"),
    ({**VIEW, "within_days": "7"}, "rule.within_days", "got a string"),
    ({"event": "product_view"}, "rule.within_days", "missing"),
    ({**VIEW, "event": "Product View"}, "rule.event", "[a-z][a-z0-9_]*"),
    ({**VIEW, "count": {"gte": -1}}, "rule.count.gte", "0..100000, got -1"),
    ({**VIEW, "count": {"gt": 1}}, "rule.count.gt", "allowed: 'gte', 'lte', 'eq'"),
    ({**VIEW, "count": {"gte": 1, "lte": 3}}, "rule.count", "expected one of"),
    ({**VIEW, "count": {"gte": True}}, "rule.count.gte", "got a boolean"),
    ({**VIEW, "where": {}}, "rule.where", "non-empty object"),
    ({**VIEW, "where": {"sku": []}}, "rule.where.sku", "the list is empty"),
    ({**VIEW, "where": {"Sku": "S1"}}, "rule.where.Sku", "property name"),
    ({**VIEW, "where": {"sku": ["S1", 2]}}, "rule.where.sku", "share a type"),
    ({**VIEW, "where": {"sku": {"in": ["S1"]}}}, "rule.where.sku", "got an object"),
    ({**VIEW, "where": {"sku": ["S1", None]}}, "rule.where.sku[1]", "got null"),
    ({**VIEW, "same": "a-b"}, "rule.same", "property name"),
    ({**VIEW, "page": "product"}, "rule.page", "starts with '/'"),
    ({**VIEW, "channel": []}, "rule.channel", "the list is empty"),
    ({**VIEW, "channel": ["app", 3]}, "rule.channel[1]", "got an integer"),
    ({**VIEW, "bogus": 1}, "rule.bogus", "unknown field; allowed here: 'event'"),
    ({"attr": "shoe_size", "op": "eq", "value": 42}, "rule.attr", "unknown attribute"),
    ({"attr": "city", "op": "gt", "value": "上海"}, "rule.op",
     "unknown op 'gt' for city; allowed: 'eq', 'ne', 'in'"),
    ({"attr": "city", "value": "上海"}, "rule.op", "missing op"),
    ({"attr": "city", "op": "in", "value": "上海"}, "rule.value", "expected a non-empty list"),
    ({"attr": "city", "op": "in", "value": ["上海", 3]}, "rule.value[1]", "got an integer"),
    ({"attr": "city", "op": "eq", "value": ["上海"]}, "rule.value", "use 'in' for a list"),
    ({"attr": "birth_year", "op": "eq", "value": "1990"}, "rule.value",
     "expected an integer, got a string"),
    ({"attr": "birth_year", "op": "between", "value": [2000, 1990]}, "rule.value",
     "low 2000 is above high 1990"),
    ({"attr": "birth_year", "op": "between", "value": [1990]}, "rule.value", "[low, high]"),
    ({"attr": "birth_year", "op": "is_null", "value": 1990}, "rule.value", "takes no value"),
    ({"attr": "birth_year", "op": "gte"}, "rule.value", "gte needs a value"),
    ({"attr": "p_alive", "op": "eq", "value": 0.5}, "rule.op", "allowed: 'gt'"),
    ({"attr": "registered_at", "op": "gte", "value": "2026-11-20"}, "rule.value",
     "with offset"),
    ({"attr": "member_tier", "op": "eq", "value": "platinum"}, "rule.value",
     "unknown member_tier 'platinum'; allowed: 'silver', 'gold', 'black_gold'"),
    ({"rfm_group": ["important_value", "vip"]}, "rule.rfm_group[1]", "unknown rfm_group"),
    ({"rfm_group": []}, "rule.rfm_group", "the list is empty"),
    ({"lifecycle_stage": 3}, "rule.lifecycle_stage", "got an integer"),
    ({"tag": "zodiac"}, "rule.tag", "unknown tag kind 'zodiac'"),
    ({"tag": "preferred_hour", "value": 24}, "rule.value", "0..23, got 24"),
    ({"tag": "category_affinity", "min_score": 1.5}, "rule.min_score", "0..1"),
    ({"tag": "price_sensitivity", "value": ["high", "extreme"]}, "rule.value[1]",
     "unknown price_sensitivity 'extreme'; allowed: 'high', 'medium', 'low'"),
    ({"not": {"any": [{"tag": "brand_affinity", "value": ["b01", ""]}]}},
     "rule.not.any[0].value[1]", "got ''"),
    ({"registered_within_days": 0}, "rule.registered_within_days", "1..365"),
    (nested_nots(MAX_DEPTH), "rule" + ".not" * MAX_DEPTH, f"at most {MAX_DEPTH} levels"),
    ({"all": [VIEW] * MAX_NODES}, f"rule.all[{MAX_NODES - 1}]", f"at most {MAX_NODES} nodes"),
]  # fmt: skip


@pytest.mark.parametrize(("raw", "path", "detail"), BAD_RULES)
def test_bad_rules_are_rejected_naming_the_wrong_part(raw: Any, path: str, detail: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_rule(raw)
    assert caught.value.code == "bad_rule"
    assert caught.value.attr == path
    assert detail in caught.value.detail


def test_limits_are_inclusive() -> None:
    assert isinstance(parse_rule(nested_nots(MAX_DEPTH - 1)), Not)
    assert len(parse_rule({"all": [VIEW] * (MAX_NODES - 1)}).parts) == MAX_NODES - 1  # type: ignore[union-attr]


def test_parsed_tree_and_canonical_json() -> None:
    rule = parse_rule({"all": [
        {**VIEW, "count": {"gte": 2}, "same": "sku", "where": {"sku": "S1"}, "channel": "app"},
        {"rfm_group": "important_value"},
        {"tag": "preferred_hour", "value": "9"},
    ]})  # fmt: skip
    assert rule == AllOf((
        BehaviourCondition("product_view", 7, CountTest("gte", 2), (("sku", ("S1",)),), "sku",
                           None, ("app",)),
        AttrCondition("rfm_group", "eq", "important_value"),
        parse_rule({"tag": "preferred_hour", "value": [9]}),
    ))  # fmt: skip
    assert rule_to_json(rule) == {"all": [
        {"event": "product_view", "within_days": 7, "count": {"gte": 2},
         "where": {"sku": ["S1"]}, "same": "sku", "channel": ["app"]},
        {"attr": "rfm_group", "op": "eq", "value": "important_value"},
        {"tag": "preferred_hour", "min_score": 0.0, "value": ["9"]},
    ]}  # fmt: skip


def test_every_preset_round_trips_and_reads_in_chinese() -> None:
    assert {"browsed_not_bought", "cart_abandoners", "lapsing_high_value", "new_this_week",
            "black_gold_members"} <= set(PRESETS)  # fmt: skip
    for preset in PRESETS.values():
        rule = parse_rule(preset["rule"])
        assert parse_rule(rule_to_json(rule)) == rule
    summaries = {key: describe(parse_rule(p["rule"])) for key, p in PRESETS.items()}
    assert summaries["browsed_not_bought"] == "近7天同一sku浏览商品至少2次 且 非近7天有支付"
    assert summaries["lapsing_high_value"] == (
        "RFM 分群属于重要保持客户、重要挽留客户 且 非近30天有任意行为")
    assert summaries["new_this_week"] == "近7天注册"
    assert summaries["black_gold_members"] == "会员等级为黑金卡"


@pytest.mark.parametrize(("raw", "text"), [
    ({"any": [{"attr": "city", "op": "in", "value": ["上海", "北京"]},
              {"all": [{"attr": "age", "op": "between", "value": [20, 30]},
                       {"not": {"attr": "gender", "op": "is_null"}}]}]},
     "城市属于上海、北京 或 （年龄介于20与30之间 且 非性别为空）"),
    ({"event": "payment", "within_days": 30, "count": {"eq": 0}}, "近30天没有支付"),
    ({"event": "payment", "within_days": 30, "count": {"lte": 2}, "channel": ["app", "h5"]},
     "近30天支付（渠道app/h5）至多2次"),
    ({"event": "search", "within_days": 3, "where": {"query": "面霜"}, "page": "/search"},
     "近3天有搜索（query=面霜，页面/search*）"),
    ({"tag": "category_affinity", "value": "beauty", "min_score": 0.5},
     "标签「品类偏好」为beauty（得分≥0.5）"),
    ({"attr": "p_alive", "op": "gte", "value": 0.25}, "存活概率≥0.25"),
])  # fmt: skip
def test_describe(raw: dict[str, Any], text: str) -> None:
    assert describe(parse_rule(raw)) == text


# ---------------------------------------------------------------- hand-written members


def test_browsed_not_bought(store: EventStore) -> None:
    view = {"event": "product_view"}
    journeys_for(store, {
        "c1": [{**view, "ts": at(30), "properties": props(sku="S1")},
               {**view, "ts": at(1), "properties": props(sku="S1")}],
        "c2": [{**view, "ts": at(30), "properties": props(sku="S1")},
               {**view, "ts": at(1), "properties": props(sku="S2")}],
        "c3": [{**view, "ts": at(30), "properties": props(sku="S1")},
               {**view, "ts": at(1), "properties": props(sku="S1")},
               {"event": "payment", "ts": at(2), "properties": props(order_id="o1")}],
        # Payment outside the 7 days does not count against c4.
        "c4": [{**view, "ts": at(30), "properties": props(sku="S3")},
               {**view, "ts": at(29), "properties": props(sku="S3")},
               {"event": "payment", "ts": at(24 * 8), "properties": props(order_id="o2")}],
    })  # fmt: skip
    assert members(store, PRESETS["browsed_not_bought"]["rule"]) == ["c1", "c4"]


def test_window_is_open_at_the_start_and_closed_at_the_reference(store: EventStore) -> None:
    journeys_for(store, {
        "c1": [{"event": "login", "ts": at(0)}],
        "c2": [{"event": "login", "ts": at(24)}],
        "c3": [{"event": "login", "ts": at(24 - 1 / 3600)}],
        "c4": [{"event": "login", "ts": at(-1 / 3600)}],
    })  # fmt: skip
    assert members(store, {"event": "login", "within_days": 1}) == ["c1", "c3"]
    assert members(store, {"event": "login", "within_days": 1, "count": {"eq": 0}}) == [
        "c2", "c4"]


def test_anonymous_events_count_for_their_linked_customer_only(store: EventStore) -> None:
    view = {"event": "product_view", "properties": props(sku="S1")}
    journeys_for(store, {
        "a1": [{**view, "ts": at(3), "anonymous_id": "a1"},
               {**view, "ts": at(2), "anonymous_id": "a1"},
               {"event": "login", "ts": at(1), "anonymous_id": "a1", "customer_id": "c7"}],
        "a2": [{**view, "ts": at(3), "anonymous_id": "a2"},
               {**view, "ts": at(2), "anonymous_id": "a2"}],
    })  # fmt: skip
    rule = {"event": "product_view", "within_days": 1, "count": {"gte": 2}, "same": "sku"}
    assert members(store, rule) == ["c7"]
    assert members(store, {"not": rule}) == []


def test_not_is_over_every_known_customer(store: EventStore) -> None:
    load_dims(store, [{"customer_id": "c1"}], [{"customer_id": "c2", "kind": "brand_affinity",
                                                "value": "b01", "score": 0.5}])  # fmt: skip
    journeys_for(store, {"c3": [{"event": "login", "ts": at(24 * 100)}],
                         "a9": [{"event": "login", "ts": at(1), "anonymous_id": "a9"}]})
    nobody = {"event": "payment", "within_days": 7}
    assert members(store, {"not": nobody}) == ["c1", "c2", "c3"]
    assert members(store, nobody) == []
    # c1's profile has no city; c2 and c3 have no profile, so "city is null" misses them.
    assert members(store, {"all": [{"not": nobody}, {"not": {"attr": "city", "op": "is_null"}}]}
                   ) == ["c2", "c3"]  # fmt: skip
    assert members(store, {"any": [nobody, {"event": "signup", "within_days": 1}]}) == []


def test_not_over_an_empty_store_is_empty(store: EventStore) -> None:
    assert members(store, {"not": {"event": "payment", "within_days": 7}}) == []


def test_attributes_tags_and_registration(store: EventStore) -> None:
    load_dims(store, [
        {"customer_id": "c1", "city": "上海", "birth_year": 1996, "member_tier": "black_gold",
         "registered_at": REF - timedelta(days=2), "rfm_group": "important_keep",
         "p_alive": 0.9, "clv_fen": 120_000},
        {"customer_id": "c2", "city": "北京", "birth_year": 1980, "member_tier": "gold",
         "registered_at": REF - timedelta(days=7), "rfm_group": "important_retain",
         "p_alive": 0.2},
        {"customer_id": "c3", "registered_at": REF + timedelta(seconds=1)},
    ], [
        {"customer_id": "c1", "kind": "category_affinity", "value": "beauty", "score": 0.8},
        {"customer_id": "c2", "kind": "category_affinity", "value": "beauty", "score": 0.3},
        {"customer_id": "c2", "kind": "preferred_hour", "value": "21", "score": 0.6},
    ])  # fmt: skip
    assert members(store, {"attr": "age", "op": "lte", "value": 30}) == ["c1"]
    assert members(store, {"attr": "city", "op": "ne", "value": "上海"}) == ["c2"]
    assert members(store, {"attr": "city", "op": "not_in", "value": ["北京"]}) == ["c1"]
    assert members(store, {"not": {"attr": "city", "op": "eq", "value": "上海"}}) == ["c2", "c3"]
    assert members(store, {"attr": "city", "op": "is_null"}) == ["c3"]
    assert members(store, {"attr": "clv_fen", "op": "gte", "value": 120_000}) == ["c1"]
    assert members(store, {"attr": "p_alive", "op": "between", "value": [0.2, 0.5]}) == ["c2"]
    assert members(store, {"attr": "registered_at", "op": "lt",
                           "value": "2026-11-18T20:00:00+08:00"}) == ["c2"]  # fmt: skip
    assert members(store, {"registered_within_days": 7}) == ["c1"]
    assert members(store, {"member_tier": "black_gold"}) == ["c1"]
    assert members(store, {"member_tier": None}) == ["c3"]
    assert members(store, {"rfm_group": ["important_keep", "important_retain"]}) == ["c1", "c2"]
    assert members(store, {"tag": "category_affinity", "value": "beauty"}) == ["c1", "c2"]
    assert members(store, {"tag": "category_affinity", "min_score": 0.5}) == ["c1"]
    assert members(store, {"tag": "preferred_hour", "value": 21}) == ["c2"]
    assert members(store, PRESETS["lapsing_high_value"]["rule"]) == ["c1", "c2"]


def test_where_page_and_channel_filters(store: EventStore) -> None:
    pay = {"event": "payment", "page": "/pay"}
    journeys_for(store, {
        "c1": [{**pay, "ts": at(1), "channel": "app",
                "properties": props(order_id="o1", amount_fen=100, method="alipay")}],
        "c2": [{**pay, "ts": at(1), "channel": "h5",
                "properties": props(order_id="o2", amount_fen=2500, method="wxpay")}],
        "c3": [{"event": "search", "ts": at(1), "page": "/search/results", "channel": "h5",
                "properties": props(query="敏感肌面霜", first=True)}],
    })  # fmt: skip
    assert members(store, {"event": "payment", "within_days": 1,
                           "where": {"amount_fen": [100, 99.5]}}) == ["c1"]  # fmt: skip
    assert members(store, {"event": "payment", "within_days": 1,
                           "where": {"method": "wxpay"}}) == ["c2"]  # fmt: skip
    assert members(store, {"event": "search", "within_days": 1,
                           "where": {"query": "敏感肌面霜", "first": True}}) == ["c3"]
    assert members(store, {"event": "*", "within_days": 1, "channel": "h5"}) == ["c2", "c3"]
    assert members(store, {"event": "*", "within_days": 1, "page": "/search"}) == ["c3"]


def test_reference_needs_a_time_zone(store: EventStore) -> None:
    with pytest.raises(ValidationFailed) as caught:
        compile_rule(store, parse_rule(VIEW), reference=datetime(2026, 11, 20))
    assert caught.value.attr == "reference"


# ----------------------------------------------------------- brute-force reference


NAMES = ["product_view", "payment", "login"]
SKUS = ["S1", "S2", "上海"]


def reference_members(raw: dict[str, Any], rows: list[dict[str, Any]],
                      customers: list[dict[str, Any]], tags: list[dict[str, Any]]) -> set[str]:
    """The members by definition (docs/segments.md), computed in plain Python."""
    links: dict[str, str] = {}
    for row in rows:
        if row.get("anonymous_id") and row.get("customer_id"):
            links.setdefault(row["anonymous_id"], row["customer_id"])
    everyone = ({c["customer_id"] for c in customers} | {t["customer_id"] for t in tags}
                | {r["customer_id"] for r in rows if r.get("customer_id")} | set(links.values()))
    profiles = {c["customer_id"]: c for c in customers}

    def person(row: dict[str, Any]) -> str | None:
        return row.get("customer_id") or links.get(row.get("anonymous_id") or "")

    def behaviour(rule: BehaviourCondition) -> set[str]:
        start = REF - timedelta(days=rule.within_days)
        counts: Counter[tuple[str, str]] = Counter()
        for row in rows:
            found = json.loads(row.get("properties") or "{}")
            who = person(row)
            if who is None or not start < row["ts"] <= REF or (
                    rule.event != "*" and row["name"] != rule.event) or (
                    rule.channels is not None and row.get("channel") not in rule.channels) or (
                    rule.page is not None and not (row.get("page") or "").startswith(rule.page)):
                continue
            if not all(key in found and any(same_json(found[key], v) for v in values)
                       for key, values in rule.where):
                continue
            if rule.same is None:
                counts[(who, "")] += 1
            elif isinstance(found.get(rule.same), str):
                counts[(who, found[rule.same])] += 1
        most: dict[str, int] = {}
        for (who, _), n in counts.items():
            most[who] = max(most.get(who, 0), n)
        return {who for who in everyone if rule.count.holds(most.get(who, 0))}

    def attr(rule: dict[str, Any]) -> set[str]:
        name, op, value = rule["attr"], rule["op"], rule.get("value")
        if name == "registered_at" and value is not None:
            value = [datetime.fromisoformat(v) for v in value] if isinstance(
                value, list) else datetime.fromisoformat(value)  # fmt: skip
        found = set()
        for who, profile in profiles.items():
            have = profile.get("birth_year" if name == "age" else name)
            if name == "age" and have is not None:
                have = REF.year - have
            if compare(op, have, value):
                found.add(who)
        return found

    def node(rule: dict[str, Any]) -> set[str]:
        if "all" in rule:
            result = set(everyone)
            for part in rule["all"]:
                result &= node(part)
            return result
        if "any" in rule:
            return set().union(*(node(part) for part in rule["any"]))
        if "not" in rule:
            return everyone - node(rule["not"])
        if "event" in rule:
            return behaviour(parse_rule(rule))  # type: ignore[arg-type]
        if "tag" in rule:
            values, low = rule.get("value"), rule.get("min_score", 0)
            return {t["customer_id"] for t in tags if t["kind"] == rule["tag"]
                    and (values is None or t["value"] in values) and t["score"] >= low}
        if "registered_within_days" in rule:
            since = REF - timedelta(days=rule["registered_within_days"])
            return {c["customer_id"] for c in customers
                    if c.get("registered_at") and since < c["registered_at"] <= REF}
        return attr(rule)

    return node(rule_to_json(parse_rule(raw)))


def compare(op: str, have: Any, value: Any) -> bool:
    """An attribute test in SQL's terms: comparisons are false on a null value."""
    if op in ("is_null", "not_null"):
        return (have is None) == (op == "is_null")
    if have is None:
        return False
    if op in ("in", "not_in"):
        return (have in value) == (op == "in")
    if op == "between":
        return bool(value[0] <= have <= value[1])
    tests: dict[str, Callable[[Any, Any], Any]] = {
        "eq": operator.eq, "ne": operator.ne, "gt": operator.gt, "gte": operator.ge,
        "lt": operator.lt, "lte": operator.le}  # fmt: skip
    return bool(tests[op](have, value))


def same_json(actual: Any, wanted: Any) -> bool:
    """JSON equality by type: strings, booleans and numbers never equal one another."""
    if isinstance(wanted, bool) or isinstance(actual, bool):
        return actual is wanted
    if isinstance(wanted, str) or isinstance(actual, str):
        return bool(actual == wanted)
    return bool(float(actual) == float(wanted))


@st.composite
def event_rows(draw: st.DrawFn) -> list[dict[str, Any]]:
    rows = []
    for i in range(draw(st.integers(0, 25))):
        who = draw(st.sampled_from(["c0", "c1", "c2", "a0", "a1"]))
        row: dict[str, Any] = {
            "event_id": f"e{i:02d}", "name": draw(st.sampled_from(NAMES)),
            "ts": REF - timedelta(hours=12 * draw(st.integers(-1, 6))),
            "channel": draw(st.sampled_from([None, "app", "h5"])),
            "page": draw(st.sampled_from([None, "/product/S1", "/pay"])),
            "properties": props(**draw(st.fixed_dictionaries({}, optional={
                "sku": st.sampled_from(SKUS), "amount_fen": st.sampled_from([1, 100]),
                "first": st.booleans()}))),
        }  # fmt: skip
        if who.startswith("a"):
            row["anonymous_id"] = who
            if draw(st.integers(0, 3)) == 0:
                row["customer_id"] = draw(st.sampled_from(["c1", "c3"]))
        else:
            row["customer_id"] = who
        rows.append(row)
    return rows


@st.composite
def profiles(draw: st.DrawFn) -> list[dict[str, Any]]:
    ids = draw(st.lists(st.sampled_from(["c0", "c1", "c4", "c5"]), unique=True))
    return [{
        "customer_id": who,
        "city": draw(st.sampled_from([None, "上海", "北京"])),
        "birth_year": draw(st.sampled_from([None, 1980, 1996, 2001])),
        "registered_at": draw(st.sampled_from([None, REF, REF - timedelta(days=1),
                                               REF - timedelta(days=3)])),
        "rfm_group": draw(st.sampled_from([None, "important_value", "general_keep"])),
        "p_alive": draw(st.sampled_from([None, 0.1, 0.5, 0.9])),
        "member_tier": draw(st.sampled_from([None, "gold", "black_gold"])),
    } for who in ids]  # fmt: skip


tag_rows = st.lists(st.fixed_dictionaries({
    "customer_id": st.sampled_from(["c0", "c2", "c6"]),
    "kind": st.sampled_from(["category_affinity", "price_sensitivity"]),
    "value": st.sampled_from(["beauty", "high"]),
    "score": st.sampled_from([0.2, 0.7]),
}), unique_by=lambda t: (t["customer_id"], t["kind"], t["value"]))  # fmt: skip

behaviours = st.fixed_dictionaries(
    {"event": st.sampled_from([*NAMES, "*"]), "within_days": st.integers(1, 3)},
    optional={
        "count": st.sampled_from(["gte", "lte", "eq"]).flatmap(
            lambda op: st.fixed_dictionaries({op: st.integers(0, 3)})),
        "where": st.sampled_from([{"sku": "S1"}, {"sku": ["S2", "上海"]}, {"amount_fen": 100},
                                  {"first": True}, {"amount_fen": [1, 100], "first": False}]),
        "same": st.sampled_from(["sku", "amount_fen"]),
        "channel": st.sampled_from(["app", ["app", "h5"]]),
        "page": st.sampled_from(["/product", "/pay"]),
    },
)  # fmt: skip
attributes = st.sampled_from([
    {"attr": "city", "op": "eq", "value": "上海"}, {"attr": "city", "op": "ne", "value": "上海"},
    {"attr": "city", "op": "not_in", "value": ["北京"]}, {"attr": "city", "op": "is_null"},
    {"attr": "birth_year", "op": "between", "value": [1990, 2001]},
    {"attr": "age", "op": "gt", "value": 29}, {"attr": "p_alive", "op": "gte", "value": 0.5},
    {"attr": "registered_at", "op": "lt", "value": REF.isoformat()},
    {"attr": "member_tier", "op": "not_null"}, {"member_tier": "black_gold"},
    {"rfm_group": ["important_value", "general_keep"]}, {"registered_within_days": 1},
    {"tag": "category_affinity"}, {"tag": "price_sensitivity", "value": "high"},
    {"tag": "category_affinity", "value": ["beauty"], "min_score": 0.5},
])  # fmt: skip
rules = st.recursive(
    behaviours | attributes,
    lambda inner: st.lists(inner, min_size=1, max_size=3).map(lambda parts: {"all": parts})
    | st.lists(inner, min_size=1, max_size=3).map(lambda parts: {"any": parts})
    | inner.map(lambda part: {"not": part}),
    max_leaves=6,
)  # fmt: skip


@settings(max_examples=30, deadline=None)
@given(rows=event_rows(), customers=profiles(), tags=tag_rows,
       raws=st.lists(rules, min_size=1, max_size=3))
def test_members_match_a_brute_force_reference(
    backend_url: str, rows: list[dict[str, Any]], customers: list[dict[str, Any]],
    tags: list[dict[str, Any]], raws: list[dict[str, Any]],
) -> None:
    with open_store(backend_url) as store:
        ingest_rows(store, rows)
        load_dims(store, customers, tags)
        for raw in raws:
            expected = sorted(reference_members(raw, rows, customers, tags))
            assert evaluate(store, parse_rule(raw), reference=REF) == expected, raw


# ------------------------------------------------------------------------------- Spark


@pytest.fixture(scope="module")
def spark_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The process's local Spark session (started here if none is); skips without pyspark
    or Java. A session started by another module is left running for it."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        pytest.skip("pyspark is not installed (pip install -e '.[spark]')")
    java_home = os.environ.get("JAVA_HOME")
    if shutil.which("java") is None and not (java_home and Path(java_home, "bin/java").exists()):
        pytest.skip("Spark needs Java 17: no java on PATH and no JAVA_HOME")
    from shequ.analytics.spark import local_session

    running = SparkSession.getActiveSession()
    # A few rows: planning, code generation and JIT warm-up would cost more than they save.
    session = local_session(shuffle_partitions=2, conf={
        "spark.sql.adaptive.enabled": "false", "spark.sql.codegen.wholeStage": "false",
        "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1",
        "spark.sql.warehouse.dir": str(tmp_path_factory.mktemp("spark-warehouse"))})
    yield session
    if running is None:
        session.stop()


@pytest.mark.spark
def test_segments_answer_alike_on_spark(spark_session: Any, tmp_path: Path) -> None:
    from shequ.analytics.spark import SparkEventStore

    view = {"event": "product_view"}
    with open_store(f"duckdb://{tmp_path}/events.duckdb") as duck:
        journeys_for(duck, {
            "c1": [{**view, "ts": at(30), "properties": props(sku="S1")},
                   {**view, "ts": at(1), "properties": props(sku="S1")}],
            "a1": [{**view, "ts": at(3), "anonymous_id": "a1", "properties": props(sku="S2")},
                   {**view, "ts": at(2), "anonymous_id": "a1", "properties": props(sku="S2")},
                   {"event": "add_to_cart", "ts": at(2), "anonymous_id": "a1",
                    "customer_id": "c2"}],
            "c3": [{"event": "payment", "ts": at(2)}],
        })  # fmt: skip
        load_dims(duck, [{"customer_id": "c4", "member_tier": "black_gold",
                          "rfm_group": "important_keep", "registered_at": REF}])
        spark = SparkEventStore.from_store(duck, spark_session)
        try:
            # A positive answer (semi/anti joins, `same`) and a negative one (population).
            browsed = parse_rule(PRESETS["browsed_not_bought"]["rule"])
            lapsing = parse_rule(PRESETS["lapsing_high_value"]["rule"])
            assert evaluate(duck, browsed, reference=REF) == ["c1", "c2"]
            assert evaluate(spark, browsed, reference=REF) == ["c1", "c2"]
            assert evaluate(duck, lapsing, reference=REF) == ["c4"]
            assert count(spark, lapsing, reference=REF) == 1
        finally:
            spark.close()


def test_daypart_names_match_the_tags_module() -> None:
    from shequ.analytics import segments
    from shequ.analytics.tags import DAYPARTS
    from shequ.core.errors import ValidationFailed

    assert tuple(name for name, _start, _end in DAYPARTS) == segments.DAYPARTS
    rule = segments.parse_rule({"tag": "preferred_daypart", "value": "晚上"})
    assert segments.rule_to_json(rule)["tag"] == "preferred_daypart"
    with pytest.raises(ValidationFailed) as caught:
        segments.parse_rule({"tag": "preferred_daypart", "value": "半夜"})
    assert caught.value.attr == "rule.value"
