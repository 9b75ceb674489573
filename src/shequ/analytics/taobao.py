"""Map the public Taobao UserBehavior log onto our event schema.

The file has no header; its columns are ``user_id,item_id,category_id,behavior_type,
timestamp`` (behaviour ``pv``/``cart``/``fav``/``buy``, Unix seconds). Sessions are cut
per user at gaps longer than 30 minutes; see docs/events.md.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from shequ.analytics.events import EVENT_SCHEMA

BEHAVIOUR_TO_EVENT = {
    "pv": "product_view",
    "cart": "add_to_cart",
    "fav": "favorite",
    "buy": "payment",
}
SESSION_GAP_S = 30 * 60
TAOBAO_RELATIVE = Path("events/taobao_userbehavior/UserBehavior_head84k.csv")
_COLUMNS = ["user_id", "item_id", "category_id", "behavior_type", "timestamp"]


def default_taobao_path() -> Path:
    """``$SHEQU_EVAL_DATA/events/taobao_userbehavior/UserBehavior_head84k.csv``.

    ``SHEQU_EVAL_DATA`` defaults to ``../shared/data`` relative to the working directory.
    """
    return Path(os.environ.get("SHEQU_EVAL_DATA", "../shared/data")) / TAOBAO_RELATIVE


def read_taobao_csv(path: Path | str) -> pa.Table:
    """The raw log as typed columns (ids int64, behaviour string, timestamp int64)."""
    types = {c: pa.int64() for c in _COLUMNS}
    types["behavior_type"] = pa.string()
    return pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(column_names=_COLUMNS),
        convert_options=pacsv.ConvertOptions(column_types=types),
    )


def taobao_to_arrow(path: Path | str) -> pa.Table:
    """The log as validated event rows (:data:`EVENT_SCHEMA`), ready for ``ingest_arrow``.

    ``event_id`` is ``tb-`` plus a hash of the line number and the line's content, so a
    re-import is idempotent; unknown behaviour types raise ``ValueError``.
    """
    raw = read_taobao_csv(path)
    n = raw.num_rows
    user = pc.cast(raw["user_id"], pa.string())
    item = pc.cast(raw["item_id"], pa.string())
    category = pc.cast(raw["category_id"], pa.string())
    seconds = raw["timestamp"].to_numpy()
    columns = {
        "event_id": _event_ids(raw),
        "name": _event_names(raw["behavior_type"]),
        "ts": pa.array(seconds * 1_000_000, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        "customer_id": pc.binary_join_element_wise("tb", user, "_"),
        "session_id": _session_ids(raw["user_id"].to_numpy(), seconds, user),
        "page": pc.binary_join_element_wise("/product", item, "/"),
        "channel": pa.array(["taobao"] * n, pa.string()),
        "properties": pc.binary_join_element_wise(
            '{"item_id":', item, ',"category_id":', category, "}", ""
        ),
    }
    return pa.Table.from_arrays(
        [_column(columns, field, n) for field in EVENT_SCHEMA], schema=EVENT_SCHEMA
    )


def _column(columns: dict[str, pa.Array], field: pa.Field, n: int) -> pa.Array:
    if field.name in columns:
        return columns[field.name]
    return pa.nulls(n, field.type)


def _event_names(behaviour: pa.ChunkedArray) -> pa.Array:
    known = pa.array(list(BEHAVIOUR_TO_EVENT))
    position = pc.index_in(behaviour, value_set=known)
    if position.null_count:
        line = pc.index(pc.is_null(position), True).as_py() + 1
        raise ValueError(f"line {line}: unknown behaviour type {behaviour[line - 1].as_py()!r}")
    return pc.take(pa.array(list(BEHAVIOUR_TO_EVENT.values())), position).combine_chunks()


def _event_ids(raw: pa.Table) -> pa.Array:
    text = pc.binary_join_element_wise(*(pc.cast(raw[c], pa.string()) for c in _COLUMNS), ",")
    return pa.array(
        [
            "tb-" + hashlib.blake2b(f"{line}:{row}".encode(), digest_size=10).hexdigest()
            for line, row in enumerate(text.to_pylist(), start=1)
        ],
        pa.string(),
    )


def _session_ids(users: np.ndarray, seconds: np.ndarray, user_text: pa.Array) -> pa.Array:
    """``tb_<user>_<unix start of session>``, sessions cut at gaps over 30 minutes."""
    order = np.lexsort((np.arange(len(users)), seconds, users))
    sorted_users, sorted_seconds = users[order], seconds[order]
    starts = np.ones(len(users), dtype=bool)
    starts[1:] = (sorted_users[1:] != sorted_users[:-1]) | (np.diff(sorted_seconds) > SESSION_GAP_S)
    start_index = np.maximum.accumulate(np.where(starts, np.arange(len(users)), 0))
    session_start = np.empty_like(seconds)
    session_start[order] = sorted_seconds[start_index]
    start_text = pc.cast(pa.array(session_start), pa.string())
    return pc.binary_join_element_wise("tb", user_text, start_text, "_")
