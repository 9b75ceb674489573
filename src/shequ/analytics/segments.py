"""Segments: a declarative rule language over customers, compiled to one ibis plan.

A rule is JSON (as stored and sent over the API) parsed into a frozen tree
(:func:`parse_rule`): ``all``/``any``/``not`` over conditions on profile attributes
(``dim_customers``), behaviour in a window (``events``), tags (``dim_customer_tags``) and
registration recency. :func:`compile_rule` turns the tree into an ibis expression of
member ids, so a segment runs wherever the events are (DuckDB, PostgreSQL, Spark); the
language reference is ``docs/segments.md``.

Every node compiles to a set of customer ids that is either *positive* (the members) or
*negative* (everyone but these), so a conjunction is a chain of semi and anti joins over
its positive parts and the whole population is read only when the answer itself is
negative (``not`` at the top, or ``all`` of negative parts only).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, cast, get_args

import ibis
import ibis.expr.types as ir

from shequ.analytics.trends import numeric_property
from shequ.core.errors import ValidationFailed

if TYPE_CHECKING:
    from shequ.analytics.spark import ReadStore

CODE = "bad_rule"
MAX_DEPTH = 8
MAX_NODES = 64
MAX_LIST = 1000
MAX_WINDOW_DAYS = 365
MAX_COUNT = 100_000
ANY_EVENT = "*"

# The eight RFM group codes of shequ.stats.rfm.GROUPS (analytics may not import stats; a
# test keeps the two lists equal), with their console labels.
RFM_GROUPS: dict[str, str] = {
    "important_value": "重要价值客户", "important_develop": "重要发展客户",
    "important_keep": "重要保持客户", "important_retain": "重要挽留客户",
    "general_value": "一般价值客户", "general_develop": "一般发展客户",
    "general_keep": "一般保持客户", "general_retain": "一般挽留客户",
}  # fmt: skip
LIFECYCLE_STAGES = {"new": "新客", "active": "活跃", "paying": "付费", "loyal": "忠诚",
                    "advocate": "拥护者", "dormant": "沉睡"}  # fmt: skip
MEMBER_TIERS = {"silver": "银卡", "gold": "金卡", "black_gold": "黑金卡"}
VALUE_TIERS = {"t1": "核心高价值", "t2": "高价值", "t3": "潜力", "t4": "普通", "t5": "低价值"}
PRICE_SENSITIVITY = ("high", "medium", "low")
GENDERS = {"f": "女", "m": "男"}
TAG_KINDS = {"category_affinity": "品类偏好", "brand_affinity": "品牌偏好",
             "price_sensitivity": "价格敏感度", "preferred_channel": "偏好渠道",
             "preferred_hour": "偏好时段", "preferred_daypart": "偏好时间段"}  # fmt: skip
# The daypart names analytics.tags writes (凌晨 0-6, 上午 6-11, 中午 11-13, 下午 13-18,
# 晚上 18-22, 深夜 22-24).
DAYPARTS = ("凌晨", "上午", "中午", "下午", "晚上", "深夜")

AttrKind = Literal["text", "enum", "int", "float", "time"]
Op = Literal["eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "between", "is_null",
             "not_null"]  # fmt: skip
CountOp = Literal["gte", "lte", "eq"]
Scalar: TypeAlias = str | int | float | bool | datetime
OPS: tuple[str, ...] = get_args(Op)
_OPS_FOR: dict[AttrKind, tuple[str, ...]] = {
    "text": ("eq", "ne", "in", "not_in", "is_null", "not_null"),
    "enum": ("eq", "ne", "in", "not_in", "is_null", "not_null"),
    "int": OPS,
    # Equality on a float (p_alive) is a trap: ranges only.
    "float": ("gt", "gte", "lt", "lte", "between", "is_null", "not_null"),
    "time": ("gt", "gte", "lt", "lte", "between", "is_null", "not_null"),
}


@dataclass(frozen=True, slots=True)
class Attribute:
    """A ``dim_customers`` column (or ``age``, derived from ``birth_year``) rules may test."""

    label: str
    kind: AttrKind
    values: Mapping[str, str] | None = None  # allowed values → labels, for enums


ATTRIBUTES: dict[str, Attribute] = {
    "customer_id": Attribute("客户编号", "text"),
    "gender": Attribute("性别", "enum", GENDERS),
    "city": Attribute("城市", "text"),
    "birth_year": Attribute("出生年份", "int"),
    "age": Attribute("年龄", "int"),
    "registered_at": Attribute("注册时间", "time"),
    "acquisition_channel": Attribute("获客渠道", "text"),
    "recency_days": Attribute("距上次购买天数", "int"),
    "frequency": Attribute("购买次数", "int"),
    "monetary_fen": Attribute("消费金额（分）", "int"),
    "r_score": Attribute("R 分", "int"),
    "f_score": Attribute("F 分", "int"),
    "m_score": Attribute("M 分", "int"),
    "rfm_group": Attribute("RFM 分群", "enum", RFM_GROUPS),
    "clv_fen": Attribute("生命周期价值（分）", "int"),
    "p_alive": Attribute("存活概率", "float"),
    "value_tier": Attribute("价值层级", "enum", VALUE_TIERS),
    "lifecycle_stage": Attribute("生命周期阶段", "enum", LIFECYCLE_STAGES),
    "member_tier": Attribute("会员等级", "enum", MEMBER_TIERS),
}
SHORTCUTS = ("rfm_group", "lifecycle_stage", "member_tier", "value_tier")


# ------------------------------------------------------------------------- the rule tree


@dataclass(frozen=True, slots=True)
class AllOf:
    """Customers matching every part."""

    parts: tuple[Rule, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    """Customers matching at least one part."""

    parts: tuple[Rule, ...]


@dataclass(frozen=True, slots=True)
class Not:
    """Known customers not matching ``part``."""

    part: Rule


@dataclass(frozen=True, slots=True)
class AttrCondition:
    """A profile attribute test; ``value`` is None (null tests), a scalar, or a tuple (the
    list of ``in``/``not_in``, the inclusive bounds of ``between``)."""

    attr: str
    op: Op
    value: Scalar | tuple[Scalar, ...] | None


@dataclass(frozen=True, slots=True)
class CountTest:
    """How many matching events (with ``same``: the most of any one property value)."""

    op: CountOp
    n: int

    def holds(self, count: int) -> bool:
        """Whether ``count`` passes the test."""
        if self.op == "gte":
            return count >= self.n
        return count <= self.n if self.op == "lte" else count == self.n


@dataclass(frozen=True, slots=True)
class BehaviourCondition:
    """Events named ``event`` (``*``: any) in ``(reference - within_days, reference]``
    passing the filters, counted per customer and tested by ``count``."""

    event: str
    within_days: int
    count: CountTest = CountTest("gte", 1)
    where: tuple[tuple[str, tuple[str | int | float | bool, ...]], ...] = ()
    same: str | None = None
    page: str | None = None
    channels: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class TagCondition:
    """A tag of ``kind`` (with one of ``values`` when given) scoring at least ``min_score``."""

    kind: str
    values: tuple[str, ...] | None = None
    min_score: float = 0.0


@dataclass(frozen=True, slots=True)
class RegisteredWithin:
    """Registered in ``(reference - days, reference]``."""

    days: int


Rule: TypeAlias = (
    AllOf | AnyOf | Not | AttrCondition | BehaviourCondition | TagCondition | RegisteredWithin
)


# -------------------------------------------------------------------------------- parsing


def _fail(path: str, detail: str) -> ValidationFailed:
    return ValidationFailed(CODE, detail, path)


_KINDS = ("all", "any", "not", "attr", "event", "tag", "registered_within_days", *SHORTCUTS)
_FIELDS: dict[str, tuple[str, ...]] = {
    "attr": ("attr", "op", "value"),
    "event": ("event", "within_days", "count", "where", "same", "page", "channel"),
    "tag": ("tag", "value", "min_score"),
}
_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_PROPERTY = re.compile(r"[a-z_][a-z0-9_]{0,63}")


class _Parser:
    """Parses one raw rule, counting nodes; every error names the path of the bad part."""

    def __init__(self) -> None:
        self.nodes = 0

    def rule(self, raw: Any, path: str, depth: int) -> Rule:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _fail(path, f"a rule may have at most {MAX_NODES} nodes")
        if depth > MAX_DEPTH:
            raise _fail(path, f"rules nest at most {MAX_DEPTH} levels deep")
        if not isinstance(raw, Mapping):
            raise _fail(path, f"expected an object with one of {_quoted(_KINDS)}, "
                              f"got {_type_name(raw)}")  # fmt: skip
        kinds = [key for key in _KINDS if key in raw]
        if len(kinds) != 1:
            found = f"{len(kinds)}: {_quoted(kinds)}" if kinds else f"none of {_quoted(_KINDS)}"
            raise _fail(path, f"a rule has exactly one kind key, found {found}")
        kind = kinds[0]
        _only(raw, _FIELDS.get(kind, (kind,)), path)
        if kind in ("all", "any"):
            parts = _non_empty_list(raw[kind], f"{path}.{kind}")
            parsed = tuple(self.rule(part, f"{path}.{kind}[{i}]", depth + 1)
                           for i, part in enumerate(parts))  # fmt: skip
            return AllOf(parsed) if kind == "all" else AnyOf(parsed)
        if kind == "not":
            return Not(self.rule(raw["not"], f"{path}.not", depth + 1))
        if kind == "attr":
            return _attr_condition(raw, path)
        if kind == "event":
            return _behaviour(raw, path)
        if kind == "tag":
            return _tag(raw, path)
        if kind == "registered_within_days":
            return RegisteredWithin(_window(raw[kind], f"{path}.{kind}"))
        value = raw[kind]  # a shortcut: null tests for null, a list for membership
        op: Op = "is_null" if value is None else "in" if isinstance(value, list) else "eq"
        return _attr_condition({"attr": kind, "op": op, "value": value}, path, shortcut=True)


def parse_rule(raw: Any) -> Rule:
    """The rule tree of ``raw`` (JSON-like dicts and lists).

    Raises :class:`ValidationFailed` (code ``bad_rule``) whose ``attr`` is the path of the
    wrong part (``rule.all[1].not.within_days``) and whose detail says what is allowed.
    """
    return _Parser().rule(raw, "rule", 1)


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number", type(None): "null"}.get(
                type(value), type(value).__name__)  # fmt: skip


def _quoted(names: Sequence[str]) -> str:
    return ", ".join(repr(name) for name in names)


def _only(raw: Mapping[str, Any], allowed: Sequence[str], path: str) -> None:
    for key in raw:
        if key not in allowed:
            raise _fail(f"{path}.{key}", f"unknown field; allowed here: {_quoted(allowed)}")


def _non_empty_list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise _fail(path, f"expected a non-empty list, got {_type_name(value)}"
                    if not isinstance(value, list) else "the list is empty")  # fmt: skip
    if len(value) > MAX_LIST:
        raise _fail(path, f"at most {MAX_LIST} items, got {len(value)}")
    return value


def _integer(value: Any, path: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(path, f"expected an integer {low}..{high}, got {_type_name(value)}")
    if not low <= value <= high:
        raise _fail(path, f"expected an integer {low}..{high}, got {value}")
    return value


def _window(value: Any, path: str) -> int:
    return _integer(value, path, 1, MAX_WINDOW_DAYS)


def _text(value: Any, path: str, max_length: int = 200) -> str:
    if not isinstance(value, str) or not value or len(value) > max_length:
        got = repr(value) if isinstance(value, str) else _type_name(value)
        raise _fail(path, f"expected a string of 1-{max_length} characters, got {got}")
    return value


def _attr_value(value: Any, spec: Attribute, name: str, path: str) -> Scalar:
    """One value of attribute ``name``, checked against the attribute's kind."""
    if spec.kind in ("text", "enum"):
        text = _text(value, path)
        if spec.values is not None and text not in spec.values:
            raise _fail(path, f"unknown {name} {text!r}; allowed: {_quoted(list(spec.values))}")
        return text
    if spec.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(path, f"expected an integer, got {_type_name(value)}")
        return value
    if spec.kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _fail(path, f"expected a number, got {_type_name(value)}")
        return float(value)
    if not isinstance(value, str):
        raise _fail(path, f"expected an ISO 8601 time with offset, got {_type_name(value)}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise _fail(path, f"expected an ISO 8601 time with offset such as "
                          f"'2026-11-20T00:00:00+08:00', got {value!r}")  # fmt: skip
    # UTC, as stored: the backends' literals only know zone names, not bare offsets.
    return moment.astimezone(UTC)


