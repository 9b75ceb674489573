"""Social-commerce benchmark: many workers moving points, group seats and coupons at once.

    python benchmarks/commerce.py --quick     # one round of 3,000 operations, under a minute
    python benchmarks/commerce.py             # three rounds of 10,000 (median rate reported)

Each round creates a PostgreSQL database of its own (dropped afterwards), seeds a shop and
lets ``--workers`` threads (16, spread over ``--processes`` forked processes, 2) run
``--ops`` operations (10,000) drawn at random from four kinds, each through the same
service call the API makes, one transaction each:

* ``join``: a customer joins one of 40 hot groups of five (group buying): most attempts
  meet a full group, the per-customer limit or an offer whose 120 units ran out; one in
  ten repeats a join already made (a replay);
* ``redeem``: a customer spends points on a reward, on 12 hot accounts that cannot afford
  every attempt, with a reward whose 400 units run out; one in ten is a replay;
* ``verify``: a store presents one of 300 one-time store codes, each presented 2-3 times;
* ``coupon``: a customer checks out with a ¥10 coupon drawn from 1,500 with replacement
  (so many coupons are tried on two or more orders at once); the template's budget covers
  600 checkouts; one in ten repeats a checkout (a replay).

Afterwards an independent check, plain SQL written here rather than the services' own
reads, counts invariant violations: over-full groups, a customer twice in a group, member
counts that disagree with the member rows, negative stock; negative balances, balances
that differ from the sum of their entries or of their lots, movements that do not sum to
zero; store codes used twice; coupons used twice, orders with two coupons, discounts
beyond a template's budget, orders carrying a coupon without its redemption. Besides
the rows, the answers are counted too: a store code accepted twice, a coupon answered as
used on two orders, more joins answered for a group than it has seats. The target is zero.

The peer is the obvious implementation without locks (read the balance, check it, write
the new balance) run on the same hot accounts in the same round: its lost updates show
that the check finds violations when there are some (``naive_violations``).

Ends with one line ``RESULT ops_per_s=... violations=... ...``; the rate is the median of
the rounds, reported with the peer's rate measured in the same rounds.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import statistics
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from shequ.core.clock import FixedClock  # noqa: E402
from shequ.core.db import Base, transaction  # noqa: E402
from shequ.core.errors import ShequError  # noqa: E402
from shequ.core.permissions import CLI_PRINCIPAL  # noqa: E402
from shequ.core.settings import Settings  # noqa: E402
from shequ.core.web import Services  # noqa: E402
from shequ.domains.campaigns import coupons, groups  # noqa: E402
from shequ.domains.campaigns.coupon_schemas import CheckoutIn, TemplateIn  # noqa: E402
from shequ.domains.campaigns.group_schemas import JoinIn, OfferIn, OpenIn, TierIn  # noqa: E402
from shequ.domains.catalog import service as catalog  # noqa: E402
from shequ.domains.catalog.schemas import BrandIn, ProductIn  # noqa: E402
from shequ.domains.customers import service as customers  # noqa: E402
from shequ.domains.customers.schemas import CustomerIn  # noqa: E402
from shequ.domains.loyalty import service as loyalty  # noqa: E402
from shequ.domains.loyalty.schemas import AdjustIn, RedeemIn, RewardIn, VerifyIn  # noqa: E402
from shequ.domains.orders.schemas import LineIn  # noqa: E402
from shequ.entrypoints.bootstrap import bootstrap, close  # noqa: E402
from shequ.entrypoints.registry import load_models  # noqa: E402

PG_ADMIN_URL = os.environ.get("SHEQU_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
NOW = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
SECRET = "benchmark-secret"


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one round (under a minute)")
    parser.add_argument("--rounds", type=int, help="rounds (3; 1 with --quick)")
    parser.add_argument("--ops", type=int,
                        help="operations per round (10,000; 3,000 with --quick)")
    parser.add_argument("--workers", type=int, default=16,
                        help="concurrent workers (threads, spread over --processes)")
    parser.add_argument("--processes", type=int, default=2,
                        help="worker processes (2: one a core; Python threads of one process "
                             "share one interpreter lock)")
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    if args.ops is None:
        args.ops = 3_000 if args.quick else 10_000
    if min(args.ops, args.workers, args.rounds, args.processes) < 1:
        parser.error("--ops, --workers, --processes and --rounds must be positive")
    args.processes = min(args.processes, args.workers)
    return args


def connect(database_url: str, home: Path) -> Services:
    return bootstrap(Settings(home=home, database_url=database_url,
                              environment="development", secret_key=SECRET),
                     clock=FixedClock(NOW))


@contextmanager
def scratch_database() -> Iterator[Services]:
    """Services on a PostgreSQL database of this round's own, dropped afterwards."""
    import psycopg

    name = f"shequ_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    home = Path(os.environ.get("TMPDIR", "/tmp")) / name
    wired = connect(f"{url}/{name}", home)
    try:
        load_models()
        Base.metadata.create_all(wired.extras["engine"])
        yield wired
    finally:
        close(wired)
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- the shop -----------------------------------------------------------------------------


