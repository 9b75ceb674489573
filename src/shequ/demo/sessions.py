"""The session plan: who visits when, on which channel and device, and how many events.

Events are produced per session (see :mod:`shequ.demo.events`). The plan is a set of numpy
arrays, one entry per session, built once; it holds everything that must be consistent
with the entity rows: purchase sessions end in the order's ``checkout`` at ``created_at``
and its ``payment`` at ``paid_at``; sign-up sessions hold ``signup`` at ``registered_at``;
merge sessions are an anonymous visitor's last visit, where it logs in as a customer.
Sessions of one customer are more than 30 minutes apart, so they can be re-derived.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from shequ.demo.orders import Orders
from shequ.demo.people import People
from shequ.demo.phrases_catalog import TOP_WEIGHTS
from shequ.demo.timing import HOUR, MINUTE, SEC, Arr, Bools, Ints, TimeSampler, Window, seconds

BROWSE_C, BROWSE_A, ORDER, SIGNUP, MERGE = 0, 1, 2, 3, 4
NONE = -1
MAX_PART = 25 * MINUTE  # each side of the anchor lasts at most 25 min: gaps stay < 30 min
SESSION_GAP = 30 * MINUTE
BROWSE_CHANNEL_P = (0.42, 0.28, 0.12, 0.18)  # app, wechat_mini, h5, douyin for phones
ANON_CHANNEL_P = (0.08, 0.30, 0.26, 0.26, 0.10)  # app, wechat_mini, h5, douyin, web
ANON_SHARE = 0.25  # of browse sessions
MERGE_SHARE = 0.05  # merge sessions per customer
LEAD_LOGIN = 0.05  # customer browse sessions that start with a plain login


@dataclass
class Plan:
    """One entry per session, sorted by session start."""

    kind: Ints
    cust: Ints
    anon: Ints
    order: Ints
    device: Ints
    channel: Ints
    anchor_us: Ints
    d_pre: Ints
    d_post: Ints
    n_pre: Ints
    n_post: Ints
    focus_top: Ints
    lead_login: Bools

    def take(self, index: Ints) -> Plan:
        """The sessions at ``index``, in that order."""
        return Plan(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @staticmethod
    def concat(parts: list[Plan]) -> Plan:
        """All sessions of ``parts``."""
        return Plan(**{f.name: np.concatenate([getattr(p, f.name) for p in parts])
                       for f in fields(Plan)})

    @property
    def start_us(self) -> Ints:
        """First event time of each session."""
        return self.anchor_us - self.d_pre

    @property
    def end_us(self) -> Ints:
        """Last event time of each session."""
        return self.anchor_us + self.d_post


def _part(kind: int, cust: Arr, anon: Arr, at: Arr, n_pre: Arr, n_post: Arr) -> Plan:
    """Sessions with everything but devices, channels and durations filled in."""
    n = at.size
    full = np.full(n, NONE, dtype=np.int64)
    return Plan(kind=np.full(n, kind, dtype=np.int64), cust=cust.astype(np.int64),
                anon=anon.astype(np.int64), order=full.copy(), device=full.copy(),
                channel=np.zeros(n, dtype=np.int64), anchor_us=at.astype(np.int64),
                d_pre=np.zeros(n, dtype=np.int64), d_post=np.zeros(n, dtype=np.int64),
                n_pre=n_pre.astype(np.int64), n_post=n_post.astype(np.int64),
                focus_top=np.zeros(n, dtype=np.int64), lead_login=np.zeros(n, dtype=bool))


def scripted_counts(plan: Plan, orders: Orders) -> tuple[Ints, Ints]:
    """(scripted slots before the anchor, after the anchor) of each session."""
    is_order = plan.kind == ORDER
    o = np.maximum(plan.order, 0)
    lines = np.diff(orders.line_ptr)[o]
    pre = np.where(is_order, 2 * lines + 1, 0)
    post = np.where(is_order & (orders.paid_us[o] >= 0), 1, 0)
    return pre.astype(np.int64), post.astype(np.int64)


def event_counts(plan: Plan, orders: Orders) -> Ints:
    """Number of events of each session."""
    pre, post = scripted_counts(plan, orders)
    return plan.n_pre + plan.n_post + 1 + pre + post


def _browse_lengths(rng: np.random.Generator, n: int, anon: Bools) -> Ints:
    """Filler events after the entry event: 22 % bounce, otherwise heavy-tailed."""
    length = 1 + np.floor(rng.lognormal(np.where(anon, 1.0, 1.55), 0.8, n))
    length = np.where(rng.random(n) < 0.22, 0, np.minimum(length, 60))
    return length.astype(np.int64)


def _order_sessions(rng: np.random.Generator, orders: Orders) -> Plan:
    n = orders.cust.size
    plan = _part(ORDER, orders.cust, np.full(n, NONE), orders.created_us,
                 rng.poisson(0.8, n), np.zeros(n, dtype=np.int64))
    plan.order = np.arange(n, dtype=np.int64)
    plan.device = orders.device.copy()
    plan.channel = orders.channel.copy()
    plan.d_post = np.where(orders.paid_us >= 0, orders.paid_us - orders.created_us, 0)
    return plan


def _signup_sessions(rng: np.random.Generator, people: People, first_anon: int) -> Plan:
    cust = np.flatnonzero(people.new).astype(np.int64)
    n = cust.size
    plan = _part(SIGNUP, cust, first_anon + np.arange(n), people.reg_us[cust],
                 1 + rng.poisson(2.0, n), rng.poisson(2.5, n))
    plan.device = people.device_idx[people.device_ptr[cust]]
    return plan


def _merge_sessions(rng: np.random.Generator, people: People, sampler: TimeSampler,
                    first_anon: int) -> Plan:
    ok = ~people.new & ~people.ring & ~people.lapsing & (people.activity_w > 0)
    w = np.where(ok, people.activity_w, 0.0)
    n = min(int(ok.sum()), round(MERGE_SHARE * people.reg_us.size))
    cust = np.sort(rng.choice(w.size, size=n, replace=False, p=w / w.sum())).astype(np.int64)
    window = sampler.window
    at = sampler.sample(rng, np.full(n, window.start_us + 24 * HOUR), people.hi_us[cust] - HOUR)
    return _part(MERGE, cust, first_anon + np.arange(n), at, 1 + rng.poisson(2.5, n),
                 rng.poisson(3.0, n))


def _customer_browse(rng: np.random.Generator, people: People, sampler: TimeSampler,
                     n_post: Ints) -> Plan:
    """Browse sessions of known customers, spread by visit propensity and active time."""
    window = sampler.window
    lo = np.where(people.new, people.reg_us + 40 * MINUTE, people.lo_us + MINUTE)
    hi = people.hi_us - HOUR
    span = np.clip((hi - lo) / (window.end_us - window.start_us), 0, 1)
    w = np.where(hi > lo, people.activity_w * span, 0.0)
    cust = np.sort(rng.choice(w.size, size=n_post.size, p=w / w.sum())).astype(np.int64)
    at = sampler.sample(rng, lo[cust], hi[cust])
    plan = _part(BROWSE_C, cust, np.full(cust.size, NONE), at, np.zeros(cust.size), n_post)
    plan.lead_login = rng.random(cust.size) < LEAD_LOGIN
    return plan


def _group_offsets(sizes: Ints, gaps: Ints) -> Ints:
    """Per element, the cumulative sum of ``gaps`` within its group (groups of ``sizes``)."""
    total = np.cumsum(gaps)
    starts = np.repeat(np.cumsum(sizes) - sizes, sizes)
    before = np.concatenate([[0], total])[starts]
    out: Ints = (total - before).astype(np.int64)
    return out


def _earlier_visits(rng: np.random.Generator, finals: Plan, n_post: Ints) -> Plan:
    """Anonymous visits of converting visitors before their sign-up or merge session."""
    k = np.minimum(rng.geometric(0.6, finals.anon.size) - 1, 3)
    k[np.cumsum(k) > n_post.size] = 0
    anon = np.repeat(finals.anon, k)
    gaps = seconds(rng.uniform(8 * 3600, 5 * 86400, anon.size))
    at = np.repeat(finals.anchor_us - finals.d_pre, k) - _group_offsets(k, gaps)
    return _part(BROWSE_A, np.full(anon.size, NONE), anon, at, np.zeros(anon.size),
                 n_post[: anon.size])


def _pure_visitors(rng: np.random.Generator, sampler: TimeSampler, n_post: Ints,
                   first_anon: int) -> Plan:
    """Anonymous visitors who never log in: 1-4 visits each, at least 8 h apart."""
    n = n_post.size
    visits = np.minimum(rng.geometric(0.55, n), 4)
    visits = visits[: int(np.searchsorted(np.cumsum(visits), n)) + 1]
    visits[-1] -= int(visits.sum()) - n
    visits = visits[visits > 0]
    window = sampler.window
    first = sampler.sample(rng, np.full(visits.size, window.start_us + HOUR),
                           np.full(visits.size, window.end_us - HOUR))
    gaps = seconds(rng.uniform(8 * 3600, 6 * 86400, n))
    gaps[np.cumsum(visits) - visits] = 0
    at = np.repeat(first, visits) + _group_offsets(visits, gaps)
    anon = first_anon + np.repeat(np.arange(visits.size), visits)
    return _part(BROWSE_A, np.full(n, NONE), anon, at, np.zeros(n), n_post)


def _browse_budget(rng: np.random.Generator, remaining: int) -> tuple[Ints, Bools]:
    """Browse sessions' filler lengths and anonymity until ``remaining`` events are used."""
    guess = max(16, int(remaining / 5) + 64)
    anon = rng.random(guess) < ANON_SHARE
    n_post = _browse_lengths(rng, guess, anon)
    used = np.cumsum(1 + n_post)
    cut = int(np.searchsorted(used, remaining)) + 1
    if cut > guess:
        raise ValueError("event budget too large for the browse-session draw")
    return n_post[:cut], anon[:cut]


