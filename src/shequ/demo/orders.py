"""Orders and order lines: heavy-tailed buyers, coupons, statuses and their timestamps.

Three kinds of orders are drawn: ordinary ones, the coupon-abuse ring's small coupon orders
and the orders of the review-burst batch (all delivered just before the burst).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from shequ.demo import sizes as sz
from shequ.demo.catalog import Catalog
from shequ.demo.order_status import Timeline, timeline
from shequ.demo.people import People
from shequ.demo.phrases_catalog import TOP_WEIGHTS
from shequ.demo.timing import DAY, HOUR, MINUTE, SEC, Floats, Ints, TimeSampler, Window, to_datetime

Row = dict[str, Any]
CHANNELS = ("app", "wechat_mini", "h5", "douyin", "web")
ORDER_CHANNEL_P = (0.55, 0.28, 0.07, 0.10)  # for mobile devices (pc devices order on web)
COUPONS = {  # code -> (threshold fen, discount fen)
    sz.COUPON_NEWBIE: (3_900, 2_000),
    "D11-50": (29_900, 5_000),
    "FULL200-20": (20_000, 2_000),
    "VIP15": (9_900, 1_500),
}
NORMAL, RING, BURST = 0, 1, 2
NONE = -1


@dataclass
class Orders:
    """Order arrays (index = position in ``rows``, sorted by ``created_at``)."""

    rows: list[Row]
    lines: list[Row]
    cust: Ints
    kind: Ints
    created_us: Ints
    paid_us: Ints
    shipped_us: Ints
    completed_us: Ints
    refunded_us: Ints
    channel: Ints
    device: Ints
    total_fen: Ints
    line_ptr: Ints
    line_product: Ints
    line_qty: Ints
    burst_review_us: Ints


def _normal_counts(rng: np.random.Generator, people: People, n: int, window: Window) -> Ints:
    """Orders per customer: multinomial over heavy-tailed propensity x active time."""
    active = np.clip((people.hi_us - people.lo_us) / (window.end_us - window.start_us), 0, 1)
    w = np.where(people.ring, 0.0, people.spend_w * active)
    counts = rng.multinomial(n, w / w.sum()).astype(np.int64)
    cap = 1 + (active * window.days / 1.5).astype(np.int64)  # at most ~one order per 1.5 days
    for _ in range(3):
        excess = int(np.maximum(counts - cap, 0).sum())
        counts = np.minimum(counts, cap)
        room = np.where(counts < cap, w, 0.0)
        counts += rng.multinomial(excess, room / room.sum())
    counts = np.minimum(counts, cap)
    lap = people.lapsing
    short = int(np.maximum(sz.LAPSING_MIN_ORDERS - counts[lap], 0).sum())
    counts[lap] = np.maximum(counts[lap], sz.LAPSING_MIN_ORDERS)
    units = np.repeat(np.flatnonzero(~lap), counts[~lap])
    take = rng.choice(units.size, size=min(short, units.size), replace=False)
    counts -= np.bincount(units[take], minlength=counts.size)
    return counts


def _burst_customers(rng: np.random.Generator, people: People, n: int, before_us: int) -> Ints:
    ok = ~people.ring & ~people.lapsing & (people.activity_w > 0) & (people.reg_us < before_us)
    w = np.where(ok, np.where(people.top == 0, 3.0, 1.0), 0.0)
    return rng.choice(w.size, size=n, replace=False, p=w / w.sum()).astype(np.int64)


def _draft(rng: np.random.Generator, people: People, size: sz.Size,
           window: Window) -> tuple[Ints, Ints, Ints, Ints]:
    """(customer, kind, lo, hi) of every order before its time is drawn."""
    days = sz.planted_days(window.days)
    ring_idx = np.flatnonzero(people.ring)
    ring_n = rng.integers(1, 4, ring_idx.size)
    burst_at = window.day_us(days.burst_start)
    burst = _burst_customers(rng, people, size.burst_reviews, burst_at - 10 * DAY)
    normal = _normal_counts(rng, people, size.orders - int(ring_n.sum()) - burst.size, window)
    cust = np.concatenate([np.repeat(np.arange(normal.size), normal),
                           np.repeat(ring_idx, ring_n), burst]).astype(np.int64)
    kind = np.repeat([NORMAL, RING, BURST], [int(normal.sum()), int(ring_n.sum()), burst.size])
    lo = np.maximum(people.lo_us[cust], people.reg_us[cust] + 2 * HOUR)
    lo = np.maximum(lo, window.start_us + HOUR)
    hi = np.where(people.lapsing[cust], people.hi_us[cust] - HOUR, people.hi_us[cust] - 20 * MINUTE)
    ring = kind == RING
    hi[ring] = np.minimum(people.reg_us[cust[ring]] + 5 * DAY, hi[ring])
    is_burst = kind == BURST
    lo[is_burst] = burst_at - 6 * DAY
    hi[is_burst] = burst_at - 3 * DAY - 12 * HOUR
    return cust, kind.astype(np.int64), lo.astype(np.int64), hi.astype(np.int64)


def _spaced_times(rng: np.random.Generator, sampler: TimeSampler, cust: Ints, lo: Ints,
                  hi: Ints) -> tuple[Ints, Ints]:
    """Creation times with two orders of one customer >= 2 h apart; returns (times, keep)."""
    t = sampler.sample(rng, lo, hi)
    keep = np.ones(t.size, dtype=bool)
    for attempt in range(60):
        idx = np.flatnonzero(keep)
        order = idx[np.lexsort((t[idx], cust[idx]))]
        c, tt = cust[order], t[order]
        bad = order[1:][(c[1:] == c[:-1]) & (tt[1:] - tt[:-1] < sz.ORDER_MIN_GAP_S * SEC)]
        if bad.size == 0:
            break
        if attempt == 59:
            keep[bad] = False
        else:
            t[bad] = sampler.sample(rng, lo[bad], hi[bad])
    return t, keep


def _devices_channels(rng: np.random.Generator, people: People, cust: Ints,
                      kind: Ints) -> tuple[Ints, Ints]:
    """The device (or -1) and sales channel of every order."""
    ptr = people.device_ptr
    n_dev = ptr[cust + 1] - ptr[cust]
    pick = ptr[cust] + (rng.random(cust.size) * n_dev).astype(np.int64)
    device = people.device_idx[np.minimum(pick, people.device_idx.size - 1)]
    device = np.where((kind == NORMAL) & (rng.random(cust.size) < 0.02), NONE, device)
    mobile = rng.choice(4, size=cust.size, p=ORDER_CHANNEL_P)
    ring_mobile = rng.choice([1, 2], size=cust.size)
    dev_kind = people.device_kind[np.maximum(device, 0)]
    channel = np.where(kind == RING, ring_mobile, mobile)
    channel = np.where((device >= 0) & (dev_kind == 2), 4, channel)
    no_device_web = (device < 0) & (rng.random(cust.size) < 0.1)
    return device.astype(np.int64), np.where(no_device_web, 4, channel).astype(np.int64)


def _lines(rng: np.random.Generator, catalog: Catalog, people: People, cust: Ints, kind: Ints,
           burst_product: int) -> tuple[Ints, Ints, Ints]:
    """(order index, product, quantity) of every line, grouped by order, one line per product."""
    n_lines = rng.choice([1, 2, 3, 4], size=cust.size, p=[0.62, 0.24, 0.10, 0.04])
    n_lines = np.where(kind == RING, rng.choice([1, 2], size=cust.size, p=[0.75, 0.25]), n_lines)
    n_lines = np.where(kind == BURST, 1, n_lines)
    owner = np.repeat(np.arange(cust.size), n_lines)
    global_top = rng.choice(5, size=owner.size, p=list(TOP_WEIGHTS))
    top = np.where(rng.random(owner.size) < 0.65, people.top[cust[owner]], global_top)
    product = _premium_pick(rng, catalog, top, _spend_rank(people)[cust[owner]])
    cheap = np.flatnonzero(catalog.price_fen <= 5_900)
    ring_line = kind[owner] == RING
    product[ring_line] = rng.choice(cheap, size=int(ring_line.sum()))
    product[kind[owner] == BURST] = burst_product
    _, first = np.unique(owner * catalog.price_fen.size + product, return_index=True)
    first.sort()
    owner, product = owner[first], product[first]
    qty = rng.choice([1, 2, 3, 4, 5], size=owner.size, p=[0.78, 0.14, 0.05, 0.02, 0.01])
    qty[kind[owner] != NORMAL] = 1
    return owner.astype(np.int64), product.astype(np.int64), qty.astype(np.int64)


def _spend_rank(people: People) -> Floats:
    """Percentile (0..1) of each customer's purchase propensity."""
    rank = np.empty(people.spend_w.size, dtype=np.float64)
    rank[np.argsort(people.spend_w, kind="stable")] = np.linspace(0.0, 1.0, rank.size)
    return rank


