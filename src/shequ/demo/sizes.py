"""Sizes of the demo community and the fixed parameters of its planted phenomena.

Every number the documentation quotes lives here, so ``docs/demo.md`` and the code agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

DEFAULT_END = date(2026, 11, 20)
DEFAULT_DAYS = 90
MIN_DAYS = 60
MAX_DAYS = 366
PRE_WINDOW_DAYS = 30  # posts (and creators) may predate the window by this much


@dataclass(frozen=True)
class Size:
    """Entity counts for one demo size (posts and reviews are exact, orders and events too)."""

    name: str
    customers: int
    events: int
    orders: int
    posts: int
    reviews: int
    comments: int
    brands: int
    products: int
    creators: int
    hubs: int
    ring_members: int
    burst_reviews: int


SIZES: dict[str, Size] = {
    "small": Size(
        name="small", customers=500, events=20_000, orders=1_500, posts=240, reviews=360,
        comments=480, brands=10, products=60, creators=20, hubs=3, ring_members=30,
        burst_reviews=16,
    ),
    "default": Size(
        name="default", customers=20_000, events=1_000_000, orders=60_000, posts=8_000,
        reviews=12_000, comments=16_000, brands=10, products=500, creators=200, hubs=5,
        ring_members=30, burst_reviews=40,
    ),
    "large": Size(
        name="large", customers=100_000, events=10_000_000, orders=300_000, posts=40_000,
        reviews=60_000, comments=80_000, brands=10, products=1_000, creators=1_000, hubs=6,
        ring_members=30, burst_reviews=120,
    ),
}

# --- shapes -------------------------------------------------------------------------------
NEW_CUSTOMER_SHARE = 0.30  # customers who register inside the window
BUYER_SHARE = 0.9  # share of (non-dormant) customers with any purchase propensity
DORMANT_SHARE = 0.15  # share of pre-window customers who do nothing in the window
SPEND_SIGMA = 1.6  # log-normal sigma of purchase propensity (heavy tail)
ORDER_MIN_GAP_S = 2 * 3600  # two orders of one customer are at least this far apart
PAY_RATE_BY_CHANNEL = {"app": 0.84, "wechat_mini": 0.80, "h5": 0.66, "douyin": 0.70, "web": 0.76}
REFUND_RATE = 0.05
VIEW_TO_CART = 0.30  # add_to_cart events per product_view event
CART_TO_CHECKOUT = 0.58  # checkout events per add_to_cart event

# --- planted phenomena ----------------------------------------------------------------------
PAYMENT_DROP_DAYS_BEFORE_END = (26, 25)  # day index = days - 26, days - 25 (64 and 65 of 90)
PAYMENT_DROP_FACTOR = 0.40
RING_REGISTRATION_DAY_SHARE = 0.40  # ring members register from day int(days * 0.4) (36)
RING_REGISTRATION_DAYS = 3
RING_DEVICES = 3
RING_ADDRESSES = 2
RING_PAY_RATE = 0.55
RING_REFUND_RATE = 0.45
COUPON_NEWBIE = "NEWBIE20"
BURST_DAY_SHARE = 0.50  # the review burst starts on day int(days * 0.5) (45), Shanghai midnight
BURST_HOURS = 48
BURST_REFUND_RATE = 0.60
LAPSE_DAYS = 30  # lapsing customers do nothing in the last 30 days (days 60-89)
LAPSING_SHARE = 0.02  # of all customers
LAPSING_POOL_QUANTILE = 0.85  # drawn from the top 15 % by purchase propensity
LAPSING_MIN_ORDERS = 6
NEAR_DUP_SHARE = 0.03  # of posts


@dataclass(frozen=True)
class PlantedDays:
    """Day indexes (0-based, Shanghai days of the window) used by the planted phenomena."""

    payment_drop: tuple[int, int]
    ring_registration: int
    burst_start: int
    lapse_cutoff: int


def planted_days(days: int) -> PlantedDays:
    """The planted days for a window of ``days`` days (90 gives 64/65, 36, 45 and 60)."""
    first, second = PAYMENT_DROP_DAYS_BEFORE_END
    return PlantedDays(
        payment_drop=(days - first, days - second),
        ring_registration=int(days * RING_REGISTRATION_DAY_SHARE),
        burst_start=int(days * BURST_DAY_SHARE),
        lapse_cutoff=days - LAPSE_DAYS,
    )