def _attr_condition(raw: Mapping[str, Any], path: str, *, shortcut: bool = False) -> Rule:
    name = raw["attr"]
    spec = ATTRIBUTES.get(name) if isinstance(name, str) else None
    value_path = f"{path}.{name}" if shortcut else f"{path}.value"
    if spec is None:
        raise _fail(f"{path}.attr", f"unknown attribute {name!r}; allowed: "
                                    f"{_quoted(list(ATTRIBUTES))}")  # fmt: skip
    op = raw.get("op")
    allowed = _OPS_FOR[spec.kind]
    if op not in allowed:
        raise _fail(f"{path}.op", f"{'missing op' if op is None else f'unknown op {op!r}'} "
                                  f"for {name}; allowed: {_quoted(allowed)}")  # fmt: skip
    value = raw.get("value")
    if op in ("is_null", "not_null"):
        if value is not None:
            raise _fail(value_path, f"{op} takes no value")
        return AttrCondition(name, op, None)
    if value is None:
        raise _fail(value_path, f"{op} needs a value")
    if op in ("in", "not_in"):
        items = _non_empty_list(value, value_path)
        return AttrCondition(name, op, tuple(
            _attr_value(item, spec, name, f"{value_path}[{i}]") for i, item in enumerate(items)))
    if op == "between":
        if not isinstance(value, list) or len(value) != 2:
            raise _fail(value_path, "between takes [low, high] (both inclusive)")
        low, high = (_attr_value(item, spec, name, f"{value_path}[{i}]")
                     for i, item in enumerate(value))  # fmt: skip
        if low > high:  # type: ignore[operator]
            raise _fail(value_path, f"low {value[0]!r} is above high {value[1]!r}")
        return AttrCondition(name, op, (low, high))
    if isinstance(value, list):
        raise _fail(value_path, f"{op} takes one value; use 'in' for a list")
    return AttrCondition(name, cast(Op, op), _attr_value(value, spec, name, value_path))