def _durations(rng: np.random.Generator, plan: Plan, orders: Orders) -> None:
    """Span before and after the anchor: ~22 s per gap, log-normal, capped at 25 min."""
    pre, _post = scripted_counts(plan, orders)
    slots_pre = plan.n_pre + pre
    n = slots_pre.size
    raw_pre = slots_pre * 22 * SEC * rng.lognormal(0.0, 0.5, n)
    plan.d_pre = np.clip(raw_pre, slots_pre * 2 * SEC, MAX_PART).astype(np.int64) // SEC * SEC
    raw_post = plan.n_post * 22 * SEC * rng.lognormal(0.0, 0.5, n)
    d_post = np.clip(raw_post, plan.n_post * 2 * SEC, MAX_PART).astype(np.int64) // SEC * SEC
    plan.d_post = np.where(plan.kind == ORDER, plan.d_post, d_post).astype(np.int64)


def _devices_channels(rng: np.random.Generator, plan: Plan, people: People) -> None:
    n = plan.kind.size
    c = np.maximum(plan.cust, 0)
    ptr = people.device_ptr
    pick = ptr[c] + (rng.random(n) * (ptr[c + 1] - ptr[c])).astype(np.int64)
    choose = (plan.kind == BROWSE_C) | (plan.kind == MERGE)
    device = np.where(choose, people.device_idx[np.minimum(pick, ptr[-1] - 1)], plan.device)
    device = np.where(plan.kind == BROWSE_A, NONE, device)
    mobile = rng.choice(4, size=n, p=BROWSE_CHANNEL_P)
    channel = np.where(people.device_kind[np.maximum(device, 0)] == 2, 4, mobile)
    channel = np.where(plan.kind == BROWSE_A, rng.choice(5, size=n, p=ANON_CHANNEL_P), channel)
    plan.device = device.astype(np.int64)
    plan.channel = np.where(plan.kind == ORDER, plan.channel, channel).astype(np.int64)


