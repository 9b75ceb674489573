"""Customer-intelligence benchmark: CLV fitting against lifetimes, the value pipeline, a segment.

    python benchmarks/customers.py --quick              # every part, small sizes: under a minute
    python benchmarks/customers.py --parts fit          # 250,000 customers, ours vs lifetimes

Parts (``--parts fit,pipeline,segment``):

* ``fit``: BG/NBD + Gamma-Gamma fitted by ``shequ.stats`` and by lifetimes 0.11.3
  (``BetaGeoFitter`` + ``GammaGammaFitter``) on the same simulated customers, alternately,
  ``--runs`` times; ``fit_speedup`` = lifetimes' median / ours. lifetimes is not a project
  dependency: it runs in a subprocess of an interpreter that has it (``--lifetimes-python``,
  this one if it imports lifetimes, else a virtualenv built once under
  ``~/.cache/shequ-bench/lifetimes-venv`` with our numpy, pandas and scipy versions).
  ``--no-peer`` skips it, and the RESULT line then says ``fit_speedup=unmeasured``.
* ``pipeline``: ``shequ.stats.customer_value.customer_value`` (RFM, BG/NBD + Gamma-Gamma
  CLV, P(alive), five-tier matrix) and membership tiers over synthetic orders
  (1,000,000 customers / 10,000,000 orders; ``--quick`` a twentieth); time and traced peak
  memory.
* ``segment``: the ``browsed_not_bought`` preset rule evaluated on the demo event store that
  ``benchmarks/analytics.py`` builds and caches (``large``: 10M events; ``--quick``:
  ``default``, 1M).

Ends with one line ``RESULT key=value ...``; a part that cannot run says why instead of
giving a number.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import time as day_time
from pathlib import Path
from types import ModuleType
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import scipy

from shequ.stats.bgnbd import count_rfm, fit_bgnbd
from shequ.stats.gamma_gamma import fit_gamma_gamma

PARTS = ("fit", "pipeline", "segment")
SEED = 7
CACHE_DIR = Path(os.environ.get("SHEQU_BENCH_CACHE", "~/.cache/shequ-bench")).expanduser()
LIFETIMES_VENV = CACHE_DIR / "lifetimes-venv"
LIFETIMES_VERSION = "0.11.3"
# CDNOW's published parameters (Fader, Hardie & Lee 2005; Fader & Hardie 2013) as the truth.
TRUE_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
TRUE_GAMMA_GAMMA = {"p": 6.25, "q": 3.74, "v": 15.44}
CALIBRATION_DAYS = 273  # 39 weeks, as CDNOW's calibration period
BIRTH_DAYS = 84  # customers first buy in the first 12 weeks, as in CDNOW
MEMBERSHIP_THRESHOLDS_FEN = (100_000, 500_000, 2_000_000)  # ¥1,000 / ¥5,000 / ¥20,000 a year


@dataclass(frozen=True)
class Config:
    parts: tuple[str, ...]
    runs: int
    fit_customers: int
    pipeline_customers: int
    pipeline_orders: int
    store_size: str
    peer: str | None  # "skip", an interpreter path, or None: find or build one


def parse_args(argv: list[str] | None) -> Config:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and 1 run of each part: under a minute")
    parser.add_argument("--parts", default=",".join(PARTS),
                        help=f"comma-separated subset of {', '.join(PARTS)}")
    parser.add_argument("--runs", type=int, help="timed repetitions (median reported)")
    parser.add_argument("--customers", type=int,
                        help="customers simulated for the fit (default 250,000; quick 50,000)")
    parser.add_argument("--lifetimes-python", help="interpreter with lifetimes installed")
    parser.add_argument("--no-peer", action="store_true", help="do not run lifetimes")
    args = parser.parse_args(argv)
    parts = tuple(name for name in args.parts.split(",") if name)
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown parts {unknown}; choose from {list(PARTS)}")
    runs = args.runs or (1 if args.quick else 3)
    if runs < 1:
        parser.error("--runs must be at least 1")
    customers = args.customers or (50_000 if args.quick else 250_000)
    if customers < 1_000:
        parser.error("--customers must be at least 1,000")
    peer = "skip" if args.no_peer else args.lifetimes_python
    scale = 20 if args.quick else 1
    return Config(parts=parts, runs=runs, fit_customers=customers,
                  pipeline_customers=1_000_000 // scale, pipeline_orders=10_000_000 // scale,
                  store_size="default" if args.quick else "large", peer=peer)


# ------------------------------------------------------------------------- part: fit


@dataclass(frozen=True)
class Customers:
    """Sufficient statistics of simulated customers, in weeks."""

    x: np.ndarray
    t_x: np.ndarray
    T: np.ndarray  # the papers' notation for customer age
    mean_spend: np.ndarray  # 0 where x == 0

    @property
    def repeaters(self) -> np.ndarray:
        return self.x > 0


def simulate_customers(customers: int, seed: int) -> Customers:
    """Customers drawn from BG/NBD and Gamma-Gamma with CDNOW's parameters, recorded in days.

    Each is born on a whole day of the first 12 weeks and observed to the end of day 273.
    Repeat purchases are min(Poisson(rate x age), purchases before dropping out), the last
    of n uniform purchase times is age x Beta(x, n - x + 1), and times are rounded up to
    whole days, as transaction data is (so customers share rows, as in real data).
    """
    rng = np.random.default_rng(seed)
    bg, gg = TRUE_BGNBD, TRUE_GAMMA_GAMMA
    rates = rng.gamma(bg["r"], 1 / bg["alpha"], customers)  # per week
    dropouts = rng.beta(bg["a"], bg["b"], customers)
    age_days = CALIBRATION_DAYS - rng.integers(0, BIRTH_DAYS, customers)
    age = age_days / 7
    arrivals = rng.poisson(rates * age)
    x = np.minimum(arrivals, rng.geometric(dropouts))
    last = age * rng.beta(np.maximum(x, 1), np.maximum(arrivals - x + 1, 1))
    t_x = np.where(x > 0, np.minimum(np.ceil(last * 7), age_days) / 7, 0.0)
    # Gamma-Gamma: each customer's transactions are Gamma(p, nu), nu ~ Gamma(q, v).
    nu = rng.gamma(gg["q"], 1 / gg["v"], customers)
    spend_sum = rng.gamma(gg["p"] * np.maximum(x, 1), 1 / nu)
    mean_spend = np.where(x > 0, spend_sum / np.maximum(x, 1), 0.0)
    return Customers(x.astype(np.float64), t_x, age, mean_spend)


def fit_ours(data: Customers) -> tuple[float, dict[str, float]]:
    """Seconds to fit both models with shequ.stats, and the parameters."""
    repeat = data.repeaters
    began = time.perf_counter()
    bg = fit_bgnbd(data.x, data.t_x, data.T)
    gg = fit_gamma_gamma(data.x[repeat], data.mean_spend[repeat])
    seconds = time.perf_counter() - began
    return seconds, {"r": bg.r, "alpha": bg.alpha, "a": bg.a, "b": bg.b,
                     "p": gg.p, "q": gg.q, "v": gg.v}


LIFETIMES_SNIPPET = """
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import numpy as np
import lifetimes
from lifetimes import BetaGeoFitter, GammaGammaFitter
data = np.load(sys.argv[1])
x, t_x, age, spend = data["x"], data["t_x"], data["T"], data["mean_spend"]
repeat = x > 0
began = time.perf_counter()
bg = BetaGeoFitter().fit(x, t_x, age)
gg = GammaGammaFitter().fit(x[repeat], spend[repeat])
seconds = time.perf_counter() - began
params = {**{k: float(v) for k, v in bg.params_.items()},
          **{k: float(v) for k, v in gg.params_.items()}}