def _count(raw: Any, path: str) -> CountTest:
    if not isinstance(raw, Mapping) or len(raw) != 1:
        raise _fail(path, "expected one of {'gte': n}, {'lte': n}, {'eq': n}")
    ((op, n),) = raw.items()
    if op not in get_args(CountOp):
        raise _fail(f"{path}.{op}", "unknown count test; allowed: 'gte', 'lte', 'eq'")
    return CountTest(op, _integer(n, f"{path}.{op}", 0, MAX_COUNT))


def _property(value: Any, path: str) -> str:
    if not isinstance(value, str) or not _PROPERTY.fullmatch(value):
        raise _fail(path, f"a property name matches [a-z_][a-z0-9_]* (at most 64), "
                          f"got {value!r}")  # fmt: skip
    return value


def _where(raw: Any, path: str) -> tuple[tuple[str, tuple[str | int | float | bool, ...]], ...]:
    if not isinstance(raw, Mapping) or not raw:
        raise _fail(path, "expected a non-empty object {property: value or list of values}")
    filters = []
    for key in sorted(raw):
        key_path = f"{path}.{key}"
        _property(key, key_path)
        value = raw[key]
        items = _non_empty_list(value, key_path) if isinstance(value, list) else [value]
        kinds = set()
        for i, item in enumerate(items):
            item_path = f"{key_path}[{i}]" if isinstance(value, list) else key_path
            if not isinstance(item, str | int | float) or item == "" or (
                    isinstance(item, float) and not math.isfinite(item)):
                raise _fail(item_path, f"expected a non-empty string, a number or a boolean, "
                                       f"got {_type_name(item)}")  # fmt: skip
            kinds.add(str if isinstance(item, str) else bool if isinstance(item, bool) else float)
        if len(kinds) > 1:
            raise _fail(key_path, "the values of one property must share a type")
        filters.append((key, tuple(items)))
    return tuple(filters)


