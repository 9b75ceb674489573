"""scripts/analytics_real_data.py on the real Taobao log and UCI shoppers sessions, against
brute-force pure-Python counts on the raw files, and the doc's generated block against the
script's output."""

from __future__ import annotations

import csv
import os
import statistics
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from script_modules import load_script
from shequ.analytics.taobao import BEHAVIOUR_TO_EVENT, taobao_to_arrow

REPO = Path(__file__).resolve().parents[2]
EVAL_DATA = Path(os.environ.get("SHEQU_EVAL_DATA", REPO.parent / "shared" / "data"))
TAOBAO = EVAL_DATA / "events/taobao_userbehavior/UserBehavior_head84k.csv"
SHOPPERS = EVAL_DATA / "events/online_shoppers_intention/online_shoppers_intention.csv"
DOC = REPO / "docs" / "analytics-on-real-data.md"
ZONE = ZoneInfo("Asia/Shanghai")
STEPS = ["product_view", "add_to_cart", "payment"]
DAY_S = 86_400
GAP_S = 1_800
# The Tianchi UserBehavior log covers 2017-11-25 .. 2017-12-03, Beijing time.
FIRST, LAST = date(2017, 11, 25), date(2017, 12, 3)


def _need(path: Path) -> Path:
    """``path``, or skip the test with a message when the evaluation data is absent."""
    if not path.exists():
        pytest.skip(f"real evaluation data absent: {path} (set SHEQU_EVAL_DATA)")
    return path


script = load_script(REPO / "scripts" / "analytics_real_data.py")


@dataclass(frozen=True, order=True)
class Event:
    """One raw log row: seconds, the mapped event id (the tie-break), name, item."""

    ts: int
    event_id: str
    name: str
    item: str


@dataclass(frozen=True)
class Raw:
    """The raw log per user, sorted by (ts, event_id), and the main range in Unix seconds."""

    timelines: dict[str, list[Event]]
    start: int
    end: int

    def in_range(self, user: str, end: int | None = None) -> list[Event]:
        """The user's events in ``[start, end)`` (default: the main range's end)."""
        stop = self.end if end is None else end
        return [e for e in self.timelines[user] if self.start <= e.ts < stop]


@pytest.fixture(scope="module")
def raw() -> Raw:
    ids = taobao_to_arrow(_need(TAOBAO)).column("event_id").to_pylist()
    timelines: dict[str, list[Event]] = {}
    with TAOBAO.open(newline="") as handle:
        for event_id, (user, item, _, behaviour, ts) in zip(ids, csv.reader(handle),
                                                            strict=True):  # fmt: skip
            event = Event(int(ts), event_id, BEHAVIOUR_TO_EVENT[behaviour], item)
            timelines.setdefault(f"tb_{user}", []).append(event)
    for events in timelines.values():
        events.sort()
    start = int(datetime(2017, 11, 25, tzinfo=ZONE).timestamp())
    end = int(datetime(2017, 12, 4, tzinfo=ZONE).timestamp())
    return Raw(timelines, start, end)


@pytest.fixture(scope="module")
def taobao() -> Any:
    return script.taobao_report(_need(TAOBAO))


@pytest.fixture(scope="module")
def shoppers() -> Any:
    return script.shoppers_report(_need(SHOPPERS))


def _day(ts: int) -> date:
    return datetime.fromtimestamp(ts, ZONE).date()


# --------------------------------------------------------------------------- Taobao


def test_range_and_outliers_match_the_raw_log(taobao: Any, raw: Raw) -> None:
    every = [e for events in raw.timelines.values() for e in events]
    assert taobao.events == len(every) == 84_475
    assert taobao.persons == len(raw.timelines) == 815
    assert taobao.range.per_day == dict(sorted(Counter(_day(e.ts) for e in every).items()))
    assert (taobao.range.first, taobao.range.last) == (FIRST, LAST)
    outside = [e for e in every if not raw.start <= e.ts < raw.end]
    assert taobao.range.outside == len(outside) == 35
    assert {e.name for e in outside} == {"product_view"}


