"""Column values of the events of one block of sessions, assembled into an Arrow table."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from shequ.demo import event_context as ec
from shequ.demo.arrowfmt import mix64, prefixed_hex, seed_key, take_strings, uuid_strings
from shequ.demo.event_context import EventContext
from shequ.demo.sessions import BROWSE_A, MERGE, ORDER, SIGNUP, Plan
from shequ.demo.slots import (
    ANCHOR,
    CART,
    CHECKOUT,
    CLICK,
    COMMENT,
    LIKE,
    LOGIN,
    PAYMENT,
    POST,
    PRODUCT,
    PV,
    SEARCH,
    SHARE,
    SIGNUP_EV,
    Slots,
    build_slots,
    first_where,
    session_starts,
)
from shequ.demo.timing import Bools, Floats, Ints

EVENT_SCHEMA = pa.schema([
    ("event_id", pa.string()), ("name", pa.string()), ("ts", pa.timestamp("us", tz="UTC")),
    ("customer_id", pa.string()), ("anonymous_id", pa.string()), ("session_id", pa.string()),
    ("device_id", pa.string()), ("page", pa.string()), ("referrer", pa.string()),
    ("channel", pa.string()), ("properties", pa.string()), ("x", pa.float64()),
    ("y", pa.float64()), ("dwell_ms", pa.int64()),
])
SOCIAL = (LIKE, SHARE, COMMENT)
POSTISH = (POST, LIKE, SHARE, COMMENT)
NEVER = np.iinfo(np.int64).max


def _time_bounded_posts(rng: np.random.Generator, ctx: EventContext, at: Ints) -> Ints:
    """Posts (popularity-weighted) that already existed at ``at``."""
    bound = np.maximum(np.searchsorted(ctx.post_created_us, at, side="right"), 1)
    x = rng.random(at.size) * ctx.post_cum[bound]
    idx = np.searchsorted(ctx.post_cum, x, side="right") - 1
    return np.clip(idx, 0, bound - 1).astype(np.int64)


def _focus(rng: np.random.Generator, ctx: EventContext, plan: Plan) -> tuple[Ints, Ints]:
    """Per session: the product it is about and the post it is about."""
    product = ctx.catalog.sample_products(rng, plan.focus_top)
    orders = ctx.orders
    first_line = orders.line_ptr[np.maximum(plan.order, 0)]
    ordered = orders.line_product[np.minimum(first_line, orders.line_product.size - 1)]
    product = np.where(plan.kind == ORDER, ordered, product)
    return product.astype(np.int64), _time_bounded_posts(rng, ctx, plan.start_us)


def _assign(rng: np.random.Generator, ctx: EventContext, plan: Plan, slots: Slots,
            focus_product: Ints, focus_post: Ints) -> Ints:
    """Products of filler product views / add-to-carts; returns the post of every slot."""
    sess, n = slots.sess, slots.sess.size
    other = ctx.catalog.sample_products(rng, plan.focus_top[sess])
    own = rng.random(n) < 0.5
    view = slots.filler & (slots.name == PRODUCT)
    cart = slots.filler & (slots.name == CART)
    slots.product = np.where(view, np.where(own, focus_product[sess], other), slots.product)
    slots.product = np.where(cart, focus_product[sess], slots.product)
    slots.qty = np.where(cart, 1 + (rng.random(n) < 0.15), slots.qty)
    other_post = _time_bounded_posts(rng, ctx, plan.start_us[sess])
    social = np.isin(slots.name, SOCIAL)
    post = np.where(social | own, focus_post[sess], other_post)
    return np.where(np.isin(slots.name, POSTISH), post, -1).astype(np.int64)


def _anon_part(plan: Plan, slots: Slots) -> Bools:
    """Slots of anonymous visitors (whole visits, or the part before sign-up / login)."""
    kind = plan.kind[slots.sess]
    converting = (kind == SIGNUP) | (kind == MERGE)
    out: Bools = (kind == BROWSE_A) | (converting & (slots.key < ANCHOR))
    return out


def _fix_order(slots: Slots, post: Ints, anon: Bools, focus_product: Ints,
               focus_post: Ints) -> None:
    """Visitors cannot like or comment; an add-to-cart or a like needs a view before it."""
    name, sess, n_sess = slots.name, slots.sess, focus_product.size
    name[anon & slots.filler & ((name == LIKE) | (name == COMMENT))] = POST
    cart = first_where(slots.filler & (name == CART), sess, n_sess)
    seen = first_where(slots.filler & (name == PRODUCT) & (slots.product == focus_product[sess]),
                       sess, n_sess)
    fix = np.flatnonzero((cart < seen) & (cart < NEVER))
    name[cart[fix]] = PRODUCT
    social = first_where(slots.filler & np.isin(name, SOCIAL), sess, n_sess)
    viewed = first_where(slots.filler & (name == POST) & (post == focus_post[sess]), sess, n_sess)
    fix = np.flatnonzero((social < viewed) & (social < NEVER))
    name[social[fix]] = POST


def _group_cumsum(values: Floats, sess: Ints, starts: Ints) -> Floats:
    total = np.cumsum(values)
    before = np.concatenate([[0.0], total])[starts][sess]
    out: Floats = total - before
    return out


def _timestamps(rng: np.random.Generator, ctx: EventContext, plan: Plan, slots: Slots,
                starts: Ints) -> Ints:
    """Event times: anchors exact, others spread over the session's spans by random gaps."""
    sess, n_sess = slots.sess, plan.kind.size
    gaps = rng.lognormal(0.0, 1.2, sess.size)
    pre, post = slots.key < ANCHOR, slots.key > ANCHOR
    gp, gq = np.where(pre, gaps, 0.0), np.where(post, gaps, 0.0)
    tot_p = np.bincount(sess, weights=gp, minlength=n_sess)[sess]
    tot_q = np.bincount(sess, weights=gq, minlength=n_sess)[sess]
    remaining = (tot_p - _group_cumsum(gp, sess, starts) + gp) / np.where(tot_p > 0, tot_p, 1.0)
    done = _group_cumsum(gq, sess, starts) / np.where(tot_q > 0, tot_q, 1.0)
    anchor = plan.anchor_us[sess]
    before = anchor - np.rint(plan.d_pre[sess] * remaining).astype(np.int64)
    after = anchor + np.rint(plan.d_post[sess] * np.minimum(done, 1.0)).astype(np.int64)
    ts = np.where(pre, before, np.where(post, after, anchor))
    pay = slots.name == PAYMENT
    ts[pay] = ctx.orders.paid_us[plan.order[sess[pay]]]
    return ts.astype(np.int64)


