"""Event slots: which events a block of sessions has, in which order, before any column.

A session's slots are: filler events before the anchor, scripted events (a purchase's product
views, add-to-carts and cart page), the anchor (entry page, ``checkout``, ``signup`` or the
merging ``login``), then ``payment`` or filler events after it. Sort keys place them: filler
before the anchor in [0, 10), scripted purchase steps in [10, 20), the anchor at 50, the
payment at 60 and filler after the anchor in [70, 80).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from shequ.demo import sizes as sz
from shequ.demo.orders import Orders
from shequ.demo.sessions import MERGE, ORDER, SIGNUP, Plan
from shequ.demo.timing import Bools, Floats, Ints

(PV, CLICK, SEARCH, PRODUCT, CART, CHECKOUT, PAYMENT, POST, LIKE, SHARE, COMMENT, LOGIN,
 SIGNUP_EV) = range(13)
STAGE: Floats = np.array([0, 2, 1, 2, 5.5, 9, 9, 2, 4, 4.5, 4, 0, 0], dtype=np.float64)
OTHER_WEIGHTS = {PV: 0.30, CLICK: 0.24, SEARCH: 0.10, POST: 0.22, LIKE: 0.07, SHARE: 0.03,
                 COMMENT: 0.04}
CART_COMPENSATION = 1.12  # some filler carts become views (event_fields._fix_order)
ANCHOR = 50.0
POST_REGION = 70.0


@dataclass
class Slots:
    """One entry per event of a block (``sess`` is the block-local session index)."""

    sess: Ints
    key: Floats
    name: Ints
    product: Ints
    qty: Ints
    page: Ints
    filler: Bools

    def take(self, index: Ints) -> Slots:
        """The slots at ``index``."""
        return Slots(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @staticmethod
    def concat(parts: list[Slots]) -> Slots:
        """All slots of ``parts``."""
        return Slots(**{f.name: np.concatenate([getattr(p, f.name) for p in parts])
                        for f in fields(Slots)})


def _slots(sess: Ints, key: Floats, name: Ints, filler: bool) -> Slots:
    n = sess.size
    none = np.full(n, -1, dtype=np.int64)
    return Slots(sess=sess.astype(np.int64), key=key.astype(np.float64), name=name.astype(np.int64),
                 product=none, qty=np.zeros(n, dtype=np.int64), page=none.copy(),
                 filler=np.full(n, filler))


def filler_probabilities(plan: Plan, orders: Orders) -> Floats:
    """Name probabilities of filler events, set so the funnel has its target shape."""
    filler = int((plan.n_pre + plan.n_post).sum())
    lines = int(orders.line_ptr[-1])
    carts = orders.cust.size / sz.CART_TO_CHECKOUT
    views = carts / sz.VIEW_TO_CART
    p = np.zeros(13, dtype=np.float64)
    p[CART] = np.clip((carts - lines) / filler * CART_COMPENSATION, 0.0, 0.3)
    p[PRODUCT] = np.clip((views - lines) / filler - p[CART] * 0.1, 0.0, 0.7)
    rest = 1.0 - p[CART] - p[PRODUCT]
    total = sum(OTHER_WEIGHTS.values())
    for name, weight in OTHER_WEIGHTS.items():
        p[name] = rest * weight / total
    out: Floats = p / p.sum()
    return out


def _filler_slots(rng: np.random.Generator, plan: Plan, p: Floats) -> Slots:
    s = np.arange(plan.kind.size)
    pre, post = np.repeat(s, plan.n_pre), np.repeat(s, plan.n_post)
    sess = np.concatenate([pre, post])
    region = np.concatenate([np.zeros(pre.size), np.full(post.size, POST_REGION)])
    name = rng.choice(13, size=sess.size, p=p)
    key = region + STAGE[name] + rng.random(sess.size) * 2.5
    return _slots(sess, key, name, True)


def _anchor_slots(plan: Plan) -> Slots:
    name = np.select([plan.kind == ORDER, plan.kind == SIGNUP, plan.kind == MERGE, plan.lead_login],
                     [CHECKOUT, SIGNUP_EV, LOGIN, LOGIN], PV)
    sess = np.arange(plan.kind.size)
    return _slots(sess, np.full(sess.size, ANCHOR), name, False)


def _order_slots(plan: Plan, orders: Orders) -> Slots:
    """A purchase's product view + add-to-cart per line, the cart page, and the payment."""
    idx = np.flatnonzero(plan.kind == ORDER)
    o = plan.order[idx]
    n_lines = orders.line_ptr[o + 1] - orders.line_ptr[o]
    sess = np.repeat(idx, n_lines)
    j = np.arange(sess.size) - np.repeat(np.cumsum(n_lines) - n_lines, n_lines)
    line = np.repeat(orders.line_ptr[o], n_lines) + j
    view = _slots(sess, 10.0 + j * 0.01, np.full(sess.size, PRODUCT), False)
    cart = _slots(sess, 10.005 + j * 0.01, np.full(sess.size, CART), False)
    view.product = orders.line_product[line]
    cart.product = orders.line_product[line]
    cart.qty = orders.line_qty[line]
    page = _slots(idx, np.full(idx.size, 19.0), np.full(idx.size, PV), False)
    page.page = np.full(idx.size, 2, dtype=np.int64)  # /cart
    paid = idx[orders.paid_us[o] >= 0]
    pay = _slots(paid, np.full(paid.size, 60.0), np.full(paid.size, PAYMENT), False)
    return Slots.concat([view, cart, page, pay])


def build_slots(rng: np.random.Generator, plan: Plan, orders: Orders, p: Floats) -> Slots:
    """All slots of the sessions in ``plan``, sorted by session then position."""
    slots = Slots.concat([_filler_slots(rng, plan, p), _anchor_slots(plan),
                          _order_slots(plan, orders)])
    return slots.take(np.lexsort((slots.key, slots.sess)))


def session_starts(sess: Ints, n_sessions: int) -> Ints:
    """Index of the first slot of each session in session-sorted slots."""
    counts = np.bincount(sess, minlength=n_sessions)
    return (np.cumsum(counts) - counts).astype(np.int64)


def first_where(mask: Bools, sess: Ints, n_sessions: int) -> Ints:
    """Per session, the index of its first slot where ``mask`` holds (or a huge number)."""
    first = np.full(n_sessions, np.iinfo(np.int64).max, dtype=np.int64)
    idx = np.flatnonzero(mask)
    np.minimum.at(first, sess[idx], idx)
    return first