def test_sessions_match_the_documented_count_and_a_brute_force_split(
    taobao: Any, raw: Raw
) -> None:
    assert taobao.sessions_all.sessions == taobao.distinct_session_ids == 14_122
    sizes = []
    for user in raw.timelines:
        events = raw.in_range(user)
        for k, event in enumerate(events):
            if k == 0 or event.ts - events[k - 1].ts > GAP_S:
                sizes.append(0)
            sizes[-1] += 1
    assert taobao.sessions_main.sessions == len(sizes)
    assert taobao.sessions_main.bounce_rate == sum(1 for n in sizes if n == 1) / len(sizes)


def test_daily_trends_match_raw_counts(taobao: Any, raw: Raw) -> None:
    events: Counter[tuple[date, str]] = Counter()
    persons: dict[date, set[str]] = {}
    payers: dict[date, set[str]] = {}
    for user in raw.timelines:
        for e in raw.in_range(user):
            events[(_day(e.ts), e.name)] += 1
            persons.setdefault(_day(e.ts), set()).add(user)
            if e.name == "payment":
                payers.setdefault(_day(e.ts), set()).add(user)
    assert [row.day for row in taobao.daily] == [FIRST + timedelta(days=k) for k in range(9)]
    for row in taobao.daily:
        assert row.events == {name: events[(row.day, name)] for name in script.EVENT_NAMES}
        assert row.persons == len(persons[row.day])
        assert row.payers == len(payers[row.day])
    assert taobao.totals["product_view"] == 75_872 - 35
    assert taobao.persons_total == len(set().union(*persons.values()))
    assert taobao.payers_total == len(set().union(*payers.values()))


def _funnel(raw: Raw, start: int, end: int, window: int, order: str) -> tuple[list[int],
                                                                            list[list[int]]]:
    """Persons per step and the gaps (seconds) into steps 1 and 2, by the documented rules."""
    counts = [0, 0, 0]
    gaps: list[list[int]] = [[], []]
    for user in raw.timelines:
        span = [e for e in raw.timelines[user]
                if start <= e.ts < end + window and e.name in STEPS]  # fmt: skip
        starters = STEPS if order == "any_order" else STEPS[:1]
        anchors = [k for k, e in enumerate(span) if e.name in starters and e.ts < end]
        if not anchors:
            continue
        anchor = span[anchors[0]]
        if order == "any_order":
            firsts: dict[str, int] = {}
            for e in span[anchors[0]:]:
                if e.ts <= anchor.ts + window:
                    firsts.setdefault(e.name, e.ts)
            reached = list(firsts.values())
        else:
            reached, previous = [anchor.ts], anchor
            for name in STEPS[1:]:
                found = next((e for e in span if e.name == name and e > previous
                              and e.ts <= anchor.ts + window), None)  # fmt: skip
                if found is None:
                    break
                reached.append(found.ts)
                previous = found
        for k, ts in enumerate(reached):
            counts[k] += 1
            if k:
                gaps[k - 1].append(ts - reached[k - 1])
    return counts, gaps


def test_funnels_match_a_brute_force_count(taobao: Any, raw: Raw) -> None:
    assert [(run.order, run.window_days) for run in taobao.funnels] == list(script.FUNNELS)
    for run in taobao.funnels:
        counts, gaps = _funnel(raw, raw.start, raw.end, run.window_days * DAY_S, run.order)
        steps = run.result.steps
        assert [step.count for step in steps] == counts, run
        assert [step.median_seconds_from_previous for step in steps[1:]] == [
            pytest.approx(statistics.median(g)) for g in gaps
        ]
        assert steps[2].conversion_from_first == counts[2] / counts[0]