@dataclass
class Shop:
    """What the seed made: customer keys, hot accounts, the reward, the naive accounts."""

    customers: list[str]
    hot_accounts: list[str]
    reward: str = "mug"
    codes: list[str] = field(default_factory=list)
    accepted: Counter[str] = field(default_factory=Counter)  # store code -> acceptances
    groups: list[int] = field(default_factory=list)
    joiners: list[str] = field(default_factory=list)
    joined: Counter[int] = field(default_factory=Counter)  # group id -> joins answered
    coupons: list[tuple[str, str]] = field(default_factory=list)  # (customer, code)
    used: Counter[str] = field(default_factory=Counter)  # coupon code -> checkouts answered
    lock: threading.Lock = field(default_factory=threading.Lock)
    extra: dict[str, Any] = field(default_factory=dict)


HOT_ACCOUNTS = 12
HOT_POINTS = 6_000
REWARD_COST = 150
REWARD_STOCK = 400
STORE_CODES = 300  # redeemed before the round; each is presented at stores 2-3 times
HOT_GROUPS = 40  # groups of 5 (tiers 2/3/5) that every join aims at
GROUP_STOCK = 120  # units of the offer: fewer than the 200 seats of the hot groups
COUPONS = 1_500  # ¥10-off coupons issued, one a customer
COUPON_OFF = 1_000
COUPON_BUDGET = 600 * COUPON_OFF  # the template's budget covers 600 checkouts


def seed(wired: Services, args: argparse.Namespace) -> Shop:
    clock = FixedClock(NOW)
    keys = [f"c{n:05d}" for n in range(args.customers)]
    with transaction(wired.sessions) as session:
        catalog.create_brand(session, BrandIn(external_id="b1", name="花知晓"))
        for sku, price, stock in (("GRP", 9_900, 400), ("CPN", 12_000, 100_000)):
            catalog.create_product(session, clock, CLI_PRINCIPAL, ProductIn(
                sku=sku, name=f"商品{sku}", brand_external_id="b1", price_fen=price,
                stock=stock))
        for key in keys:
            customers.create_customer(session, clock, CustomerIn(external_id=key))
    hot = keys[:HOT_ACCOUNTS]
    with transaction(wired.sessions) as session:
        for key in hot:
            loyalty.adjust(session, clock, AdjustIn(customer_external_id=key, points=HOT_POINTS,
                                                    reason="benchmark seed",
                                                    idempotency_key=f"seed:{key}"))
        loyalty.put_reward(session, clock, RewardIn(code="mug", name="杯子", kind="offline",
                                                    cost_points=REWARD_COST,
                                                    stock=REWARD_STOCK))
        loyalty.put_reward(session, clock, RewardIn(code="coffee", name="咖啡", kind="offline",
                                                    cost_points=10))
        loyalty.adjust(session, clock, AdjustIn(customer_external_id=keys[-1],
                                                points=10 * STORE_CODES, reason="seed",
                                                idempotency_key="seed:codes"))
        codes = []
        for n in range(STORE_CODES):
            done = loyalty.redeem(session, clock, RedeemIn(
                customer_external_id=keys[-1], reward="coffee",
                idempotency_key=f"seed:code:{n}"), secret_key=SECRET)
            assert done.store_code is not None
            codes.append(done.store_code.code)
        session.execute(text("CREATE TABLE naive_accounts (key text PRIMARY KEY, "
                             "balance integer NOT NULL)"))
        session.execute(text("CREATE TABLE naive_spends (id serial PRIMARY KEY, key text, "
                             "points integer)"))
        for key in hot:
            session.execute(text("INSERT INTO naive_accounts VALUES (:k, :b)"),
                            {"k": key, "b": HOT_POINTS})
    leaders = keys[HOT_ACCOUNTS:HOT_ACCOUNTS + HOT_GROUPS]
    with transaction(wired.sessions) as session:
        groups.create_offer(session, clock, OfferIn(
            code="hot", title="爆款拼团", sku="GRP", stock=GROUP_STOCK, hours=24,
            tiers=[TierIn(size=2, percent_off=10), TierIn(size=3, percent_off=15),
                   TierIn(size=5, percent_off=25)],
            starts_at=NOW - timedelta(hours=1), ends_at=NOW + timedelta(days=2)))
        opened = [groups.open_group(session, clock, OpenIn(
            offer="hot", customer_external_id=key, idempotency_key=f"open:{key}")).group.id
            for key in leaders]
        coupons.create_template(session, clock, TemplateIn(
            code="BENCH10", name="立减10元", kind="fixed", amount_off_fen=COUPON_OFF,
            starts_at=NOW - timedelta(days=1), ends_at=NOW + timedelta(days=7),
            total_quantity=COUPONS, budget_fen=COUPON_BUDGET))
        holders = keys[:min(COUPONS, len(keys))]
        issued = coupons.issue(session, clock, "BENCH10", "bench", holders)
    return Shop(customers=keys, hot_accounts=hot, codes=codes, groups=opened,
                joiners=keys[HOT_ACCOUNTS + HOT_GROUPS:-1],
                coupons=[(key, issued.codes[key]) for key in holders])