def _behaviour(raw: Mapping[str, Any], path: str) -> BehaviourCondition:
    event = raw["event"]
    if event != ANY_EVENT and not (isinstance(event, str) and _NAME.fullmatch(event)):
        raise _fail(f"{path}.event", f"an event name matches [a-z][a-z0-9_]* (at most 64) "
                                     f"or is '*' for any event, got {event!r}")  # fmt: skip
    if "within_days" not in raw:
        raise _fail(f"{path}.within_days", f"missing: the window in days, 1..{MAX_WINDOW_DAYS}")
    channels = raw.get("channel")
    if channels is not None:
        listed = isinstance(channels, list)
        items = _non_empty_list(channels, f"{path}.channel") if listed else [channels]
        channels = tuple(_text(item, f"{path}.channel[{i}]" if listed else f"{path}.channel", 64)
                         for i, item in enumerate(items))  # fmt: skip
    page = raw.get("page")
    if page is not None and not (isinstance(page, str) and page.startswith("/")
                                 and len(page) <= 2048):  # fmt: skip
        raise _fail(f"{path}.page", f"a page prefix starts with '/', got {page!r}")
    return BehaviourCondition(
        event=event, within_days=_window(raw["within_days"], f"{path}.within_days"),
        count=_count(raw["count"], f"{path}.count") if "count" in raw else CountTest("gte", 1),
        where=_where(raw["where"], f"{path}.where") if "where" in raw else (),
        same=_property(raw["same"], f"{path}.same") if "same" in raw else None,
        page=page, channels=channels,
    )  # fmt: skip


def _tag(raw: Mapping[str, Any], path: str) -> TagCondition:
    kind = raw["tag"]
    if kind not in TAG_KINDS:
        raise _fail(f"{path}.tag", f"unknown tag kind {kind!r}; allowed: "
                                   f"{_quoted(list(TAG_KINDS))}")  # fmt: skip
    values = raw.get("value")
    if values is not None:
        listed = isinstance(values, list)
        items = _non_empty_list(values, f"{path}.value") if listed else [values]
        values = tuple(_tag_value(item, kind, f"{path}.value[{i}]" if listed else f"{path}.value")
                       for i, item in enumerate(items))  # fmt: skip
    score = raw.get("min_score", 0.0)
    if isinstance(score, bool) or not isinstance(score, int | float) or not 0 <= score <= 1:
        raise _fail(f"{path}.min_score", f"expected a number 0..1, got {score!r}")
    return TagCondition(kind, values, float(score))