def test_diagnosis_compares_the_last_two_days_with_the_days_before(taobao: Any, raw: Raw) -> None:
    diagnosis = taobao.diagnosis
    assert diagnosis.recent == (date(2017, 12, 2), LAST)
    assert diagnosis.baseline == (FIRST, date(2017, 12, 1))
    split = int(datetime(2017, 12, 2, tzinfo=ZONE).timestamp())
    recent, _ = _funnel(raw, split, raw.end, DAY_S, "ordered")
    baseline, _ = _funnel(raw, raw.start, split, DAY_S, "ordered")
    assert [s.count for s in diagnosis.recent_result.steps] == recent
    assert [s.count for s in diagnosis.baseline_result.steps] == baseline
    losses = [(1 - recent[k] / recent[k - 1]) - (1 - baseline[k] / baseline[k - 1])
              for k in (1, 2)]  # fmt: skip
    assert diagnosis.step.order == 1 + losses.index(max(losses))
    assert diagnosis.step.deviation == pytest.approx(max(losses))
    latest = max(e.ts for events in raw.timelines.values() for e in events)
    anchors = [next(e for e in raw.timelines[user] if e.name == "product_view"
                    and split <= e.ts < raw.end) for user in raw.timelines
               if any(e.name == "product_view" and split <= e.ts < raw.end
                      for e in raw.timelines[user])]  # fmt: skip
    assert diagnosis.recent_cut_short == sum(1 for a in anchors if a.ts + DAY_S > latest)


def _session_items(raw: Raw) -> list[tuple[str, list[str]]]:
    """Per session of the main range: the user and its items, consecutive repeats dropped."""
    sessions: list[tuple[str, list[str]]] = []
    for user in raw.timelines:
        events = raw.in_range(user)
        for k, e in enumerate(events):
            if k == 0 or e.ts - events[k - 1].ts > GAP_S:
                sessions.append((user, []))
            items = sessions[-1][1]
            if not items or items[-1] != e.item:
                items.append(e.item)
    return sessions


def test_paths_match_brute_force_sessions(taobao: Any, raw: Raw) -> None:
    paths = taobao.paths
    sessions = _session_items(raw)
    assert [(p.pages, p.count) for p in paths.template.paths] == [(["/product/*"], len(sessions))]
    assert paths.template.sessions == taobao.sessions_main.sessions
    depths = Counter(min(len(items), script.MAX_PATH_DEPTH) for _, items in sessions)
    assert paths.depths == dict(sorted(depths.items()))
    assert paths.distinct_items == len({item for _, items in sessions for item in items})
    by_path: dict[tuple[str, ...], list[str]] = {}
    for user, items in sessions:
        by_path.setdefault(tuple(f"/product/{i}" for i in items[:5]), []).append(user)
    for top in paths.top + paths.top_multi:
        assert top.sessions == len(by_path[top.pages])
        assert top.persons == len(set(by_path[top.pages]))
    assert [t.sessions for t in paths.top] == sorted((len(u) for u in by_path.values()),
                                                     reverse=True)[:10]  # fmt: skip
    assert all(len(t.pages) > 1 and t.sessions > 1 for t in paths.top_multi)


def _cohorts(raw: Raw, start_event: str | None,
             return_event: str | None) -> dict[date, tuple[int, list[int]]]:
    """Cohort day → (size, persons back on day +1 … +8 when inside the range)."""
    members: dict[date, list[set[date]]] = {}
    for user in raw.timelines:
        events = raw.in_range(user)
        starts = [e for e in events if start_event in (None, e.name)]
        if not starts:
            continue
        returns = {_day(e.ts) for e in events if return_event in (None, e.name)}
        members.setdefault(_day(starts[0].ts), []).append(returns)
    table = {}
    for cohort, people in members.items():
        days = (LAST - cohort).days
        table[cohort] = (len(people), [sum(1 for r in people if cohort + timedelta(days=k) in r)
                                       for k in range(1, days + 1)])  # fmt: skip
    return table


@pytest.mark.parametrize(("attr", "start_event", "return_event"),
                         [("retention_any", None, None),
                          ("retention_pay", "product_view", "payment")])  # fmt: skip
def test_retention_matches_brute_force_cohorts(taobao: Any, raw: Raw, attr: str,
                                               start_event: str | None,
                                               return_event: str | None) -> None:
    result = getattr(taobao, attr)
    expected = _cohorts(raw, start_event, return_event)
    for cohort in result.cohorts:
        size, back = expected.get(cohort.cohort_start, (0, []))
        assert cohort.retained[0] == cohort.size == size  # period 0 is the cohort size
        assert cohort.retained[1:] == (back if size else [0] * len(cohort.retained[1:]))
    complete = [c for c in result.cohorts if len(c.retained) > 1]
    d1 = sum(c.retained[1] for c in complete) / sum(c.size for c in complete)
    assert result.d1 == d1
    assert sum(c.size for c in result.cohorts) == len(
        [u for u in raw.timelines if any(start_event in (None, e.name) for e in raw.in_range(u))]
    )


