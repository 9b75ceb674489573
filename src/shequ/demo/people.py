"""Customers, their devices, addresses and payment accounts, and creators.

The coupon-abuse ring and the lapsing high-value customers are chosen here, because both
are properties of customers (registration, shared devices, activity window).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np

from shequ.demo import phrases_people as pp
from shequ.demo import sizes as sz
from shequ.demo.catalog import Catalog
from shequ.demo.phrases_catalog import TOP_WEIGHTS
from shequ.demo.text import address, creator_name, nickname
from shequ.demo.timing import DAY, HOUR, Bools, Floats, Ints, TimeSampler, Window, to_datetime

Row = dict[str, Any]
DEVICE_KINDS = ("ios", "android", "pc")


@dataclass
class People:
    """Customer rows plus per-customer arrays (index = position in ``rows``)."""

    rows: list[Row]
    reg_us: Ints
    lo_us: Ints
    hi_us: Ints
    spend_w: Floats
    activity_w: Floats
    top: Ints
    new: Bools
    lapsing: Bools
    ring: Bools
    addresses: list[list[str]]
    accounts: list[str]
    device_owner: Ints
    device_kind: Ints
    device_first_us: Ints
    device_ptr: Ints
    device_idx: Ints
    ring_addresses: list[str]
    ring_account_prefix: str

    def ext(self, customer: int) -> str:
        """External id of customer index ``customer``."""
        return str(self.rows[customer]["external_id"])


def _registrations(rng: np.random.Generator, sampler: TimeSampler, window: Window,
                   size: sz.Size, days: sz.PlantedDays) -> tuple[Ints, Bools, Bools]:
    """Registration times, the new-in-window flag and the ring flag, sorted by time."""
    n, r = size.customers, size.ring_members
    new = rng.random(n - r) < sz.NEW_CUSTOMER_SHARE
    old_days = rng.uniform(1.0, 900.0, n - r)
    reg = np.where(new, 0, window.start_us - (old_days * DAY).astype(np.int64) // 10**6 * 10**6)
    lo = np.full(n - r, window.start_us + HOUR)
    reg_new = sampler.sample(rng, lo, np.full(n - r, window.end_us - 6 * HOUR))
    reg = np.where(new, reg_new, reg)
    ring_lo = np.full(r, window.day_us(days.ring_registration))
    ring_reg = sampler.sample(rng, ring_lo, ring_lo + sz.RING_REGISTRATION_DAYS * DAY)
    all_reg = np.concatenate([reg, ring_reg])
    ring = np.concatenate([np.zeros(n - r, bool), np.ones(r, bool)])
    new_all = np.concatenate([new, np.ones(r, bool)])
    order = np.argsort(all_reg, kind="stable")
    return all_reg[order].astype(np.int64), new_all[order], ring[order]


def _propensities(rng: np.random.Generator, new: Bools, ring: Bools) -> tuple[Floats, Floats]:
    """Purchase (heavy-tailed) and visit propensities; dormant customers get zero."""
    n = new.size
    dormant = ~new & (rng.random(n) < sz.DORMANT_SHARE)
    buyer = ~dormant & ~ring & (rng.random(n) < sz.BUYER_SHARE)
    spend = np.where(buyer, rng.lognormal(0.0, sz.SPEND_SIGMA, n), 0.0)
    activity = np.where(buyer, np.sqrt(spend) * rng.lognormal(0.0, 0.5, n),
                        rng.lognormal(-0.6, 0.8, n))
    activity = np.where(dormant, 0.0, activity)
    return spend, np.where(ring, 0.3, activity)


def _pick_lapsing(rng: np.random.Generator, spend: Floats, new: Bools, ring: Bools) -> Bools:
    """~2 % of customers, drawn from the top 15 % by purchase propensity, registered earlier."""
    n = spend.size
    threshold = np.quantile(spend[~ring], sz.LAPSING_POOL_QUANTILE)
    pool = np.flatnonzero((spend >= threshold) & (spend > 0) & ~new & ~ring)
    count = min(pool.size, max(5, round(sz.LAPSING_SHARE * n)))
    lapsing = np.zeros(n, dtype=bool)
    lapsing[rng.choice(pool, size=count, replace=False)] = True
    return lapsing


def _customer_rows(rnd: random.Random, reg: Ints, ring: Bools) -> list[Row]:
    cities = list(pp.CITIES)
    weights = [pp.CITIES[c][0] for c in cities]
    seen: set[str] = set()
    rows: list[Row] = []
    for i in range(reg.size):
        nick = nickname(rnd)
        while nick in seen:
            nick = nickname(rnd) + str(rnd.randint(10, 99))
        seen.add(nick)
        roll = rnd.random()
        rows.append({
            "external_id": f"c{i + 1:06d}", "nickname": nick,
            "gender": "f" if roll < 0.6 else ("m" if roll < 0.92 else None),
            "city": rnd.choices(cities, weights)[0],
            "birth_year": None if rnd.random() < 0.12 else int(rnd.triangular(1965, 2007, 1994)),
            "registered_at": to_datetime(int(reg[i])),
            "acquisition_channel": "wechat_share" if ring[i] else rnd.choices(
                pp.ACQUISITION_CHANNELS, pp.ACQUISITION_WEIGHTS)[0],
        })
    return rows


def _addresses_accounts(rnd: random.Random, rows: list[Row]) -> tuple[list[list[str]], list[str]]:
    """One or two unique shipping addresses and one unique payment account per customer."""
    seen: set[str] = set()
    addresses: list[list[str]] = []
    accounts: list[str] = []
    for row in rows:
        mine: list[str] = []
        for _ in range(1 if rnd.random() < 0.7 else 2):
            addr = address(rnd, str(row["city"]))
            while addr in seen:
                addr = address(rnd, str(row["city"]))
            seen.add(addr)
            mine.append(addr)
        addresses.append(mine)
        if rnd.random() < 0.55:
            accounts.append(f"alipay:2088{rnd.randrange(10**12):012d}")
        else:
            accounts.append("wxpay:o" + "".join(rnd.choices(_B62, k=27)))
    return addresses, accounts


_B62 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _ring_identity(rnd: random.Random, people_rows: list[Row], ring_idx: Ints,
                   addresses: list[list[str]], accounts: list[str]) -> tuple[list[str], str]:
    """Give ring members two shared addresses and accounts with one shared prefix."""
    city = str(people_rows[int(ring_idx[0])]["city"])
    shared = [address(rnd, city) for _ in range(sz.RING_ADDRESSES)]
    prefix = f"alipay:2088{rnd.randrange(10**8):08d}"
    for k, i in enumerate(ring_idx):
        people_rows[int(i)]["city"] = city
        addresses[int(i)] = [shared[k % len(shared)], shared[(k + 1) % len(shared)]]
        accounts[int(i)] = f"{prefix}{k + 1:04d}"
    return shared, prefix


def _own_devices(rng: np.random.Generator, reg: Ints, ring: Bools,
                 end_us: int) -> tuple[Ints, Ints, Ints]:
    """Owner, kind and first-seen time of every device; ring members own none but three."""
    n = reg.size
    counts = np.where(ring, 0, rng.choice([1, 2, 3], size=n, p=[0.65, 0.28, 0.07]))
    ring_idx = np.flatnonzero(ring)
    counts[ring_idx[: sz.RING_DEVICES]] = 1
    owner = np.repeat(np.arange(n, dtype=np.int64), counts)
    first = np.r_[True, owner[1:] != owner[:-1]]
    kind = rng.choice(3, size=owner.size, p=[0.42, 0.48, 0.10]).astype(np.int64)
    kind[np.isin(owner, ring_idx)] = 1
    later = reg[owner] + (rng.random(owner.size) * (end_us - reg[owner])).astype(np.int64)
    first_us = np.where(first, reg[owner], later // 10**6 * 10**6)
    return owner, kind, first_us.astype(np.int64)


def _usable_devices(rng: np.random.Generator, owner: Ints, ring: Bools) -> tuple[Ints, Ints]:
    """CSR (ptr, idx) of the devices each customer uses; ring members share three devices."""
    n = ring.size
    usable: list[list[int]] = [[] for _ in range(n)]
    for d, c in enumerate(owner.tolist()):
        if not ring[c]:
            usable[c].append(d)
    shared = np.flatnonzero(ring[owner]).tolist()
    for k, c in enumerate(np.flatnonzero(ring).tolist()):
        usable[c] = [shared[k % len(shared)]]
        if rng.random() < 0.4:
            usable[c].append(shared[(k + 1) % len(shared)])
    ptr = np.zeros(n + 1, dtype=np.int64)
    ptr[1:] = np.cumsum([len(u) for u in usable])
    idx = np.array([d for u in usable for d in u], dtype=np.int64)
    return ptr, idx


def _interests(rng: np.random.Generator, rows: list[Row]) -> Ints:
    """Main interest (top category index) per customer, skewed by gender."""
    base = np.array(TOP_WEIGHTS, dtype=np.float64)
    boost = {"f": np.array([1.6, 1.4, 0.6, 1.0, 1.0]), "m": np.array([0.5, 0.6, 2.4, 1.0, 1.1])}
    out = np.empty(len(rows), dtype=np.int64)
    for i, row in enumerate(rows):
        p = base * boost.get(str(row["gender"]), np.ones(5))
        out[i] = rng.choice(5, p=p / p.sum())
    return out


def make_people(rng: np.random.Generator, rnd: random.Random, size: sz.Size, window: Window,
                sampler: TimeSampler) -> People:
    """All customers with their planted ring and lapsing flags, devices and identities."""
    days = sz.planted_days(window.days)
    reg, new, ring = _registrations(rng, sampler, window, size, days)
    spend, activity = _propensities(rng, new, ring)
    lapsing = _pick_lapsing(rng, spend, new, ring)
    rows = _customer_rows(rnd, reg, ring)
    addresses, accounts = _addresses_accounts(rnd, rows)
    ring_addresses, prefix = _ring_identity(rnd, rows, np.flatnonzero(ring), addresses, accounts)
    owner, kind, first_us = _own_devices(rng, reg, ring, window.end_us)
    ptr, idx = _usable_devices(rng, owner, ring)
    hi = np.where(lapsing, window.day_us(days.lapse_cutoff), window.end_us)
    return People(
        rows=rows, reg_us=reg, lo_us=np.maximum(reg, window.start_us), hi_us=hi.astype(np.int64),
        spend_w=spend, activity_w=activity, top=_interests(rng, rows), new=new,
        lapsing=lapsing, ring=ring, addresses=addresses, accounts=accounts,
        device_owner=owner, device_kind=kind, device_first_us=first_us, device_ptr=ptr,
        device_idx=idx, ring_addresses=ring_addresses, ring_account_prefix=prefix,
    )


def device_rows(people: People, first_use_us: Ints) -> list[Row]:
    """Device rows; ``first_seen_at`` is never after the device's first use."""
    first = np.minimum(people.device_first_us, first_use_us)
    return [{"external_id": f"d{d + 1:07d}", "customer_external_id": people.ext(int(c)),
             "kind": DEVICE_KINDS[int(k)], "first_seen_at": to_datetime(int(t))}
            for d, (c, k, t) in enumerate(zip(people.device_owner, people.device_kind, first,
                                              strict=True))]