print(json.dumps({"seconds": seconds, "params": params, "version": lifetimes.__version__,
                  "numpy": np.__version__}))
"""


def _imports_lifetimes(python: str) -> bool:
    try:
        subprocess.run([python, "-c", "import lifetimes"], capture_output=True, check=True,
                       timeout=120)
    except (OSError, subprocess.SubprocessError):
        return False
    return True


def _build_lifetimes_venv() -> str:
    """A virtualenv with lifetimes and this interpreter's numpy, pandas and scipy."""
    python = LIFETIMES_VENV / "bin" / "python"
    print(f"fit: building {LIFETIMES_VENV} (once): lifetimes=={LIFETIMES_VERSION} with "
          f"numpy {np.__version__}, pandas {pd.__version__}, scipy {scipy.__version__}",
          flush=True)  # fmt: skip
    LIFETIMES_VENV.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(LIFETIMES_VENV)], check=True,
                   capture_output=True, timeout=300)  # fmt: skip
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", f"lifetimes=={LIFETIMES_VERSION}",
         f"numpy=={np.__version__}", f"pandas=={pd.__version__}",
         f"scipy=={scipy.__version__}"],
        check=True, capture_output=True, timeout=1200,
    )
    return str(python)


def lifetimes_python(peer: str | None) -> tuple[str | None, str]:
    """The interpreter to run lifetimes with, or None and the reason there is none."""
    if peer == "skip":
        return None, "skipped (--no-peer)"
    if peer is not None:
        if _imports_lifetimes(peer):
            return peer, f"--lifetimes-python {peer}"
        return None, f"{peer} cannot import lifetimes"
    if importlib.util.find_spec("lifetimes") is not None:
        return sys.executable, "this interpreter"
    cached = str(LIFETIMES_VENV / "bin" / "python")
    if _imports_lifetimes(cached):
        return cached, f"cached virtualenv {LIFETIMES_VENV}"
    try:
        built = _build_lifetimes_venv()
    except (OSError, subprocess.SubprocessError) as error:
        detail = getattr(error, "stderr", b"") or b""
        tail = detail.decode(errors="replace").strip().splitlines()[-1:] if detail else []
        return None, f"building {LIFETIMES_VENV} failed: {error} {' '.join(tail)}".strip()
    if _imports_lifetimes(built):
        return built, f"virtualenv built now at {LIFETIMES_VENV}"
    return None, f"{built} was built but cannot import lifetimes"