def _pv_pages(rng: np.random.Generator, ctx: EventContext, top: Ints, slots: Slots) -> Ints:
    """Pages of page views: landing pages for entries, wider mix for later views."""
    n = top.size
    cat, hub = ctx.off.categories + top, ctx.hub_page_by_top[top]
    home, me = np.full(n, ec.HOME), np.full(n, ec.ME)
    entry = np.choose(rng.choice(4, n, p=[0.65, 0.15, 0.12, 0.08]), [home, cat, hub, me])
    later = np.choose(rng.choice(6, n, p=[0.35, 0.2, 0.2, 0.1, 0.1, 0.05]),
                      [home, cat, hub, np.full(n, ec.CART_PAGE), me, np.full(n, ec.SEARCH_PAGE)])
    return np.where(slots.page >= 0, slots.page, np.where(slots.filler, later, entry))


def _pages(rng: np.random.Generator, ctx: EventContext, plan: Plan, slots: Slots, post: Ints,
           starts: Ints) -> Ints:
    """Page of every event; a click happens on the page of the last non-click event."""
    name, off = slots.name, ctx.off
    page = np.select(
        [name == PV, name == SEARCH, (name == PRODUCT) | (name == CART), name == CHECKOUT,
         name == PAYMENT, np.isin(name, POSTISH), name == LOGIN, name == SIGNUP_EV],
        [_pv_pages(rng, ctx, plan.focus_top[slots.sess], slots), ec.SEARCH_PAGE,
         off.products + slots.product, ec.CHECKOUT_PAGE, ec.PAY_PAGE, off.posts + post,
         ec.LOGIN_PAGE, ec.SIGNUP_PAGE], ec.HOME)
    index = np.arange(name.size)
    last = np.maximum.accumulate(np.where(name != CLICK, index, -1))
    in_session = last >= starts[slots.sess]
    clicked = np.where(in_session, page[np.maximum(last, 0)], ec.HOME)
    return np.where(name == CLICK, clicked, page).astype(np.int64)


