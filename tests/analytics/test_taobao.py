"""The Taobao UserBehavior mapping: on a small file we write, and on the real 84k-row head."""

from __future__ import annotations

import csv
import os
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.compute as pc
import pytest

from shequ.analytics.events import EVENT_SCHEMA
from shequ.analytics.store import EventStore, IngestResult
from shequ.analytics.taobao import BEHAVIOUR_TO_EVENT, TAOBAO_RELATIVE, taobao_to_arrow

EVAL_DATA = Path(
    os.environ.get("SHEQU_EVAL_DATA", Path(__file__).resolve().parents[3] / "shared" / "data")
)
TAOBAO = EVAL_DATA / TAOBAO_RELATIVE
T = 1_511_544_070  # 2017-11-24T17:21:10Z


def _write(tmp_path: Path, rows: list[str]) -> Path:
    path = tmp_path / "UserBehavior.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_one_row_maps_exactly(tmp_path: Path) -> None:
    table = taobao_to_arrow(_write(tmp_path, [f"7,2268318,2520377,cart,{T}"]))
    assert table.schema == EVENT_SCHEMA
    [row] = table.to_pylist()
    event_id = row.pop("event_id")
    assert event_id.startswith("tb-")
    assert len(event_id) == 23
    assert row == {
        "name": "add_to_cart", "ts": datetime(2017, 11, 24, 17, 21, 10, tzinfo=UTC),
        "customer_id": "tb_7", "anonymous_id": None, "session_id": f"tb_7_{T}",
        "device_id": None, "page": "/product/2268318", "referrer": None, "channel": "taobao",
        "properties": '{"item_id":2268318,"category_id":2520377}',
        "x": None, "y": None, "dwell_ms": None,
    }  # fmt: skip


def test_sessions_split_at_thirty_minute_gaps(tmp_path: Path) -> None:
    rows = [
        f"1,10,1,pv,{T}",
        f"2,10,1,pv,{T + 10}",
        f"1,11,1,pv,{T + 1800}",  # exactly 30 min later: same session
        f"1,12,1,fav,{T + 1800 + 1801}",  # more than 30 min later: a new session
        f"1,13,1,buy,{T + 5}",  # out of order in the file, still in the first session
    ]
    sessions = taobao_to_arrow(_write(tmp_path, rows)).column("session_id").to_pylist()
    assert sessions == [f"tb_1_{T}", f"tb_2_{T + 10}", f"tb_1_{T}", f"tb_1_{T + 3601}", f"tb_1_{T}"]


def test_event_ids_depend_on_content_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, [f"1,10,1,pv,{T}", f"1,10,1,pv,{T}"])
    first = taobao_to_arrow(path).column("event_id").to_pylist()
    assert first == taobao_to_arrow(path).column("event_id").to_pylist()
    assert first[0] != first[1]


def test_unknown_behaviour_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="line 2: unknown behaviour type 'like'"):
        taobao_to_arrow(_write(tmp_path, [f"1,10,1,pv,{T}", f"1,10,1,like,{T}"]))


@pytest.mark.skipif(not TAOBAO.exists(), reason=f"Taobao evaluation data absent: {TAOBAO}")
def test_real_log_imports_idempotently(tmp_path: Path) -> None:
    with TAOBAO.open(newline="") as handle:
        in_file = Counter(BEHAVIOUR_TO_EVENT[row[3]] for row in csv.reader(handle))
    assert in_file == {
        "product_view": 75872,
        "add_to_cart": 4497,
        "favorite": 2356,
        "payment": 1750,
    }
    table = taobao_to_arrow(TAOBAO)
    assert table.num_rows == 84475
    assert pc.count_distinct(table["customer_id"]).as_py() == 815
    store = EventStore.open(f"duckdb://{tmp_path}/events.duckdb")
    try:
        assert store.ingest_arrow(table) == IngestResult(accepted=84475, duplicates=0)
        events = store.table("events")
        counts = store.to_arrow(events.group_by("name").aggregate(n=events.count()))
        assert (
            dict(zip(counts["name"].to_pylist(), counts["n"].to_pylist(), strict=True)) == in_file
        )
        assert store.ingest_arrow(taobao_to_arrow(TAOBAO)) == IngestResult(0, 84475)
        assert store.count() == 84475
    finally:
        store.close()