# --- operations ---------------------------------------------------------------------------

Operation = Callable[[Session], str]


def redeem_op(shop: Shop, rng: random.Random, number: int) -> Operation:
    # one request in ten repeats an earlier request (same key, same customer): a replay
    again = rng.randrange(number) if number and rng.random() < 0.1 else number
    key, customer = f"r{again}", shop.hot_accounts[again % len(shop.hot_accounts)]

    def run(session: Session) -> str:
        done = loyalty.redeem(session, FixedClock(NOW), RedeemIn(
            customer_external_id=customer, reward=shop.reward, idempotency_key=key),
            secret_key=SECRET)
        return "replayed" if done.replayed else "redeemed"
    return run


def join_op(shop: Shop, rng: random.Random, number: int) -> Operation:
    # one request in ten repeats an earlier join (same key, group and customer): a replay
    again = rng.randrange(number) if number and rng.random() < 0.1 else number
    pick = random.Random(again)
    group, customer = pick.choice(shop.groups), pick.choice(shop.joiners)

    def run(session: Session) -> str:
        done = groups.join_group(session, FixedClock(NOW), JoinIn(
            group_id=group, customer_external_id=customer, idempotency_key=f"j{again}"))
        if done.replayed:
            return "replayed"
        with shop.lock:
            shop.joined[group] += 1
        return "joined"
    return run


def coupon_op(shop: Shop, rng: random.Random, number: int) -> Operation:
    # a coupon drawn with replacement: many are tried on two or more orders at once; one
    # request in ten repeats an earlier checkout (same order number): a replay
    again = rng.randrange(number) if number and rng.random() < 0.1 else number
    customer, code = random.Random(-again - 1).choice(shop.coupons)

    def run(session: Session) -> str:
        done = coupons.checkout(session, FixedClock(NOW), CheckoutIn(
            coupon_code=code, customer_external_id=customer, order_external_id=f"o{again}",
            lines=[LineIn(sku="CPN", quantity=1)]))
        if done.replayed:
            return "replayed"
        with shop.lock:
            shop.used[code] += 1
        return "checked_out"
    return run


def verify_op(shop: Shop, rng: random.Random, number: int) -> Operation:
    code = rng.choice(shop.codes)

    def run(session: Session) -> str:
        loyalty.verify_code(session, FixedClock(NOW), VerifyIn(
            code=code, store_id=f"store-{number % 7}"), secret_key=SECRET)
        with shop.lock:
            shop.accepted[code] += 1
        return "accepted"
    return run