def fit_lifetimes(python: str, arrays: Path) -> tuple[float, dict[str, float]]:
    """Seconds lifetimes takes to fit both models (measured inside its process, imports and
    loading excluded), and its parameters."""
    completed = subprocess.run([python, "-c", LIFETIMES_SNIPPET, str(arrays)],
                               capture_output=True, text=True, check=True, timeout=3600)
    answer = json.loads(completed.stdout.strip().splitlines()[-1])
    return float(answer["seconds"]), {k: float(v) for k, v in answer["params"].items()}


def within_three_significant(ours: float, theirs: float) -> bool:
    """True when ``ours`` is within half a unit of the third significant figure of
    ``theirs`` (rounding both can still differ when they straddle a rounding boundary)."""
    unit = 10.0 ** (math.floor(math.log10(abs(theirs))) - 2)
    return abs(ours - theirs) <= unit / 2


def _shown(params: dict[str, float]) -> str:
    return " ".join(f"{name}={value:.5g}" for name, value in params.items())


def run_fit(config: Config) -> dict[str, str]:
    data = simulate_customers(config.fit_customers, SEED)
    counts = count_rfm(data.x, data.t_x, data.T)
    repeaters = int(data.repeaters.sum())
    print(f"fit: {config.fit_customers:,} customers ({repeaters:,} repeat buyers); BG/NBD "
          f"sees {len(counts.repeat_rows.x):,} distinct repeat-buyer rows and "
          f"{len(counts.ages)} ages; truth {_shown({**TRUE_BGNBD, **TRUE_GAMMA_GAMMA})}",
          flush=True)  # fmt: skip
    results = {"fit_customers": str(config.fit_customers)}
    python, source = lifetimes_python(config.peer)
    print(f"fit: lifetimes peer: {source}", flush=True)
    ours_times: list[float] = []
    theirs_times: list[float] = []
    ours: dict[str, float] = {}
    theirs: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as scratch:
        arrays = Path(scratch) / "customers.npz"
        np.savez(arrays, x=data.x, t_x=data.t_x, T=data.T, mean_spend=data.mean_spend)
        for run in range(config.runs):
            # Alternate who goes first, so background load hits both alike.
            order = ("ours", "theirs") if run % 2 == 0 else ("theirs", "ours")
            for who in order:
                if who == "ours":
                    seconds, ours = fit_ours(data)
                    ours_times.append(seconds)
                elif python is not None:
                    seconds, theirs = fit_lifetimes(python, arrays)
                    theirs_times.append(seconds)
    ours_s = statistics.median(ours_times)
    print(f"fit: ours {ours_s:.3f} s (median of {config.runs}: "
          f"{', '.join(f'{t:.3f}' for t in ours_times)}): {_shown(ours)}")
    results["fit_ours_s"] = f"{ours_s:.3f}"
    if python is None:
        print(f"fit: lifetimes not measured: {source}; no speedup reported")
        results["fit_speedup"] = "unmeasured"
        return results
    theirs_s = statistics.median(theirs_times)
    agree = {name: within_three_significant(ours[name], theirs[name]) for name in theirs}
    worst = max(abs(ours[name] / theirs[name] - 1) for name in theirs)
    print(f"fit: lifetimes {theirs_s:.3f} s (median of {config.runs}: "
          f"{', '.join(f'{t:.3f}' for t in theirs_times)}): {_shown(theirs)}")
    differing = [name for name, same in agree.items() if not same]
    print(f"fit: parameters within 3 significant figures of lifetimes': "
          f"{'all' if not differing else f'NOT {differing}'}; largest relative difference "
          f"{worst:.1e}")  # fmt: skip
    results["fit_lifetimes_s"] = f"{theirs_s:.3f}"
    results["fit_speedup"] = f"{theirs_s / ours_s:.1f}"
    results["fit_same_3sf"] = "no" if differing else "yes"
    results["fit_max_rel_diff"] = f"{worst:.1e}"
    return results