def _focus(rng: np.random.Generator, plan: Plan, people: People, orders: Orders,
           product_top: Ints) -> None:
    n = plan.kind.size
    own = np.where(plan.cust >= 0, people.top[np.maximum(plan.cust, 0)], 0)
    glob = rng.choice(5, size=n, p=list(TOP_WEIGHTS))
    top = np.where((plan.cust >= 0) & (rng.random(n) < 0.6), own, glob)
    first_line = orders.line_ptr[:-1][np.maximum(plan.order, 0)]
    ordered = product_top[orders.line_product[np.minimum(first_line, orders.line_product.size - 1)]]
    plan.focus_top = np.where(plan.kind == ORDER, ordered, top).astype(np.int64)


def _conflicts(plan: Plan, alive: Bools) -> Ints:
    """Sessions to drop so that a customer's sessions are > 30 min apart (anchored stay)."""
    idx = np.flatnonzero(alive & (plan.cust >= 0))
    idx = idx[np.lexsort((plan.start_us[idx], plan.cust[idx]))]
    same = plan.cust[idx][1:] == plan.cust[idx][:-1]
    close = plan.start_us[idx][1:] - plan.end_us[idx][:-1] <= SESSION_GAP
    later, earlier = idx[1:][same & close], idx[:-1][same & close]
    droppable = (plan.kind == BROWSE_C) | (plan.kind == MERGE)
    drop = np.where(droppable[later], later, np.where(droppable[earlier], earlier, NONE))
    return np.unique(drop[drop >= 0]).astype(np.int64)