def naive_redeem(shop: Shop, rng: random.Random) -> Operation:
    customer = rng.choice(shop.hot_accounts)

    def run(session: Session) -> str:
        balance = session.execute(text("SELECT balance FROM naive_accounts WHERE key = :k"),
                                  {"k": customer}).scalar_one()
        if balance < REWARD_COST:
            return "refused"
        session.execute(text("UPDATE naive_accounts SET balance = :b WHERE key = :k"),
                        {"b": balance - REWARD_COST, "k": customer})
        session.execute(text("INSERT INTO naive_spends (key, points) VALUES (:k, :p)"),
                        {"k": customer, "p": REWARD_COST})
        return "redeemed"
    return run


KINDS: dict[str, Callable[[Shop, random.Random, int], Operation]] = {
    "coupon": coupon_op, "join": join_op, "redeem": redeem_op, "verify": verify_op}


def run_ops(wired: Services, ops: list[tuple[str, Operation]], workers: int
            ) -> tuple[float, Counter[str]]:
    """Run every operation in its own transaction on ``workers`` threads; (seconds,
    outcome counts). A domain refusal (ShequError) is an outcome, anything else an error."""
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def one(item: tuple[str, Operation]) -> None:
        kind, op = item
        try:
            with transaction(wired.sessions) as session:
                result = op(session)
        except ShequError as exc:
            result = f"refused:{exc.code}"
        except Exception as exc:  # counted, and shown: the benchmark must not hide them
            result = f"error:{type(exc).__name__}"
        with lock:
            outcomes[f"{kind}:{result}"] += 1

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, ops))
    return time.perf_counter() - started, outcomes


Plan = list[tuple[str, int]]  # (kind, operation number)


def build_ops(shop: Shop, plan: Plan, seed_text: str) -> list[tuple[str, Operation]]:
    """The operations of ``plan``; each draws from its own generator, so an operation is
    the same whichever process runs it."""
    return [(kind, (naive_redeem(shop, random.Random(f"{seed_text}:{n}")) if kind == "naive"
                    else KINDS[kind](shop, random.Random(f"{seed_text}:{n}"), n)))
            for kind, n in plan]


_FORKED: dict[str, Any] = {}  # what a forked worker process reads: url, shop, plans


def _child(index: int, threads: int, ready: Any, go: Any, results: Any) -> None:
    """A worker process: its own engine, its share of the plan on ``threads`` threads."""
    shop: Shop = _FORKED["shop"]
    shop.lock = threading.Lock()  # this process's answers only: the parent merges them
    shop.accepted, shop.joined, shop.used = Counter(), Counter(), Counter()
    wired = connect(_FORKED["url"], _FORKED["home"])
    try:
        ops = build_ops(shop, _FORKED["plans"][index], _FORKED["seed_text"])
        ready.put(index)
        go.wait()
        _, outcomes = run_ops(wired, ops, threads)
        results.put((index, dict(outcomes), dict(shop.accepted), dict(shop.joined),
                     dict(shop.used)))
    finally:
        close(wired)