# -------------------------------------------------------------------- part: pipeline


def _module(name: str) -> ModuleType | None:
    """The module ``name`` if it can be imported (another part of the issue may not have
    landed yet)."""
    if importlib.util.find_spec(name) is None:
        return None
    return importlib.import_module(name)


@dataclass(frozen=True)
class Orders:
    """Synthetic orders, one entry per order."""

    customer: np.ndarray  # int64 ids
    day: np.ndarray  # int64 day numbers 0..DAYS-1
    fen: np.ndarray  # int64 amounts


ORDER_DAYS = 730  # two years of orders; as_of is the last day


def synthetic_orders(customers: int, orders: int, seed: int) -> Orders:
    """``orders`` orders of ``customers`` customers over two years, all in numpy.

    Every customer orders at least once, on a first day spread over the two years; the other
    orders go to customers in proportion to a gamma-distributed appetite times the days left
    after their first order, on uniform days in that span. Amounts are log-normal around
    ¥120 with a per-customer level.
    """
    rng = np.random.default_rng(seed)
    first = rng.integers(0, ORDER_DAYS, customers)
    span = ORDER_DAYS - first
    appetite = rng.gamma(0.6, 1.0, customers) * span
    extra = rng.multinomial(orders - customers, appetite / appetite.sum())
    customer = np.repeat(np.arange(customers, dtype=np.int64), extra + 1)
    starts = np.repeat(first, extra + 1)
    offsets = (rng.random(len(customer)) * np.repeat(span, extra + 1)).astype(np.int64)
    is_first = np.zeros(len(customer), dtype=bool)
    is_first[np.cumsum(extra + 1) - (extra + 1)] = True
    day = np.where(is_first, starts, starts + offsets)
    level = np.repeat(rng.normal(np.log(12_000), 0.6, customers), extra + 1)
    fen = np.rint(np.exp(level + rng.normal(0.0, 0.5, len(customer)))).astype(np.int64)
    return Orders(customer, day.astype(np.int64), fen)