def _resolve(plan: Plan, window: Window) -> Plan:
    """Drop sessions outside the window and browse/merge sessions too close to another."""
    alive = (plan.start_us >= window.start_us) & (plan.end_us < window.end_us)
    for _ in range(50):
        drop = _conflicts(plan, alive)
        if drop.size == 0:
            break
        alive[drop] = False
    return plan.take(np.flatnonzero(alive))


def _top_up(rng: np.random.Generator, plan: Plan, orders: Orders, target: int) -> None:
    """Add or remove browse filler events so the plan has exactly ``target`` events."""
    deficit = target - int(event_counts(plan, orders).sum())
    browse = (plan.kind == BROWSE_C) | (plan.kind == BROWSE_A)
    if deficit > 0:
        w = np.where(browse & (plan.n_post > 0), plan.n_post, 0).astype(np.float64)
        plan.n_post += rng.multinomial(deficit, w / w.sum())
    elif deficit < 0:
        spare = np.where(browse, np.maximum(plan.n_post - 1, 0), 0)
        units = np.repeat(np.arange(spare.size), spare)
        take = rng.choice(units.size, size=min(-deficit, units.size), replace=False)
        plan.n_post -= np.bincount(units[take], minlength=spare.size)


def make_plan(rng: np.random.Generator, people: People, orders: Orders, product_top: Ints,
              sampler: TimeSampler, events: int) -> Plan:
    """The full session plan with exactly ``events`` events, sorted by session start."""
    fixed = Plan.concat([
        _order_sessions(rng, orders), _signup_sessions(rng, people, 0),
        _merge_sessions(rng, people, sampler, int(people.new.sum())),
    ])
    remaining = events - int(event_counts(fixed, orders).sum())
    if remaining < 1000:
        raise ValueError(f"event budget {events} too small for {orders.cust.size} orders")
    n_post, anon = _browse_budget(rng, remaining)
    finals = fixed.take(np.flatnonzero(fixed.kind != ORDER))
    earlier = _earlier_visits(rng, finals, n_post[anon])
    first_pure = int(finals.anon.max(initial=-1)) + 1
    pure = _pure_visitors(rng, sampler, n_post[anon][earlier.kind.size:], first_pure)
    plan = Plan.concat([fixed, _customer_browse(rng, people, sampler, n_post[~anon]),
                        earlier, pure])
    _durations(rng, plan, orders)
    _devices_channels(rng, plan, people)
    _focus(rng, plan, people, orders, product_top)
    plan = _resolve(plan, sampler.window)
    _top_up(rng, plan, orders, events)
    order = np.lexsort((plan.order, plan.anon, plan.cust, plan.kind, plan.start_us))
    return plan.take(order)


def device_first_use(plan: Plan, n_devices: int) -> Ints:
    """Earliest session start per device (a large value for unused devices)."""
    first = np.full(n_devices, np.iinfo(np.int64).max, dtype=np.int64)
    used = plan.device >= 0
    np.minimum.at(first, plan.device[used], plan.start_us[used])
    return first
