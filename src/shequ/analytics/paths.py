"""Paths: the sequences of pages people visit within a session, and a Sankey of them.

Semantics (see docs/analytics.md): a session is a person's run of events with no gap of more
than 30 minutes (as in :mod:`shequ.analytics.sessions`), counted over the events that pass
the query's filters. Its path is its page visits (non-click events with a page) ordered by
``(ts, event_id)``, pages grouped by ``page_grouping``, consecutive repeats collapsed.
"""

from __future__ import annotations

import itertools
from collections import Counter
from typing import TYPE_CHECKING, Any, TypeVar

import ibis
from pydantic import BaseModel

from shequ.analytics.pages import PageGrouping, grouped_page, python_page_template
from shequ.analytics.runner import SCOPED_RULES, QueryRunner, Rule, ScopedQuery, scoped_events
from shequ.analytics.sessions import INACTIVITY

if TYPE_CHECKING:
    from shequ.analytics.store import EventStore

MIN_DEPTH, MAX_DEPTH = 2, 10
MAX_LIMIT = 100
CLICK = "click"
K = TypeVar("K", tuple[int, str], tuple[int, str, str])


class PathsQuery(ScopedQuery):
    """Paths from the session start, from ``start_page`` or into ``end_page``."""

    start_page: str | None = None
    end_page: str | None = None
    page_grouping: PageGrouping = "template"
    depth: int = 5
    limit: int = 20
    min_count: int = 1

    def anchor_page(self) -> str | None:
        """``start_page`` or ``end_page`` as grouped by ``page_grouping`` (None if neither)."""
        page = self.start_page if self.start_page is not None else self.end_page
        if page is None or self.page_grouping == "exact":
            return page
        return python_page_template(page)


class PathItem(BaseModel):
    """One distinct path (pages in visit order) and the sessions that took it."""

    pages: list[str]
    count: int
    share: float


class PathNode(BaseModel):
    """A Sankey node: ``page`` at ``step`` (relative to the anchor), ``id`` = ``"step:page"``."""

    id: str
    name: str
    step: int
    count: int


class PathLink(BaseModel):
    """A Sankey link: sessions that went from node ``source`` straight to node ``target``."""

    source: str
    target: str
    value: int


class PageCount(BaseModel):
    """A page next to the anchor, and the share of the anchored sessions that visited it."""

    page: str
    count: int
    share: float


class PathsResult(BaseModel):
    """Top paths, the Sankey (nodes, links) and the neighbours of the anchor page."""

    anchor_page: str | None
    sessions: int
    paths: list[PathItem]
    nodes: list[PathNode]
    links: list[PathLink]
    next_pages: list[PageCount]
    previous_pages: list[PageCount]


def _one_anchor(query: PathsQuery) -> str | None:
    if query.start_page is not None and query.end_page is not None:
        return "give start_page or end_page, not both"
    return None


def _depth_in_range(query: PathsQuery) -> str | None:
    if not MIN_DEPTH <= query.depth <= MAX_DEPTH:
        return f"depth must be {MIN_DEPTH}..{MAX_DEPTH}, got {query.depth}"
    return None


def _limit_in_range(query: PathsQuery) -> str | None:
    if not 1 <= query.limit <= MAX_LIMIT:
        return f"limit must be 1..{MAX_LIMIT}, got {query.limit}"
    return None


def _min_count_positive(query: PathsQuery) -> str | None:
    return f"min_count must be at least 1, got {query.min_count}" if query.min_count < 1 else None


def _start_not_blank(query: PathsQuery) -> str | None:
    blank = query.start_page is not None and not query.start_page.strip()
    return "a page cannot be blank" if blank else None


def _end_not_blank(query: PathsQuery) -> str | None:
    blank = query.end_page is not None and not query.end_page.strip()
    return "a page cannot be blank" if blank else None


PATHS_RULES: tuple[Rule[Any], ...] = (
    *SCOPED_RULES,
    Rule("start_and_end_page", "end_page", _one_anchor),
    Rule("blank_page", "start_page", _start_not_blank),
    Rule("blank_page", "end_page", _end_not_blank),
    Rule("path_depth_out_of_range", "depth", _depth_in_range),
    Rule("path_limit_out_of_range", "limit", _limit_in_range),
    Rule("path_min_count_out_of_range", "min_count", _min_count_positive),
)


def scoped_session_events(store: EventStore, query: ScopedQuery) -> ibis.Table:
    """:func:`scoped_events` plus ``session_no`` (1, 2, … per person), split as
    :func:`shequ.analytics.sessions.numbered_events` splits: a gap of more than 30 minutes
    between consecutive events of the person (in ``(ts, event_id)`` order) starts a session.
    """
    events = scoped_events(store, query)
    order = [events.ts, events.event_id]
    previous = events.ts.lag().over(group_by=events.person_id, order_by=order)
    gap = ibis.interval(seconds=int(INACTIVITY.total_seconds()))
    flagged = events.mutate(
        is_new=ibis.ifelse(previous.isnull() | (previous + gap < events.ts), 1, 0)
    )
    running = ibis.cumulative_window(
        group_by=flagged.person_id, order_by=[flagged.ts, flagged.event_id]
    )
    return flagged.mutate(session_no=flagged.is_new.sum().over(running))