def lifecycle_stages(lifecycle: ModuleType, orders: Orders, day: int,
                     customers: int) -> Any:
    """Every customer's lifecycle stage on ``day`` by the default rules, from the orders
    alone: registration = the first order's day, activity = orders in the engagement
    window (synthetic customers leave no other events), no UGC conversions."""
    config = lifecycle.DEFAULT_CONFIG
    first = np.full(customers, np.iinfo(np.int64).max)
    np.minimum.at(first, orders.customer, orders.day)
    count = lifecycle.trailing_counts
    features = lifecycle.StageFeatures(
        days_since_registration=day - first,
        activity=count(orders.customer, orders.day, day, config.engaged_days, customers),
        paid_orders=count(orders.customer, orders.day, day, config.paying_days, customers),
        conversions=np.zeros(customers, dtype=np.int64),
    )
    return lifecycle.classify(features, config)


def run_pipeline(config: Config) -> dict[str, str]:
    value_module = _module("shequ.stats.customer_value")
    if value_module is None:
        print("pipeline: not measured: shequ.stats.customer_value is not available")
        return {"pipeline": "unavailable"}
    membership = _module("shequ.stats.membership")
    lifecycle = _module("shequ.stats.lifecycle")
    steps = (["rfm", "clv", "value_tiers"] + (["lifecycle"] if lifecycle else [])
             + (["membership"] if membership else []))
    began = time.perf_counter()
    orders = synthetic_orders(config.pipeline_customers, config.pipeline_orders, SEED)
    print(f"pipeline: {config.pipeline_customers:,} customers, {len(orders.customer):,} orders "
          f"generated in {time.perf_counter() - began:.1f} s; steps {'+'.join(steps)}",
          flush=True)  # fmt: skip
    as_of = ORDER_DAYS - 1

    def pipeline() -> Any:
        value = value_module.customer_value(orders.customer, orders.day, orders.fen,
                                            as_of=as_of)
        if lifecycle is not None:
            stages_month_ago = lifecycle_stages(lifecycle, orders, as_of - 30,
                                                config.pipeline_customers)
            stages = lifecycle_stages(lifecycle, orders, as_of, config.pipeline_customers)
            lifecycle.transition_matrix(stages_month_ago, stages)
        if membership is not None:
            membership.assign_tiers(value.monetary_fen, MEMBERSHIP_THRESHOLDS_FEN)
        return value

    times = []
    value: Any = None
    for _ in range(config.runs):
        start = time.perf_counter()
        value = pipeline()
        times.append(time.perf_counter() - start)
    tracemalloc.start()
    pipeline()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    seconds = statistics.median(times)
    tiers = np.bincount(value.value_tier, minlength=6)[1:]
    print(f"pipeline: {seconds:.1f} s (median of {config.runs}: "
          f"{', '.join(f'{t:.1f}' for t in times)}); traced peak {peak / 2**20:.0f} MiB beyond "
          f"the {3 * orders.customer.nbytes / 2**20:.0f} MiB of orders; "
          f"{len(value):,} buyers, tiers 1-5 {tiers.tolist()}; notes {list(value.notes)}")
    return {
        "pipeline_customers": str(len(value)), "pipeline_orders": str(len(orders.customer)),
        "pipeline_steps": "+".join(steps), "pipeline_s": f"{seconds:.2f}",
        "pipeline_peak_mb": f"{peak / 2**20:.0f}",
    }


# --------------------------------------------------------------------- part: segment