def _tag_value(value: Any, kind: str, path: str) -> str:
    if kind == "preferred_hour":
        hour = _integer(int(value) if isinstance(value, str) and value.isdigit() else value,
                        path, 0, 23)  # fmt: skip
        return str(hour)
    text = _text(value, path)
    if kind == "preferred_daypart" and text not in DAYPARTS:
        raise _fail(path, f"unknown preferred_daypart {text!r}; allowed: "
                          f"{_quoted(DAYPARTS)}")  # fmt: skip
    if kind == "price_sensitivity" and text not in PRICE_SENSITIVITY:
        raise _fail(path, f"unknown price_sensitivity {text!r}; allowed: "
                          f"{_quoted(PRICE_SENSITIVITY)}")  # fmt: skip
    return text


# ------------------------------------------------------------------- canonical JSON form


def rule_to_json(rule: Rule) -> dict[str, Any]:
    """The canonical JSON form of ``rule`` (shortcuts spelled as ``attr`` conditions,
    lists always lists, defaults left out); ``parse_rule`` of it gives ``rule`` back."""
    if isinstance(rule, AllOf | AnyOf):
        return {"all" if isinstance(rule, AllOf) else "any": [rule_to_json(p) for p in rule.parts]}
    if isinstance(rule, Not):
        return {"not": rule_to_json(rule.part)}
    if isinstance(rule, AttrCondition):
        out: dict[str, Any] = {"attr": rule.attr, "op": rule.op}
        if isinstance(rule.value, tuple):
            out["value"] = [_json_scalar(v) for v in rule.value]
        elif rule.value is not None:
            out["value"] = _json_scalar(rule.value)
        return out
    if isinstance(rule, BehaviourCondition):
        out = {"event": rule.event, "within_days": rule.within_days,
               "count": {rule.count.op: rule.count.n}}  # fmt: skip
        if rule.where:
            out["where"] = {key: list(values) for key, values in rule.where}
        if rule.same is not None:
            out["same"] = rule.same
        if rule.page is not None:
            out["page"] = rule.page
        if rule.channels is not None:
            out["channel"] = list(rule.channels)
        return out
    if isinstance(rule, TagCondition):
        out = {"tag": rule.kind, "min_score": rule.min_score}
        if rule.values is not None:
            out["value"] = list(rule.values)
        return out
    return {"registered_within_days": rule.days}


def _json_scalar(value: Scalar) -> str | int | float | bool:
    return value.isoformat() if isinstance(value, datetime) else value


# ---------------------------------------------------------------------------- compiling


@dataclass(frozen=True, slots=True)
class _Set:
    """The members (``positive``) or everyone but these; ``ids`` None is the empty set, so
    ``_Set(False, None)`` is everyone. ``ids`` has one column, distinct ``customer_id``."""

    positive: bool
    ids: ir.Table | None


_EVERYONE, _NOBODY = _Set(False, None), _Set(True, None)


def _ids(table: ir.Table) -> ir.Table:
    """``table``'s ``customer_id`` alone, typed alike in every set (the dimension's key is
    non-null, the events' column nullable, and set operations need equal schemas)."""
    return table.select(customer_id=table.customer_id.cast("string"))


def _intersect(tables: Sequence[ir.Table]) -> ir.Table:
    first, *rest = tables
    for other in rest:
        first = first.semi_join(other, "customer_id")
    return first


def _minus(table: ir.Table, others: Sequence[ir.Table]) -> ir.Table:
    for other in others:
        table = table.anti_join(other, "customer_id")
    return table


def _union(tables: Sequence[ir.Table]) -> ir.Table:
    return tables[0] if len(tables) == 1 else ibis.union(*tables, distinct=True)


def _all(sets: Sequence[_Set]) -> _Set:
    """``A ∩ B``, ``A − N`` and ``−M ∩ −N = −(M ∪ N)``: positives semi-join each other,
    negatives anti-join them; without a positive part the answer is negative."""
    if any(s == _NOBODY for s in sets):
        return _NOBODY
    positives = [s.ids for s in sets if s.positive and s.ids is not None]
    negatives = [s.ids for s in sets if not s.positive and s.ids is not None]
    if positives:
        return _Set(True, _minus(_intersect(positives), negatives))
    return _Set(False, _union(negatives)) if negatives else _EVERYONE