def _referrers(rng: np.random.Generator, ctx: EventContext, plan: Plan, slots: Slots,
               page: Ints, starts: Ints) -> Ints:
    """The previous page of the session, or where the visit came from (or -1)."""
    n, base = page.size, ctx.off.referrers
    channel = plan.channel[slots.sess]
    h5 = np.choose(rng.choice(4, n), [np.full(n, base + 2), np.full(n, base + 3),
                                       np.full(n, base + 4), np.full(n, -1)])
    web = np.where(rng.random(n) < 0.5, base + 2, -1)
    external = np.select([channel == 3, channel == 1, channel == 2, channel == 4],
                         [base, base + 1, h5, web], -1)
    first = np.arange(n) == starts[slots.sess]
    return np.where(first, external, np.roll(page, 1)).astype(np.int64)


def _clicks(rng: np.random.Generator, is_click: Bools) -> tuple[Ints, Floats, Floats]:
    """Clicked element and normalised click position (NaN when not a click)."""
    n = is_click.size
    spec = np.array([e[1:] for e in ec.CLICK_ELEMENTS], dtype=np.float64)
    element = rng.choice(len(ec.CLICK_ELEMENTS), n, p=spec[:, 4] / spec[:, 4].sum())
    x = np.clip(rng.normal(spec[element, 0], spec[element, 2]), 0.0, 1.0)
    y = np.clip(rng.normal(spec[element, 1], spec[element, 3]), 0.0, 1.0)
    return element.astype(np.int64), np.where(is_click, x, np.nan), np.where(is_click, y, np.nan)


def _props(rng: np.random.Generator, ctx: EventContext, plan: Plan, slots: Slots,
           post: Ints, element: Ints) -> Ints:
    """Index into the ``properties`` vocabulary of every event."""
    name, off, n = slots.name, ctx.off, slots.name.size
    top = plan.focus_top[slots.sess]
    query = off.search + ec.QUERY_OFFSETS[top] + (rng.random(n) * ec.QUERY_COUNTS[top]).astype(int)
    order = plan.order[slots.sess]
    qty = np.clip(slots.qty, 1, ec.MAX_QTY) - 1
    method = rng.choice(3, n, p=[0.5, 0.4, 0.1])
    props: Ints = np.select(
        [name == CLICK, name == SEARCH, name == PRODUCT, name == CART, name == CHECKOUT,
         name == PAYMENT, (name == POST) | (name == LIKE) | (name == COMMENT), name == SHARE,
         name == LOGIN, name == SIGNUP_EV],
        [off.click + element, query, off.view + slots.product,
         off.cart + slots.product * ec.MAX_QTY + qty, off.checkout + order, off.payment + order,
         off.post + post, off.share + post * 3 + rng.integers(0, 3, n), off.login + method,
         off.signup + method], 0).astype(np.int64)
    return props