def _analytics_benchmark() -> ModuleType:
    """benchmarks/analytics.py, for its cached demo event store (built once, reused)."""
    path = Path(__file__).resolve().with_name("analytics.py")
    spec = importlib.util.spec_from_file_location("bench_analytics", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def run_segment(config: Config) -> dict[str, str]:
    segments = _module("shequ.analytics.segments")
    if segments is None or "browsed_not_bought" not in getattr(segments, "PRESETS", {}):
        print("segment: not measured: shequ.analytics.segments (with the browsed_not_bought "
              "preset) is not available")
        return {"segment": "unavailable"}
    from shequ.analytics.store import EventStore

    analytics = _analytics_benchmark()
    path, manifest = analytics.cached_store(config.store_size, analytics.SEED)
    rule = segments.parse_rule(segments.PRESETS["browsed_not_bought"]["rule"])
    # Windows end with the demo's last local day.
    reference = datetime.combine(manifest.last_day + timedelta(days=1), day_time(0),
                                 ZoneInfo(analytics.TZ))
    # The peer first: the event store then opens the same file for writing.
    sql_members, sql_seconds = _browsed_not_bought_sql(path, reference, config.runs)
    store = EventStore.open(f"duckdb://{path}")
    try:
        def evaluate() -> list[str]:
            found: list[str] = segments.evaluate(store, rule, reference=reference)
            return found

        start = time.perf_counter()
        members = evaluate()
        first = time.perf_counter() - start
        times = []
        for _ in range(config.runs):
            start = time.perf_counter()
            again = evaluate()
            times.append(time.perf_counter() - start)
            if again != members:
                raise AssertionError("the segment's members changed between runs")
    finally:
        store.close()
    seconds = statistics.median(times)
    if sql_members != members:
        raise AssertionError(f"hand-written SQL finds {len(sql_members):,} members, the rule "
                             f"{len(members):,}")
    print(f"segment: browsed_not_bought over {manifest.events:,} events: {len(members):,} "
          f"members; first {first * 1000:.0f} ms (plan compiled), then {seconds * 1000:.0f} ms "
          f"(median of {config.runs}); hand-written DuckDB SQL, same members: "
          f"{sql_seconds * 1000:.0f} ms")
    return {"segment_events": str(manifest.events), "segment_members": str(len(members)),
            "segment_ms": f"{seconds * 1000:.0f}", "segment_first_ms": f"{first * 1000:.0f}",
            "segment_sql_ms": f"{sql_seconds * 1000:.0f}",
            "segment_vs_sql": f"{seconds / sql_seconds:.2f}"}


# The same members as the browsed_not_bought preset, written by hand: a person is the
# event's customer, else the customer its anonymous id is linked to (a plain equi-join:
# putting ``e.customer_id IS NULL`` into the join condition costs DuckDB its hash join
# and 4 s here); the window is
# (reference - 7 days, reference]; the same SKU viewed twice and no payment in it.
BROWSED_NOT_BOUGHT_SQL = """
WITH ev AS (
    SELECT COALESCE(e.customer_id, l.customer_id) AS person, e.name, e.properties
    FROM events e
    LEFT JOIN identity_links l ON l.anonymous_id = e.anonymous_id
    WHERE e.ts > $start AND e.ts <= $end AND e.name IN ('product_view', 'payment')
),
viewed AS (
    SELECT person FROM ev
    WHERE name = 'product_view' AND person IS NOT NULL
      AND json_extract_string(properties, '$.sku') IS NOT NULL
    GROUP BY person, json_extract_string(properties, '$.sku')
    HAVING count(*) >= 2
),
paid AS (SELECT DISTINCT person FROM ev WHERE name = 'payment' AND person IS NOT NULL)
SELECT DISTINCT person FROM viewed WHERE person NOT IN (SELECT person FROM paid)
ORDER BY person
"""


def _browsed_not_bought_sql(path: Path, reference: datetime,
                            runs: int) -> tuple[list[str], float]:
    """The peer: members and median seconds of the hand-written query on the same file."""
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        params = {"start": reference - timedelta(days=7), "end": reference}
        members = [row[0] for row in con.execute(BROWSED_NOT_BOUGHT_SQL, params).fetchall()]
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            con.execute(BROWSED_NOT_BOUGHT_SQL, params).fetchall()
            times.append(time.perf_counter() - start)
    finally:
        con.close()
    return members, statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    config = parse_args(argv)
    print(f"config: {config}, cpus={os.cpu_count()}, load average {os.getloadavg()[0]:.1f}",
          flush=True)  # fmt: skip
    parts: dict[str, Callable[[Config], dict[str, str]]] = {
        "fit": run_fit, "pipeline": run_pipeline, "segment": run_segment,
    }
    results: dict[str, str] = {}
    for name in config.parts:
        results.update(parts[name](config))
    results["peak_rss_mb"] = f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}"
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    print("RESULT " + " ".join(f"{k}={v}" for k, v in results.items()))


if __name__ == "__main__":
    main()
