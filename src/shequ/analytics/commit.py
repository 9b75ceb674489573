"""Group commit for the event store, and the cache of identity links already written.

Batches that arrive while a write is running are committed together in one transaction;
each keeps its own exact accepted count, and a failed group fails each of its batches.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pyarrow as pa

from shequ.analytics.events import keep_first
from shequ.analytics.writers import Writer


class LinkCache:
    """Anonymous ids known to be linked already, so repeat pairs skip the database.

    Links are never rewritten (first link wins), so a remembered id stays true; the cache
    is bounded and forgets the oldest ids first.
    """

    def __init__(self, size: int = 200_000) -> None:
        self._size = size
        self._ids: dict[str, None] = {}
        self._lock = threading.Lock()

    def unknown(self, links: pa.Table) -> pa.Table:
        if links.num_rows == 0:
            return links
        with self._lock:
            mask = [a not in self._ids for a in links.column("anonymous_id").to_pylist()]
        return links.filter(pa.array(mask, pa.bool_()))

    def remember(self, links: pa.Table) -> None:
        with self._lock:
            for anonymous_id in links.column("anonymous_id").to_pylist():
                self._ids[anonymous_id] = None
            if len(self._ids) > self._size:
                # Dropping the older half at once keeps eviction amortised O(1).
                self._ids = dict.fromkeys(list(self._ids)[self._size // 2 :])


@dataclass
class _Job:
    events: pa.Table
    links: pa.Table
    done: bool = False
    accepted: int = 0
    error: Exception | None = None


class GroupCommit:
    """Batches that arrive while a write is running are committed together.

    One transaction (and one fsync) for every batch waiting: under concurrent requests this
    is what keeps the single-writer store ahead of the validators. Each batch stays atomic:
    if any event of the group is already known, the group is retried batch by batch.
    """

    def __init__(self, writer: Writer, max_rows: int = 20_000) -> None:
        self._writer = writer
        self._max_rows = max_rows
        self._cond = threading.Condition()
        self._pending: list[_Job] = []
        self._busy = False

    def submit(self, events: pa.Table, links: pa.Table) -> int:
        job = _Job(events, links)
        with self._cond:
            self._pending.append(job)
        while not job.done:
            with self._cond:
                while self._busy and not job.done:
                    self._cond.wait()
                if job.done:
                    break
                self._busy = True
                group = self._take()
            try:
                self._run(group)
            finally:
                self._release()
        if job.error is not None:
            raise job.error
        return job.accepted

    def _take(self) -> list[_Job]:
        rows, count = 0, 0
        for job in self._pending:
            if count and rows + job.events.num_rows > self._max_rows:
                break
            rows, count = rows + job.events.num_rows, count + 1
        group, self._pending = self._pending[:count], self._pending[count:]
        return group

    def _run(self, group: list[_Job]) -> None:
        try:
            if len(group) > 1 and self._writer.write_all(*_concat(group)):
                for job in group:
                    job.accepted = job.events.num_rows
                return
            for job in group:
                try:
                    job.accepted = self._writer.write(job.events, job.links)
                except Exception as exc:
                    job.error = exc
        except Exception as exc:
            for job in group:
                job.error = exc
        finally:
            for job in group:
                job.done = True

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the writer for something else (a rollup, closing)."""
        with self._cond:
            while self._busy:
                self._cond.wait()
            self._busy = True
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        with self._cond:
            self._busy = False
            self._cond.notify_all()


def _concat(group: list[_Job]) -> tuple[pa.Table, pa.Table]:
    links = keep_first(pa.concat_tables([job.links for job in group]), "anonymous_id")[0]
    return pa.concat_tables([job.events for job in group]), links