def make_creators(rng: np.random.Generator, rnd: random.Random, size: sz.Size, people: People,
                  catalog: Catalog, window: Window) -> tuple[list[Row], Ints, Ints]:
    """Creator rows, their customer indexes and join times (sorted by join time)."""
    ok = ~people.ring & ~people.lapsing & (people.activity_w > 0)
    weights = np.where(ok, people.activity_w, 0.0)
    chosen = rng.choice(weights.size, size=size.creators, replace=False, p=weights / weights.sum())
    reg = people.reg_us[chosen]
    span = np.maximum(window.end_us - 14 * DAY - reg, DAY)
    joined = (reg + (rng.random(chosen.size) * span).astype(np.int64)) // 10**6 * 10**6
    order = np.argsort(joined, kind="stable")
    chosen, joined = chosen[order].astype(np.int64), joined[order].astype(np.int64)
    rows: list[Row] = []
    names: set[str] = set()
    for i, (c, t) in enumerate(zip(chosen.tolist(), joined.tolist(), strict=True)):
        name = creator_name(rnd)
        while name in names:
            name = creator_name(rnd)
        names.add(name)
        hub = catalog.hub_by_top.get(int(people.top[c]))
        if int(people.top[c]) == 0 and catalog.hub_by_brand and rnd.random() < 0.3:
            hub = next(iter(catalog.hub_by_brand.values()))
        roll = rnd.random()
        rows.append({"external_id": f"k{i + 1:05d}", "customer_external_id": people.ext(c),
                     "display_name": name,
                     "level": "KOC" if roll < 0.7 else ("KOL" if roll < 0.92 else "expert"),
                     "hub_external_id": None if hub is None else catalog.hubs[hub]["external_id"],
                     "joined_at": to_datetime(t)})
    return rows, chosen, joined