def _premium_pick(rng: np.random.Generator, catalog: Catalog, top: Ints, rank: Floats) -> Ints:
    """Products by popularity; big spenders tend to take the pricier of two candidates."""
    first = catalog.sample_products(rng, top)
    second = catalog.sample_products(rng, top)
    pricier = catalog.price_fen[second] > catalog.price_fen[first]
    return np.where(pricier & (rng.random(top.size) < rank), second, first).astype(np.int64)


def _ring_minimum(owner: Ints, product: Ints, qty: Ints, kind: Ints, price: Ints) -> Ints:
    """Raise ring quantities until each ring order reaches the newbie coupon threshold."""
    threshold = COUPONS[sz.COUPON_NEWBIE][0]
    subtotal = np.bincount(owner, weights=qty * price[product], minlength=kind.size)
    for o in np.flatnonzero((kind == RING) & (subtotal < threshold)).tolist():
        line = int(np.flatnonzero(owner == o)[0])
        missing = threshold - int(subtotal[o])
        qty[line] += -(-missing // int(price[product[line]]))
    return qty


def _coupons(rng: np.random.Generator, people: People, window: Window, cust: Ints, kind: Ints,
             created: Ints, subtotal: Ints) -> tuple[list[str | None], Ints]:
    """Coupon code and discount (fen) per order; the ring always uses the newbie coupon."""
    n = cust.size
    order = np.lexsort((created, cust))
    first = np.zeros(n, dtype=bool)
    first[order[np.r_[True, cust[order][1:] != cust[order][:-1]]]] = True
    dates = [window.local_date(int(d)) for d in window.day_index(created)]
    double11 = np.array([(d.month, d.day) in ((11, 10), (11, 11)) for d in dates], dtype=bool)
    roll = rng.random(n)
    newbie = (kind == RING) | (first & people.new[cust] & (kind == NORMAL) & (roll < 0.55))
    rules = [(newbie, sz.COUPON_NEWBIE), (double11 & (roll < 0.7), "D11-50"),
             (roll < 0.25, "FULL200-20"), (roll < 0.08, "VIP15")]
    codes: list[str | None] = [None] * n
    discount = np.zeros(n, dtype=np.int64)
    for mask, code in rules:
        threshold, off = COUPONS[code]
        hit = mask & (subtotal >= threshold) & (discount == 0) & (kind != BURST)
        discount[hit] = off
        for i in np.flatnonzero(hit).tolist():
            codes[i] = code
    return codes, discount


def _dt(us: int) -> Any:
    return None if us < 0 else to_datetime(us)


def _order_rows(people: People, cust: Ints, created: Ints, line: Timeline, channel: Ints,
                device: Ints, subtotal: Ints, codes: list[str | None], discount: Ints,
                rnd_pick: Ints) -> list[Row]:
    rows: list[Row] = []
    for i in range(cust.size):
        c = int(cust[i])
        addrs = people.addresses[c]
        rows.append({
            "external_id": f"o{i + 1:07d}", "customer_external_id": people.ext(c),
            "status": line.status[i], "channel": CHANNELS[int(channel[i])],
            "created_at": to_datetime(int(created[i])), "paid_at": _dt(int(line.paid[i])),
            "shipped_at": _dt(int(line.shipped[i])), "completed_at": _dt(int(line.completed[i])),
            "cancelled_at": _dt(int(line.cancelled[i])), "refunded_at": _dt(int(line.refunded[i])),
            "total_fen": int(subtotal[i] - discount[i]), "discount_fen": int(discount[i]),
            "coupon_code": codes[i],
            "device_external_id": None if device[i] < 0 else f"d{int(device[i]) + 1:07d}",
            "shipping_address": addrs[int(rnd_pick[i]) % len(addrs)],
            "payment_account": people.accounts[c],
        })
    return rows


def _line_rows(catalog: Catalog, owner: Ints, product: Ints, qty: Ints) -> list[Row]:
    return [{"order_external_id": f"o{o + 1:07d}", "sku": catalog.sku(p), "quantity": q,
             "unit_price_fen": int(catalog.price_fen[p])}
            for o, p, q in zip(owner.tolist(), product.tolist(), qty.tolist(), strict=True)]


def make_orders(rng: np.random.Generator, people: People, catalog: Catalog, size: sz.Size,
                window: Window, sampler: TimeSampler, burst_product: int) -> Orders:
    """All orders and lines, sorted by creation time."""
    cust, kind, lo, hi = _draft(rng, people, size, window)
    created, keep = _spaced_times(rng, sampler, cust, lo, hi)
    order = np.flatnonzero(keep)[np.argsort(created[keep], kind="stable")]
    cust, kind, created = cust[order], kind[order], created[order]
    device, channel = _devices_channels(rng, people, cust, kind)
    owner, product, qty = _lines(rng, catalog, people, cust, kind, burst_product)
    qty = _ring_minimum(owner, product, qty, kind, catalog.price_fen)
    subtotal = np.bincount(owner, weights=qty * catalog.price_fen[product],
                           minlength=cust.size).astype(np.int64)
    codes, discount = _coupons(rng, people, window, cust, kind, created, subtotal)
    burst_at = window.day_us(sz.planted_days(window.days).burst_start)
    n = cust.size
    review = np.where(kind == BURST, sampler.sample(
        rng, np.full(n, burst_at), np.full(n, burst_at + sz.BURST_HOURS * HOUR)), NONE)
    line = timeline(rng, window, kind, channel, created, people.hi_us[cust], review)
    rows = _order_rows(people, cust, created, line, channel, device, subtotal, codes, discount,
                       (rng.random(n) < 0.25).astype(np.int64))
    ptr = np.concatenate([[0], np.cumsum(np.bincount(owner, minlength=n))]).astype(np.int64)
    return Orders(
        rows=rows, lines=_line_rows(catalog, owner, product, qty), cust=cust, kind=kind,
        created_us=created, paid_us=line.paid, shipped_us=line.shipped,
        completed_us=line.completed, refunded_us=line.refunded, channel=channel, device=device,
        total_fen=subtotal - discount, line_ptr=ptr, line_product=product, line_qty=qty,
        burst_review_us=review.astype(np.int64),
    )