def test_product_view_dwell_is_the_time_to_the_next_event(taobao: Any, raw: Raw) -> None:
    dwell: list[int] = []
    views = 0
    for user in raw.timelines:
        events = raw.in_range(user, raw.end + GAP_S)
        for k, e in enumerate(events):
            if e.name != "product_view" or e.ts >= raw.end:
                continue
            views += 1
            if k + 1 < len(events) and events[k + 1].ts - e.ts <= GAP_S:
                dwell.append(events[k + 1].ts - e.ts)
    group = taobao.dwell
    assert (group.group, group.views, group.with_dwell) == ("product", views, len(dwell))
    assert group.median_seconds == statistics.median(dwell)
    assert [b.views for b in group.histogram] == script.histogram(
        [1000 * d for d in dwell]
    )


# --------------------------------------------------------------------------- shoppers


@pytest.fixture(scope="module")
def shopper_rows() -> list[dict[str, str]]:
    with _need(SHOPPERS).open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_shopper_figures_match_a_csv_count(shoppers: Any,
                                           shopper_rows: list[dict[str, str]]) -> None:
    rows = shopper_rows
    assert shoppers.sessions == len(rows) == 12_330
    assert shoppers.buyers == sum(1 for r in rows if r["Revenue"].upper() in ("TRUE", "1"))
    totals = [sum(float(r[f"{kind}_Duration"]) for kind in script.PAGE_TYPES) for r in rows]
    assert shoppers.session_median == statistics.median(totals)
    assert shoppers.zero_duration == sum(1 for t in totals if t == 0)
    for figures in shoppers.types:
        pages = [int(r[figures.kind]) for r in rows]
        seconds = [float(r[f"{figures.kind}_Duration"]) for r in rows]
        assert figures.pages == sum(pages)
        assert figures.pooled_mean_seconds == pytest.approx(sum(seconds) / sum(pages))
        per_page = [s / p for s, p in zip(seconds, pages, strict=True) if p > 0]
        assert figures.median_per_page_seconds == pytest.approx(statistics.median(per_page))
        assert sum(figures.histogram) == sum(pages)
    assert sum(g.sessions for g in shoppers.groups) == shoppers.sessions


def test_dwell_runner_reads_the_synthetic_sessions_like_numpy(shoppers: Any) -> None:
    assert shoppers.synthetic_events == sum(t.pages for t in shoppers.types)
    for check, figures in zip(shoppers.checks, shoppers.types, strict=True):
        assert check.group.views == check.group.with_dwell == figures.pages
        assert [b.views for b in check.group.histogram] == figures.histogram
        assert check.agrees, check


def test_histogram_bins_are_half_open() -> None:
    edges_ms = [0, 999, 1000, 2999, 3000, 599_999, 600_000, 10**9]
    assert script.histogram(edges_ms) == [2, 2, 1, 0, 0, 0, 1, 2]


# --------------------------------------------------------------------------- the doc


def test_the_doc_holds_the_scripts_output_verbatim(taobao: Any, shoppers: Any) -> None:
    block = script.render(taobao, shoppers)
    assert script.BLOCK.extract(DOC.read_text(encoding="utf-8")) == block


def test_write_block_replaces_only_the_marked_part(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(f"intro\n{script.BEGIN}\nold\n{script.END}\nafter\n", encoding="utf-8")
    script.BLOCK.write(doc, f"{script.BEGIN}\nnew\n{script.END}\n")
    expected = ["intro", script.BEGIN, "new", script.END, "after"]
    assert doc.read_text(encoding="utf-8").splitlines() == expected
    fresh = tmp_path / "fresh.md"
    script.BLOCK.write(fresh, "block\n")
    assert fresh.read_text(encoding="utf-8") == "block\n"