def _any(sets: Sequence[_Set]) -> _Set:
    """``A ∪ B`` and, with negative parts, ``−M ∪ −N ∪ A = −((M ∩ N) − A)``."""
    if any(s == _EVERYONE for s in sets):
        return _EVERYONE
    positives = [s.ids for s in sets if s.positive and s.ids is not None]
    negatives = [s.ids for s in sets if not s.positive and s.ids is not None]
    if negatives:
        return _Set(False, _minus(_intersect(negatives), positives))
    return _Set(True, _union(positives)) if positives else _NOBODY


def _string_property(properties: ir.StringValue, name: str) -> ir.StringValue:
    """The string under key ``name`` of the JSON text, as written (escapes kept; null when
    absent). Portable regex as in :func:`shequ.analytics.trends.numeric_property`."""
    pattern = rf'"{name}"\s*:\s*"((?:[^"\\]|\\.)*)"'
    return properties.re_extract(pattern, 1).nullif("")


def _property_matches(properties: ir.StringValue, name: str,
                      values: tuple[str | int | float | bool, ...]) -> ir.BooleanValue:
    """Whether the property ``name`` equals one of ``values`` (all of one JSON type)."""
    if isinstance(values[0], bool):
        pattern = rf'"{name}"\s*:\s*(true|false)'
        token = properties.re_extract(pattern, 1)
        return token.isin(["true" if v else "false" for v in values])
    if isinstance(values[0], str):
        written = [json.dumps(v, ensure_ascii=False)[1:-1] for v in values]
        return _string_property(properties, name).isin(written)
    return numeric_property(properties, name).isin([float(v) for v in values])


class _Compiler:
    """Compiles rule nodes to :class:`_Set` over one store at one reference instant."""

    def __init__(self, store: ReadStore, reference: datetime) -> None:
        self.store = store
        self.reference = reference

    def node(self, rule: Rule) -> _Set:
        if isinstance(rule, AllOf):
            return _all([self.node(part) for part in rule.parts])
        if isinstance(rule, AnyOf):
            return _any([self.node(part) for part in rule.parts])
        if isinstance(rule, Not):
            inner = self.node(rule.part)
            return _Set(not inner.positive, inner.ids)
        if isinstance(rule, BehaviourCondition):
            return self.behaviour(rule)
        if isinstance(rule, TagCondition):
            tags = self.store.table("dim_customer_tags")
            keep = [tags.kind == rule.kind, tags.score >= rule.min_score]
            if rule.values is not None:
                keep.append(tags.value.isin(rule.values))
            return _Set(True, _ids(tags.filter(*keep)).distinct())
        dim = self.store.table("dim_customers")
        if isinstance(rule, RegisteredWithin):
            since = self.reference - timedelta(days=rule.days)
            kept = dim.filter(dim.registered_at > since, dim.registered_at <= self.reference)
            return _Set(True, _ids(kept))
        column = (ibis.literal(self.reference.year) - dim.birth_year if rule.attr == "age"
                  else dim[rule.attr])  # fmt: skip
        return _Set(True, _ids(dim.filter(_attr_test(column, rule))))

    def behaviour(self, rule: BehaviourCondition) -> _Set:
        """One scan of the window's events of one name; per customer counts tested.

        A test that 0 passes (``lte n``, ``eq 0``) is the negative of the customers whose
        count fails it, so customers without any matching event are members."""
        op, n = rule.count.op, rule.count.n
        if op == "gte" and n == 0:
            return _EVERYONE
        if op == "lte" or n == 0:
            return _Set(False, self.counted(rule, n + 1 if op == "lte" else 1, exact=False))
        return _Set(True, self.counted(rule, n, exact=op == "eq"))

    def counted(self, rule: BehaviourCondition, n: int, *, exact: bool) -> ir.Table:
        """Customers whose count is at least ``n`` (``exact``: exactly ``n``); with
        ``same``, "at least" is "some value seen n times": no second aggregation."""
        rows = self.matching(rule)
        if rule.same is None:
            if n == 1 and not exact:
                return rows.select("customer_id").distinct()
            per = rows.group_by("customer_id").aggregate(count=rows.count())
            return per.filter(per["count"] == n if exact else per["count"] >= n
                              ).select("customer_id")  # fmt: skip
        # count(key) leaves out the events without the property (their group counts 0):
        # filtering them out before grouping would make the optimizer run the regex twice,
        # in the scan's filter and in the projection.
        per_value = rows.group_by("customer_id", "key").aggregate(count=rows.key.count())
        if not exact:
            return per_value.filter(per_value["count"] >= n).select("customer_id").distinct()
        most = per_value.group_by("customer_id").aggregate(count=per_value["count"].max())
        return most.filter(most["count"] == n).select("customer_id")

    def matching(self, rule: BehaviourCondition) -> ir.Table:
        """``customer_id`` (and ``key``, the ``same`` property's string, null when absent)
        of the matching events; anonymous events count for the customer their visitor is
        linked to."""
        events = self.store.table("events")
        start = self.reference - timedelta(days=rule.within_days)
        keep = [events.ts > start, events.ts <= self.reference]
        if rule.event != ANY_EVENT:
            keep.append(events.name == rule.event)
        if rule.channels is not None:
            keep.append(events.channel.isin(rule.channels))
        if rule.page is not None:
            keep.append(events.page.startswith(rule.page))
        keep.extend(_property_matches(events.properties, key, values)
                    for key, values in rule.where)  # fmt: skip
        found = events.filter(*keep)
        columns: dict[str, ir.Value] = {"customer_id": found.customer_id,
                                        "anonymous_id": found.anonymous_id}  # fmt: skip
        if rule.same is not None:
            columns["key"] = _string_property(found.properties, rule.same)
        found = found.select(**columns)
        links = self.store.table("identity_links")
        links = links.select(link_anonymous_id=links.anonymous_id,
                             link_customer_id=links.customer_id)  # fmt: skip
        joined = found.left_join(links, found.anonymous_id == links.link_anonymous_id)
        person = ibis.coalesce(joined.customer_id, joined.link_customer_id)
        kept = joined.mutate(customer_id=person.cast("string")).filter(person.notnull())
        return kept.select("customer_id", *(["key"] if rule.same is not None else []))


