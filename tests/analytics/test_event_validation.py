"""validate_batch and iter_event_file: the event schema's rules, exactly."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shequ.analytics.events import (
    EVENT_SCHEMA,
    MAX_BATCH,
    BatchTooLarge,
    EventFileError,
    MalformedBatch,
    Rejection,
    iter_event_file,
    validate_batch,
)

TS_REASON = "must be ISO 8601 with a UTC offset, e.g. 2026-11-20T08:00:00+08:00"


def event(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": "e1",
        "name": "page_view",
        "timestamp": "2026-11-20T08:00:00+08:00",
        "anonymous_id": "anon-1",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ...}


def body(*events: Any) -> bytes:
    return json.dumps(list(events)).encode()


def test_clean_batch_becomes_utc_columns() -> None:
    full = event(
        event_id="e2", customer_id="c9", session_id="s1", device_id="d1", page="/p/1",
        referrer="", channel="web", properties={"sku": "A 1", "qty": 2},
        x=0.25, y=1, dwell_ms=1500,
    )  # fmt: skip
    batch = validate_batch(body(event(), full))
    assert batch.rejected == []
    assert (batch.duplicates, batch.received) == (0, 2)
    assert batch.table.schema == EVENT_SCHEMA
    rows = batch.table.to_pylist()
    assert rows[0] == {
        "event_id": "e1", "name": "page_view", "ts": datetime(2026, 11, 20, 0, 0, tzinfo=UTC),
        "customer_id": None, "anonymous_id": "anon-1", "session_id": None, "device_id": None,
        "page": None, "referrer": None, "channel": None, "properties": None,
        "x": None, "y": None, "dwell_ms": None,
    }  # fmt: skip
    assert rows[1]["properties"] == '{"sku": "A 1", "qty": 2}'
    assert (rows[1]["x"], rows[1]["y"], rows[1]["dwell_ms"]) == (0.25, 1.0, 1500)
    assert (rows[1]["customer_id"], rows[1]["referrer"], rows[1]["channel"]) == ("c9", "", "web")


def test_z_suffix_and_null_properties_are_accepted() -> None:
    batch = validate_batch(body(event(timestamp="2026-11-20T00:00:00Z", properties=None)))
    assert batch.table.column("ts").to_pylist() == [datetime(2026, 11, 20, tzinfo=UTC)]
    assert batch.table.column("properties").to_pylist() == [None]


def test_empty_array_is_an_empty_batch() -> None:
    batch = validate_batch(b"[]")
    assert (batch.table.num_rows, batch.rejected, batch.duplicates, batch.received) == (
        0, [], 0, 0,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"events": []}', "body must be a JSON array of event objects"),
        (b"[{", "body is not valid JSON: Input data was truncated"),
        (b"", "body is not valid JSON: Input data was truncated"),
        (b'"x"', "body must be a JSON array of event objects"),
    ],
)
def test_non_array_body_is_malformed(raw: bytes, message: str) -> None:
    with pytest.raises(MalformedBatch) as info:
        validate_batch(raw)
    assert str(info.value) == message


def test_batch_limit() -> None:
    events = [event(event_id=f"e{i}") for i in range(MAX_BATCH)]
    assert validate_batch(body(*events)).table.num_rows == MAX_BATCH
    with pytest.raises(BatchTooLarge) as info:
        validate_batch(body(*events, event(event_id="extra")))
    assert str(info.value) == "batch has 5001 events; at most 5000 are accepted per request"


def test_oversized_batch_with_bad_events_is_still_too_large() -> None:
    with pytest.raises(BatchTooLarge):
        validate_batch(body(*([1] * (MAX_BATCH + 1))))


BAD_CASES = [
    (event(timestamp="2026-11-20T08:00:00"), "timestamp", TS_REASON),
    (event(timestamp="20/11/2026"), "timestamp", TS_REASON),
    (event(timestamp=1763596800), "timestamp", TS_REASON),
    (event(name="PageView"), "name", "must be 1-64 characters matching [a-z][a-z0-9_]*"),
    (event(name="a" * 65), "name", "must be 1-64 characters matching [a-z][a-z0-9_]*"),
    (event(event_id=""), "event_id", "must be a string of 1-64 characters"),
    (event(event_id="e" * 65), "event_id", "must be a string of 1-64 characters"),
    (event(event_id=7), "event_id", "must be a string of 1-64 characters"),
    (event(event_id=...), "event_id", "is required"),
    (event(timestamp=...), "timestamp", "is required"),
    (event(colour="red"), "colour", "unknown field"),
    (event(anonymous_id=...), "customer_id", "customer_id or anonymous_id is required"),
    (event(customer_id="c" * 129), "customer_id", "must be a string of 1-128 characters"),
    (event(page="/" * 2049), "page", "must be a string of at most 2048 characters"),
    (event(channel=""), "channel", "must be a string of 1-64 characters"),
    (event(properties=[1]), "properties", "must be a JSON object of at most 8192 bytes"),
    (event(properties="x"), "properties", "must be a JSON object of at most 8192 bytes"),
    (
        event(properties={"k": "v" * 8200}),
        "properties",
        "must be a JSON object of at most 8192 bytes",
    ),
    (event(x=1.5), "x", "must be a number between 0 and 1"),
    (event(y=-0.1), "y", "must be a number between 0 and 1"),
    (event(x=True), "x", "must be a number between 0 and 1"),
    (event(dwell_ms=-1), "dwell_ms", "must be an integer between 0 and 86400000 (24 h)"),
    (event(dwell_ms=86_400_001), "dwell_ms", "must be an integer between 0 and 86400000 (24 h)"),
    (event(dwell_ms=1.5), "dwell_ms", "must be an integer between 0 and 86400000 (24 h)"),
    ([1, 2], "event", "must be a JSON object"),
    ("event", "event", "must be a JSON object"),
]


@pytest.mark.parametrize(("bad", "field", "reason"), BAD_CASES)
def test_each_bad_event_gets_one_rejection(bad: Any, field: str, reason: str) -> None:
    batch = validate_batch(body(event(event_id="ok1"), bad, event(event_id="ok2")))
    assert batch.rejected == [Rejection(1, field, reason)]
    assert batch.table.column("event_id").to_pylist() == ["ok1", "ok2"]
    assert batch.received == 3


def test_first_bad_field_in_document_order_is_named() -> None:
    bad = {"event_id": "e9", "name": "Bad", "timestamp": "naive", "anonymous_id": "a"}
    later = {"event_id": "e8", "timestamp": "naive", "name": "Bad", "anonymous_id": "a"}
    batch = validate_batch(body(bad, later))
    assert [(r.index, r.field) for r in batch.rejected] == [(0, "name"), (1, "timestamp")]


def test_rejection_as_dict() -> None:
    assert Rejection(3, "x", "must be").as_dict() == {"index": 3, "field": "x", "reason": "must be"}


def test_in_batch_duplicates_first_wins() -> None:
    batch = validate_batch(
        body(event(page="/first"), event(page="/second"), event(event_id="e2"), event())
    )
    assert batch.duplicates == 2
    assert batch.table.column("event_id").to_pylist() == ["e1", "e2"]
    assert batch.table.column("page").to_pylist() == ["/first", None]


def test_duplicate_of_a_rejected_event_is_not_a_duplicate() -> None:
    batch = validate_batch(body(event(x=2), event(page="/kept")))
    assert batch.duplicates == 0
    assert batch.rejected == [Rejection(0, "x", "must be a number between 0 and 1")]
    assert batch.table.column("page").to_pylist() == ["/kept"]


_field_values = st.fixed_dictionaries(
    {},
    optional={
        "name": st.sampled_from(["page_view", "Bad", "add_to_cart", ""]),
        "timestamp": st.sampled_from(["2026-11-20T08:00:00+08:00", "2026-11-20T08:00:00", "x"]),
        "customer_id": st.sampled_from(["c1", "", None]),
        "anonymous_id": st.sampled_from(["a1", None]),
        "x": st.sampled_from([0, 0.5, 1.01, "0.5"]),
        "dwell_ms": st.sampled_from([0, -5, 100, 1.5]),
        "properties": st.sampled_from([{}, {"a": [1, 2]}, [], None]),
        "bogus": st.just(1),
    },
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 6), _field_values), max_size=12))
def test_batch_agrees_with_one_by_one_validation(items: list[tuple[int, dict[str, Any]]]) -> None:
    """Fast path or not, a batch keeps exactly the events that pass alone, first id wins."""
    events = [{"event_id": f"e{n}", **fields} for n, fields in items]
    alone = [validate_batch(body(e)) for e in events]
    batch = validate_batch(body(*events))
    bad = [i for i, single in enumerate(alone) if single.rejected]
    assert [r.index for r in batch.rejected] == bad
    assert [r.field for r in batch.rejected] == [alone[i].rejected[0].field for i in bad]
    kept: dict[str, dict[str, Any]] = {}
    for single in alone:
        for row in single.table.to_pylist():
            kept.setdefault(row["event_id"], row)
    assert batch.table.to_pylist() == list(kept.values())
    assert batch.duplicates == len(events) - len(bad) - len(kept)


def _write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_jsonl_file_reports_line_numbers(tmp_path: Path) -> None:
    lines = [json.dumps(event(event_id=f"j{i}")) for i in range(5)]
    lines[1] = json.dumps(event(event_id="j1", x=3))
    lines.insert(3, "")
    lines.append("{not json")
    # Two objects on one line would shift every later line number if joined naively.
    lines.append(json.dumps(event(event_id="a")) + ", " + json.dumps(event(event_id="b")))
    path = _write_lines(tmp_path / "events.jsonl", lines)
    chunks = list(iter_event_file(path, chunk_rows=3))
    assert [c[0].num_rows for c in chunks] == [2, 2, 0]
    rejected = [r for _, rs in chunks for r in rs]
    assert [(r.index, r.field) for r in rejected] == [(2, "x"), (7, "event"), (8, "event")]
    assert rejected[1].reason.startswith("is not valid JSON: ")
    assert [i for t, _ in chunks for i in t.column("event_id").to_pylist()] == [
        "j0", "j2", "j3", "j4",
    ]  # fmt: skip


def test_csv_file_types_cells_and_reports_lines(tmp_path: Path) -> None:
    path = _write_lines(
        tmp_path / "events.csv",
        [
            "event_id,name,timestamp,customer_id,x,dwell_ms,properties",
            'c1,page_view,2026-11-20T08:00:00+08:00,u1,0.5,10,"{""a"": 1}"',
            "c2,page_view,2026-11-20T08:00:00,u1,,,",
            "c3,page_view,2026-11-20T08:00:00Z,u1,half,,",
            "c4,page_view,2026-11-20T08:00:00Z,u1,,1.5,",
            "c5,page_view,2026-11-20T08:00:00Z,u1,,,not json",
            "c6,page_view,2026-11-20T08:00:00Z,,,,",
        ],
    )
    [(table, rejected)] = list(iter_event_file(path))
    assert table.to_pylist()[0]["properties"] == '{"a":1}'
    assert table.column("x").to_pylist() == [0.5]
    assert [(r.index, r.field) for r in rejected] == [
        (3, "timestamp"), (4, "x"), (5, "dwell_ms"), (6, "properties"), (7, "customer_id"),
    ]  # fmt: skip


def test_csv_with_unknown_columns_is_refused(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "e.csv", ["event_id,colour", "a,red"])
    with pytest.raises(EventFileError, match="unknown column"):
        list(iter_event_file(path))


def test_parquet_file_reports_row_numbers(tmp_path: Path) -> None:
    aware = datetime(2026, 11, 20, tzinfo=UTC)
    table = pa.table(
        {
            "event_id": ["p1", "p2", "p3"],
            "name": ["page_view", "page_view", "Bad"],
            "timestamp": pa.array([aware, aware, aware], pa.timestamp("us", tz="UTC")),
            "customer_id": ["c1", None, "c3"],
            "properties": ['{"k": 1}', None, None],
        }
    )
    pq.write_table(table, tmp_path / "e.parquet")
    [(valid, rejected)] = list(iter_event_file(tmp_path / "e.parquet"))
    assert valid.column("event_id").to_pylist() == ["p1"]
    assert valid.column("properties").to_pylist() == ['{"k":1}']
    assert rejected == [
        Rejection(2, "customer_id", "customer_id or anonymous_id is required"),
        Rejection(3, "name", "must be 1-64 characters matching [a-z][a-z0-9_]*"),
    ]


def test_unsupported_file_type(tmp_path: Path) -> None:
    with pytest.raises(EventFileError, match=r"unsupported file type '\.xlsx'"):
        list(iter_event_file(tmp_path / "e.xlsx"))


def test_documented_example_behaves_as_documented() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "events.md").read_text("utf-8")
    example = doc.split("### Example batch\n\n```json\n")[1].split("```")[0]
    answer = doc.split("The answer of the route")[1].split("```json\n")[1].split("```")[0]
    batch = validate_batch(example.encode())
    expected = json.loads(answer)
    assert batch.table.num_rows == expected["accepted"]
    assert [r.as_dict() for r in batch.rejected] == expected["rejected"]