def page_steps(store: EventStore, query: PathsQuery) -> ibis.Table:
    """One row per step of each session's path: ``person_id, session_no, step`` (0, 1, …),
    ``page`` (grouped), and the pages of the steps ``before`` and ``after`` it (null at the
    ends of the session)."""
    numbered = scoped_session_events(store, query)
    visits = numbered.filter(
        numbered.page.notnull(), numbered.page != "", numbered.name != CLICK
    )
    visits = visits.select(
        "person_id", "session_no", "ts", "event_id",
        page=grouped_page(visits.page, query.page_grouping),
    )  # fmt: skip
    session = [visits.person_id, visits.session_no]
    previous = visits.page.lag().over(group_by=session, order_by=[visits.ts, visits.event_id])
    visits = visits.mutate(previous=previous)
    steps = visits.filter(visits.previous.isnull() | (visits.previous != visits.page))
    session = [steps.person_id, steps.session_no]
    order = [steps.ts, steps.event_id]
    return steps.select(
        "person_id", "session_no", "page",
        step=ibis.row_number().over(group_by=session, order_by=order),
        before=steps.page.lag().over(group_by=session, order_by=order),
        after=steps.page.lead().over(group_by=session, order_by=order),
    )  # fmt: skip


class PathsRunner(QueryRunner[PathsQuery, PathsResult]):
    """Counts sessions per path (``build``: one row per distinct truncated path)."""

    query_type = PathsQuery
    rules = PATHS_RULES

    def build(self, store: EventStore) -> ibis.Table:
        """``page_0 … page_{depth-1}, before, after, sessions``: ``page_k`` is the page ``k``
        steps after the anchor (``end_page``: ``k`` steps before it), null past the session's
        end (start); ``before``/``after`` are the pages next to the anchor; ``sessions`` is
        the number of sessions with that combination."""
        query = self.query
        steps = page_steps(store, query)
        session = [steps.person_id, steps.session_no]
        target = query.anchor_page()
        if target is None:
            distance = steps.step
        else:
            hit = ibis.ifelse(steps.page == target, steps.step, ibis.null("int64"))
            anchor = hit.min().over(group_by=session)
            distance = anchor - steps.step if query.end_page is not None else steps.step - anchor
        steps = steps.mutate(distance=distance)
        kept = steps.filter(steps.distance >= 0, steps.distance < query.depth)
        pages = {f"page_{k}": kept.page.max(where=kept.distance == k) for k in range(query.depth)}
        per_session = kept.group_by(["person_id", "session_no"]).aggregate(
            **pages,
            before=kept.before.max(where=kept.distance == 0),
            after=kept.after.max(where=kept.distance == 0),
        )
        return per_session.group_by([*pages, "before", "after"]).aggregate(
            sessions=per_session.count()
        )

    def run(self, store: EventStore) -> PathsResult:
        """Execute the plan and count paths, nodes, links and the anchor's neighbours."""
        rows = self.execute(store).to_pylist()
        return aggregate(self.query, rows)


def aggregate(query: PathsQuery, rows: list[dict[str, Any]]) -> PathsResult:
    """The result from the rows of :meth:`PathsRunner.build`."""
    backwards = query.end_page is not None
    paths: Counter[tuple[str, ...]] = Counter()
    nodes: Counter[tuple[int, str]] = Counter()
    links: Counter[tuple[int, str, str]] = Counter()
    before: Counter[str] = Counter()
    after: Counter[str] = Counter()
    for row in rows:
        count = int(row["sessions"])
        pages = [row[f"page_{k}"] for k in range(query.depth) if row[f"page_{k}"] is not None]
        first = 0
        if backwards:
            pages.reverse()
            first = 1 - len(pages)
        paths[tuple(pages)] += count
        for offset, page in enumerate(pages):
            nodes[(first + offset, page)] += count
        for offset, (source, target) in enumerate(itertools.pairwise(pages)):
            links[(first + offset, source, target)] += count
        if row["before"] is not None:
            before[row["before"]] += count
        if row["after"] is not None:
            after[row["after"]] += count
    total = sum(paths.values())
    top = sorted(paths.items(), key=lambda item: (-item[1], item[0]))[: query.limit]
    anchored = query.anchor_page() is not None
    return PathsResult(
        anchor_page=query.anchor_page(),
        sessions=total,
        paths=[PathItem(pages=list(p), count=c, share=c / total) for p, c in top],
        nodes=[
            PathNode(id=_node_id(step, page), name=page, step=step, count=count)
            for (step, page), count in _by_step(nodes)
            if count >= query.min_count
        ],
        links=[
            PathLink(source=_node_id(step, source), target=_node_id(step + 1, target), value=value)
            for (step, source, target), value in _by_step(links)
            if value >= query.min_count
        ],
        next_pages=_neighbours(after, total) if anchored else [],
        previous_pages=_neighbours(before, total) if anchored else [],
    )


def _by_step(counts: Counter[K]) -> list[tuple[K, int]]:
    """Counted ``(step, …)`` keys by step, then count (largest first), then key."""
    return sorted(counts.items(), key=lambda item: (item[0][0], -item[1], item[0]))


def _node_id(step: int, page: str) -> str:
    return f"{step}:{page}"


def _neighbours(counts: Counter[str], total: int) -> list[PageCount]:
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [PageCount(page=page, count=count, share=count / total) for page, count in ranked]