def _dwell(rng: np.random.Generator, slots: Slots, ts: Ints, starts: Ints) -> Ints:
    """Milliseconds on a page: until the next event, else heavy-tailed (-1 = not a view)."""
    n = ts.size
    nxt = np.minimum(np.arange(n) + 1, n - 1)
    has_next = (np.arange(n) < n - 1) & (starts[slots.sess[nxt]] == starts[slots.sess])
    tail = np.minimum(rng.lognormal(np.log(15_000), 1.1, n), 1_800_000).astype(np.int64)
    dwell = np.where(has_next & (nxt != np.arange(n)), (ts[nxt] - ts) // 1000, tail)
    viewing = np.isin(slots.name, (PV, PRODUCT, POST))
    return np.where(viewing, np.maximum(dwell, 0), -1).astype(np.int64)


def _id_vocab(prefix: str, values: Ints, salt: int, seed: int) -> tuple[pa.Array, Ints]:
    """Formatted ids of the distinct non-negative ``values`` and each value's vocab index."""
    valid = values >= 0
    uniq, inverse = np.unique(values[valid], return_inverse=True)
    vocab = prefixed_hex(prefix, mix64(uniq.astype(np.uint64) + seed_key(seed, salt)))
    index = np.full(values.size, -1, dtype=np.int64)
    index[valid] = inverse
    return vocab, index


def _string_columns(ctx: EventContext, plan: Plan, slots: Slots, first: int, counter: int,
                    order: Ints) -> list[pa.Array]:
    """event_id, name, customer_id, anonymous_id, session_id, device_id, channel."""
    n, sess = order.size, slots.sess[order]
    anon_part = _anon_part(plan, slots)[order]
    serial = (np.arange(n, dtype=np.uint64) + np.uint64(counter)) + seed_key(ctx.seed, 1)
    high = mix64(serial)
    event_id = uuid_strings(high, mix64(high ^ seed_key(ctx.seed, 2)))
    anon_vocab, anon_idx = _id_vocab("anon-", plan.anon[sess], 3, ctx.seed)
    sess_vocab, sess_idx = _id_vocab("sess-", first + sess, 4, ctx.seed)
    customer = np.where(anon_part, -1, plan.cust[sess])
    device = np.where(anon_part, -1, plan.device[sess])
    return [event_id, take_strings(ctx.names, slots.name[order]),
            take_strings(ctx.customers, customer), take_strings(anon_vocab, anon_idx),
            take_strings(sess_vocab, sess_idx), take_strings(ctx.devices, device),
            take_strings(ctx.channels, plan.channel[sess])]


def event_table(ctx: EventContext, plan: Plan, first: int, counter: int) -> pa.Table:
    """Events of the sessions ``plan`` (global index ``first`` onwards), ids from ``counter``."""
    rng = np.random.default_rng([ctx.seed, 0xE7, first])
    slots = build_slots(rng, plan, ctx.orders, ctx.filler_p)
    starts = session_starts(slots.sess, plan.kind.size)
    focus_product, focus_post = _focus(rng, ctx, plan)
    post = _assign(rng, ctx, plan, slots, focus_product, focus_post)
    _fix_order(slots, post, _anon_part(plan, slots), focus_product, focus_post)
    ts = _timestamps(rng, ctx, plan, slots, starts)
    page = _pages(rng, ctx, plan, slots, post, starts)
    referrer = _referrers(rng, ctx, plan, slots, page, starts)
    element, x, y = _clicks(rng, slots.name == CLICK)
    props = _props(rng, ctx, plan, slots, post, element)
    dwell = _dwell(rng, slots, ts, starts)
    order = np.lexsort((np.arange(ts.size), ts))
    ident = _string_columns(ctx, plan, slots, first, counter, order)
    columns = [ident[0], ident[1], pa.array(ts[order], pa.timestamp("us", tz="UTC")),
               ident[2], ident[3], ident[4], ident[5], take_strings(ctx.pages, page[order]),
               take_strings(ctx.pages, referrer[order]), ident[6],
               take_strings(ctx.props, props[order]),
               pa.array(x[order], mask=np.isnan(x[order])),
               pa.array(y[order], mask=np.isnan(y[order])),
               pa.array(dwell[order], pa.int64(), mask=dwell[order] < 0)]
    return pa.Table.from_arrays(columns, schema=EVENT_SCHEMA)