def run_plan(wired: Services, shop: Shop, plan: Plan, seed_text: str, *, workers: int,
             processes: int) -> tuple[float, Counter[str]]:
    """Run ``plan`` on ``workers`` threads spread over ``processes`` forked processes;
    (seconds from the common start to the last answer, outcome counts). The answers the
    independent check counts (codes accepted, joins, coupons used) are merged into
    ``shop``."""
    if processes == 1:
        return run_ops(wired, build_ops(shop, plan, seed_text), workers)
    context = multiprocessing.get_context("fork")
    ready, results, go = context.Queue(), context.Queue(), context.Event()
    wired.extras["engine"].dispose()  # no pooled connection may cross the fork
    _FORKED.update(url=wired.settings.resolved_database_url, home=wired.settings.home,
                   shop=shop, seed_text=seed_text,
                   plans=[plan[i::processes] for i in range(processes)])
    threads = [workers // processes + (i < workers % processes) for i in range(processes)]
    children = [context.Process(target=_child, args=(i, threads[i], ready, go, results))
                for i in range(processes)]
    for child in children:
        child.start()
    for _ in children:
        ready.get(timeout=300)
    started = time.perf_counter()
    go.set()
    outcomes: Counter[str] = Counter()
    for _ in children:
        _, counted, accepted, joined, used = results.get(timeout=3600)
        outcomes.update(counted)
        shop.accepted.update(accepted)
        shop.joined.update(joined)
        shop.used.update(used)
    seconds = time.perf_counter() - started
    for child in children:
        child.join()
        if child.exitcode != 0:
            raise RuntimeError(f"a worker process failed (exit code {child.exitcode})")
    return seconds, outcomes


# --- the independent check ----------------------------------------------------------------

POINTS_CHECKS = {
    "negative_balance": "SELECT count(*) FROM points_accounts WHERE balance < 0",
    "balance_not_entries": """
        SELECT count(*) FROM points_accounts a
        WHERE a.kind = 'customer' AND a.balance <> (
            SELECT coalesce(sum(e.points), 0) FROM points_entries e WHERE e.account_id = a.id)
    """,
    "balance_not_lots": """
        SELECT count(*) FROM points_accounts a
        WHERE a.kind = 'customer' AND a.balance <> (
            SELECT coalesce(sum(l.remaining), 0) FROM points_lots l WHERE l.account_id = a.id)
    """,
    "unbalanced_movements": """
        SELECT count(*) FROM (SELECT movement_id FROM points_entries GROUP BY movement_id
                              HAVING sum(points) <> 0) m
    """,
    "ledger_not_zero": "SELECT CASE WHEN coalesce(sum(points), 0) = 0 THEN 0 ELSE 1 END "
                       "FROM points_entries",
    "reward_stock_negative": "SELECT count(*) FROM points_rewards WHERE stock < 0",
    "redemptions_beyond_stock": f"""
        SELECT CASE WHEN count(*) > {REWARD_STOCK} THEN count(*) - {REWARD_STOCK} ELSE 0 END
        FROM points_redemptions r JOIN points_rewards w ON w.id = r.reward_id
        WHERE w.code = 'mug'
    """,
    "codes_used_without_store": "SELECT count(*) FROM points_store_codes "
                                "WHERE (used_at IS NULL) <> (store_id IS NULL)",
}

GROUP_CHECKS = {
    "over_full_groups": """
        SELECT count(*) FROM group_groups g
        WHERE (SELECT count(*) FROM group_members m WHERE m.group_id = g.id) > g.max_size
    """,
    "double_joins": """
        SELECT count(*) FROM (SELECT group_id, customer_id FROM group_members
                              GROUP BY group_id, customer_id HAVING count(*) > 1) d
    """,
    "member_count_mismatch": """
        SELECT count(*) FROM group_groups g
        WHERE g.member_count <> (SELECT count(*) FROM group_members m WHERE m.group_id = g.id)
    """,
    "negative_offer_stock": "SELECT count(*) FROM group_offers WHERE stock_left < 0",
    "offer_units_beyond_stock": """
        SELECT count(*) FROM group_offers o
        WHERE (SELECT coalesce(sum(quantity), 0) FROM group_members m
               WHERE m.offer_id = o.id) > o.stock
    """,
    "negative_catalog_stock": "SELECT count(*) FROM products WHERE stock < 0",
}

COUPON_CHECKS = {
    "coupons_used_twice": """
        SELECT count(*) FROM (SELECT coupon_id FROM coupon_redemptions WHERE state = 'active'
                              GROUP BY coupon_id HAVING count(*) > 1) u
    """,
    "orders_with_two_coupons": """
        SELECT count(*) FROM (SELECT order_id FROM coupon_redemptions
                              GROUP BY order_id HAVING count(*) > 1) u
    """,
    "discounts_beyond_budget": """
        SELECT count(*) FROM coupon_templates t
        WHERE (SELECT coalesce(sum(discount_fen), 0) FROM coupon_redemptions r
               WHERE r.template_id = t.id AND r.state = 'active') > t.budget_fen
    """,
    "coupon_orders_without_redemption": """
        SELECT count(*) FROM orders o
        WHERE o.coupon_code IS NOT NULL AND o.status <> 'cancelled' AND NOT EXISTS (
            SELECT 1 FROM coupon_redemptions r WHERE r.order_id = o.id AND r.state = 'active')
    """,
    "used_coupons_without_order": "SELECT count(*) FROM coupons "
                                  "WHERE status = 'used' AND order_id IS NULL",
}

NAIVE_CHECKS = {
    "naive_negative_balance": "SELECT count(*) FROM naive_accounts WHERE balance < 0",
    "naive_lost_updates": f"""
        SELECT count(*) FROM naive_accounts a
        WHERE a.balance <> {HOT_POINTS} - (
            SELECT coalesce(sum(s.points), 0) FROM naive_spends s WHERE s.key = a.key)
    """,
}


def count_violations(session: Session, checks: dict[str, str]) -> dict[str, int]:
    return {name: int(session.execute(text(sql)).scalar_one()) for name, sql in checks.items()}


# --- rounds -------------------------------------------------------------------------------


def one_round(args: argparse.Namespace, number: int) -> dict[str, Any]:
    rng = random.Random(args.seed * 1000 + number)
    seed_text = f"{args.seed}:{number}"
    with scratch_database() as wired:
        shop = seed(wired, args)
        kinds = sorted(KINDS)
        ops = [(rng.choice(kinds), n) for n in range(args.ops)]
        seconds, outcomes = run_plan(wired, shop, ops, seed_text, workers=args.workers,
                                     processes=args.processes)
        naive_ops = [("naive", n) for n in range(args.ops // 5)]
        naive_seconds, naive_outcomes = run_plan(wired, shop, naive_ops, seed_text,
                                                 workers=args.workers,
                                                 processes=args.processes)
        with transaction(wired.sessions) as session:
            found = count_violations(session, POINTS_CHECKS)
            found.update(count_violations(session, GROUP_CHECKS))
            found.update(count_violations(session, COUPON_CHECKS))
            # a coupon answered as used on more than one order
            found["coupons_answered_twice"] = sum(1 for n in shop.used.values() if n > 1)
            # more joins answered for a group than it has seats besides its leader's
            sizes: dict[int, int] = {
                int(row[0]): int(row[1]) for row in session.execute(
                    text("SELECT id, max_size FROM group_groups"))}
            found["joins_beyond_seats"] = sum(
                1 for group, joins in shop.joined.items() if joins > sizes[group] - 1)
            # a store code accepted more than once (counted from the answers, not the rows)
            found["codes_accepted_twice"] = sum(1 for n in shop.accepted.values() if n > 1)
            naive = count_violations(session, NAIVE_CHECKS)
    return {"seconds": seconds, "ops": len(ops), "outcomes": outcomes, "violations": found,
            "naive_seconds": naive_seconds, "naive_ops": len(naive_ops),
            "naive_outcomes": naive_outcomes, "naive": naive}


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    rounds = []
    for number in range(args.rounds):
        done = one_round(args, number)
        rate = done["ops"] / done["seconds"]
        bad = sum(done["violations"].values())
        print(f"round {number + 1}/{args.rounds}: {done['ops']} ops in {done['seconds']:.1f} s "
              f"({rate:,.0f}/s), violations {bad} {dict(done['violations'])}", flush=True)
        print("  outcomes: " + ", ".join(f"{k}={v}" for k, v in
                                         sorted(done["outcomes"].items())), flush=True)
        rounds.append(done)
    rates = [r["ops"] / r["seconds"] for r in rounds]
    naive_rates = [r["naive_ops"] / r["naive_seconds"] for r in rounds]
    outcomes: Counter[str] = sum((r["outcomes"] for r in rounds), Counter())
    violations: Counter[str] = sum((Counter(r["violations"]) for r in rounds), Counter())
    naive: Counter[str] = sum((Counter(r["naive"]) for r in rounds), Counter())
    errors = sum(v for k, v in outcomes.items() if ":error:" in k)
    results: dict[str, Any] = {
        "ops_per_s": round(statistics.median(rates)),
        "violations": sum(violations.values()),
        "ops": sum(r["ops"] for r in rounds), "rounds": len(rounds), "workers": args.workers,
        "processes": args.processes,
        "errors": errors,
    }
    for kind in sorted(KINDS):
        results[f"{kind}_ok"] = sum(v for k, v in outcomes.items()
                                    if k.startswith(f"{kind}:") and ":refused:" not in k
                                    and ":error:" not in k)
        results[f"{kind}_refused"] = sum(v for k, v in outcomes.items()
                                         if k.startswith(f"{kind}:refused:"))
    results["naive_ops_per_s"] = round(statistics.median(naive_rates))
    results["naive_violations"] = sum(naive.values())
    print("RESULT " + " ".join(f"{key}={value}" for key, value in results.items()))


if __name__ == "__main__":
    main()