def _attr_test(column: ir.Value, rule: AttrCondition) -> ir.BooleanValue:
    """The SQL test of an attribute condition: comparisons never match a null value."""
    value = rule.value
    if rule.op == "is_null":
        return column.isnull()
    if rule.op == "not_null":
        return column.notnull()
    if rule.op in ("in", "not_in"):
        listed = list(cast(tuple[Scalar, ...], value))
        return column.isin(listed) if rule.op == "in" else column.notin(listed)
    if rule.op == "between":
        low, high = cast(tuple[Scalar, Scalar], value)
        return column.between(low, high)
    compare: dict[str, Callable[[Any, Any], ir.BooleanValue]] = {
        "eq": lambda c, v: c == v, "ne": lambda c, v: c != v, "gt": lambda c, v: c > v,
        "gte": lambda c, v: c >= v, "lt": lambda c, v: c < v, "lte": lambda c, v: c <= v,
    }  # fmt: skip
    return compare[rule.op](column, value)


def population(store: ReadStore) -> ir.Table:
    """Every customer the store knows: profiled (``dim_customers``), tagged, seen in events
    or linked to an anonymous visitor; the universe of ``not``."""
    tables = [store.table(name) for name in ("dim_customers", "dim_customer_tags",
                                             "identity_links")]  # fmt: skip
    events = store.table("events")
    seen = events.filter(events.customer_id.notnull())
    return ibis.union(*(_ids(t) for t in tables), _ids(seen), distinct=True)


def compile_rule(store: ReadStore, rule: Rule, *, reference: datetime) -> ir.Table:
    """The members of ``rule`` at ``reference`` (timezone-aware): one column,
    ``customer_id``, distinct customer ids; behaviour windows end at ``reference``."""
    if reference.tzinfo is None:
        raise ValidationFailed(CODE, "the reference time needs a time zone", "reference")
    result = _Compiler(store, reference.astimezone(UTC)).node(rule)
    if result.positive:
        if result.ids is not None:
            return result.ids
        dim = store.table("dim_customers")
        return _ids(dim.filter(ibis.literal(False)))
    everyone = population(store)
    return everyone if result.ids is None else everyone.anti_join(result.ids, "customer_id")


def _plan_key(rule: Rule, reference: datetime) -> str:
    canonical = json.dumps(rule_to_json(rule), sort_keys=True, ensure_ascii=False)
    return f"segments:{canonical}@{reference.isoformat()}"


def evaluate(store: ReadStore, rule: Rule, *, reference: datetime) -> list[str]:
    """The sorted customer ids matching ``rule`` at ``reference``."""
    table = store.run_plan(_plan_key(rule, reference),
                           lambda: compile_rule(store, rule, reference=reference))  # fmt: skip
    return sorted(table.column("customer_id").to_pylist())


def count(store: ReadStore, rule: Rule, *, reference: datetime) -> int:
    """How many customers match ``rule`` at ``reference``."""

    def build() -> ir.Table:
        members = compile_rule(store, rule, reference=reference)
        return members.aggregate(members=members.count())

    table = store.run_plan(_plan_key(rule, reference) + ":count", build)
    return int(table.column("members")[0].as_py())


# ------------------------------------------------------------------- console summaries

