"""Vectorised expansion of the session plan into event rows (Arrow tables, in chunks).

Sessions are expanded in fixed blocks of ``BLOCK`` sessions, each with its own seeded random
generator, so the events do not depend on the chunk size and never exist as Python objects.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from shequ.demo.event_context import EventContext
from shequ.demo.event_fields import event_table
from shequ.demo.sessions import Plan

BLOCK = 16_384


def iter_tables(ctx: EventContext, plan: Plan, chunk_rows: int) -> Iterator[pa.Table]:
    """Expand ``plan`` block by block and yield tables of exactly ``chunk_rows`` rows
    (the last one may be shorter)."""
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be positive")
    pending: list[pa.Table] = []
    buffered = 0
    counter = 0
    for first in range(0, plan.kind.size, BLOCK):
        index = np.arange(first, min(first + BLOCK, plan.kind.size))
        table = event_table(ctx, plan.take(index), first, counter)
        counter += table.num_rows
        pending.append(table)
        buffered += table.num_rows
        while buffered >= chunk_rows:
            merged = pa.concat_tables(pending)
            yield merged.slice(0, chunk_rows).combine_chunks()
            rest = merged.slice(chunk_rows)
            pending, buffered = [rest], rest.num_rows
    if buffered:
        yield pa.concat_tables(pending).combine_chunks()