EVENT_LABELS = {
    ANY_EVENT: "任意行为", "page_view": "访问", "product_view": "浏览商品", "add_to_cart": "加购",
    "checkout": "下单", "payment": "支付", "search": "搜索", "click": "点击",
    "post_view": "浏览帖子", "like": "点赞", "comment": "评论", "share": "分享",
    "login": "登录", "signup": "注册",
}  # fmt: skip
_OP_WORDS = {"eq": "为", "ne": "不为", "in": "属于", "not_in": "不属于", "gt": ">", "gte": "≥",
             "lt": "<", "lte": "≤"}  # fmt: skip


def describe(rule: Rule) -> str:
    """A short Chinese summary of ``rule`` for the console (``且``/``或``, ``非``)."""
    if isinstance(rule, AllOf | AnyOf):
        joiner = " 且 " if isinstance(rule, AllOf) else " 或 "
        return joiner.join(_nested(part) for part in rule.parts)
    if isinstance(rule, Not):
        return f"非{_nested(rule.part)}"
    if isinstance(rule, BehaviourCondition):
        return _describe_behaviour(rule)
    if isinstance(rule, TagCondition):
        text = f"标签「{TAG_KINDS[rule.kind]}」"
        if rule.values is not None:
            text += f"为{'、'.join(rule.values)}"
        return text + (f"（得分≥{rule.min_score:g}）" if rule.min_score else "")
    if isinstance(rule, RegisteredWithin):
        return f"近{rule.days}天注册"
    return _describe_attr(rule)


def _nested(rule: Rule) -> str:
    text = describe(rule)
    return f"（{text}）" if isinstance(rule, AllOf | AnyOf) and len(rule.parts) > 1 else text


def _describe_attr(rule: AttrCondition) -> str:
    spec = ATTRIBUTES[rule.attr]

    def shown(value: Scalar) -> str:
        if spec.values is not None:
            return spec.values.get(str(value), str(value))
        return value.isoformat() if isinstance(value, datetime) else f"{value:g}" if isinstance(
            value, float) else str(value)  # fmt: skip

    if rule.op == "is_null":
        return f"{spec.label}为空"
    if rule.op == "not_null":
        return f"{spec.label}不为空"
    if isinstance(rule.value, tuple):
        if rule.op == "between":
            return f"{spec.label}介于{shown(rule.value[0])}与{shown(rule.value[1])}之间"
        return f"{spec.label}{_OP_WORDS[rule.op]}{'、'.join(shown(v) for v in rule.value)}"
    return f"{spec.label}{_OP_WORDS[rule.op]}{shown(cast(Scalar, rule.value))}"


def _describe_behaviour(rule: BehaviourCondition) -> str:
    what = EVENT_LABELS.get(rule.event, rule.event)
    filters = [f"{key}={'/'.join(str(v) for v in values)}" for key, values in rule.where]
    if rule.channels is not None:
        filters.append(f"渠道{'/'.join(rule.channels)}")
    if rule.page is not None:
        filters.append(f"页面{rule.page}*")
    if filters:
        what += f"（{'，'.join(filters)}）"
    if rule.same is not None:
        what = f"同一{rule.same}{what}"
    days = f"近{rule.within_days}天"
    n, op = rule.count.n, rule.count.op
    if op == "gte":
        return {0: f"{days}{what}不限", 1: f"{days}有{what}"}.get(n, f"{days}{what}至少{n}次")
    if n == 0:
        return f"{days}没有{what}"
    return f"{days}{what}{'至多' if op == 'lte' else '恰好'}{n}次"


# ------------------------------------------------------------------------------ presets

PRESETS: dict[str, dict[str, Any]] = {
    "browsed_not_bought": {
        "name": "浏览未购",
        "description": "近 7 天同一商品浏览至少 2 次、但 7 天内没有支付的客户",
        "rule": {"all": [
            {"event": "product_view", "within_days": 7, "count": {"gte": 2}, "same": "sku"},
            {"not": {"event": "payment", "within_days": 7}},
        ]},
    },
    "cart_abandoners": {
        "name": "加购未付",
        "description": "近 7 天加购过商品、但 7 天内没有支付的客户",
        "rule": {"all": [
            {"event": "add_to_cart", "within_days": 7},
            {"not": {"event": "payment", "within_days": 7}},
        ]},
    },
    "lapsing_high_value": {
        "name": "高价值流失预警",
        "description": "重要保持、重要挽留客户中近 30 天没有任何访问的",
        "rule": {"all": [
            {"rfm_group": ["important_keep", "important_retain"]},
            {"not": {"event": ANY_EVENT, "within_days": 30}},
        ]},
    },
    "new_this_week": {
        "name": "本周新客",
        "description": "近 7 天注册的客户",
        "rule": {"registered_within_days": 7},
    },
    "black_gold_members": {
        "name": "黑金会员",
        "description": "会员等级为黑金的客户",
        "rule": {"member_tier": "black_gold"},
    },
}  # fmt: skip
