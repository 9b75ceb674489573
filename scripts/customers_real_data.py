"""RFM, CLV, the five-tier value matrix and membership tiers on UCI Online Retail II.

    python scripts/customers_real_data.py [--data DIR] [--out FILE.md]

``--data`` defaults to ``$SHEQU_EVAL_DATA``, else ``../shared/data`` next to the repository;
the file read is ``retail/online_retail_ii/online_retail.parquet`` (sheet "Year
2009-2010", 525,461 raw lines). ``--out`` writes the generated results block; when the file
already holds the block's markers (as docs/customers-on-real-data.md does), only the text
between them is replaced. Money is GBP: the stats functions get whole pence (the
``amounts_fen`` arguments, "fen" being the project's minor unit), the report shows pounds.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from doc_blocks import DocBlock

from shequ.stats.bgnbd import BgNbdParams, conditional_expected_purchases, fit_bgnbd
from shequ.stats.clv import Summary, summarise
from shequ.stats.customer_value import CustomerValue, customer_value
from shequ.stats.gamma_gamma import GammaGammaParams, fit_gamma_gamma
from shequ.stats.membership import TIERS, assign_tiers
from shequ.stats.rfm import GROUPS, RfmTable, rfm_table
from shequ.stats.value_tiers import (
    DEFAULT_CONFIG,
    TIER_CODES,
    TIER_NAMES,
    GroupFigures,
    group_figures,
)

DEFAULT_DATA = Path(
    os.environ.get("SHEQU_EVAL_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
RELATIVE = Path("retail/online_retail_ii/online_retail.parquet")
BLOCK = DocBlock("scripts/customers_real_data.py")
BEGIN, END = BLOCK.begin, BLOCK.end

ORIGIN = np.datetime64("2009-12-01", "D")  # day 0: the first invoice day of the file
WINDOW_DAYS = 365
CALIBRATION_SHARE = 2 / 3
DAYS_PER_WEEK = 7.0
MEMBERSHIP_PERCENTILES = (70.0, 90.0, 98.0)
NO_DROPOUT = 0.001  # BG/NBD mean dropout probability per purchase below which a, b are moot
# Stock codes that are not goods: postage, carriage, manual entries, discounts, samples,
# bad-debt and other adjustments, fees, test products. Gift vouchers ("gift_0001_*") too:
# a voucher is money paid in advance, counted when it is spent on goods.
NON_PRODUCT_CODES = frozenset({
    "POST", "DOT", "C2", "M", "m", "D", "S", "B", "ADJUST", "ADJUST2", "BANK CHARGES",
    "AMAZONFEE", "TEST001", "TEST002",
})  # fmt: skip
GIFT_VOUCHER_PREFIX = "gift_0001_"
DAY_SPAN = 10_000  # more days than any file spans, for (customer, day) keys
DUPLICATE_KEY = ("Invoice", "StockCode", "Quantity", "Price", "Customer ID", "InvoiceDate")


@dataclass(frozen=True)
class Purchases:
    """Kept line items: customer id, day number since :data:`ORIGIN`, amount in pence."""

    customer: np.ndarray[Any, np.dtype[np.int64]]
    day: np.ndarray[Any, np.dtype[np.int64]]
    pence: np.ndarray[Any, np.dtype[np.int64]]
    invoice: np.ndarray[Any, np.dtype[Any]]


@dataclass(frozen=True)
class Cleaning:
    """Raw line count, ``(reason, lines dropped)`` in the order the rules apply, the lines
    kept, and the exact duplicate lines among them (kept, see the doc)."""

    raw_lines: int
    dropped: list[tuple[str, int]]
    kept: Purchases
    duplicate_lines: int
    cancelled_pence: int  # value of the cancellation lines of known customers


def _flags(mask: pa.ChunkedArray | pa.Array) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """A boolean Arrow result as a numpy mask (the columns have no nulls)."""
    return np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)


def _duplicates(table: pa.Table) -> int:
    """Lines equal to an earlier line in invoice, stock code, quantity, price, customer and
    time (the other columns follow from these), counted on integer keys sorted together."""
    keys = []
    for name in DUPLICATE_KEY:
        column = table.column(name)
        if pa.types.is_string(column.type):
            column = column.combine_chunks().dictionary_encode().indices
        values = np.asarray(column.to_numpy())
        # Floats compare by their bit pattern: equal prices are equal bits.
        keys.append(values.view(np.int64) if values.dtype == np.float64
                    else values.astype(np.int64))
    ordered = np.stack(keys)[:, np.lexsort(keys)]
    return int((ordered[:, 1:] == ordered[:, :-1]).all(axis=0).sum())


def load_and_clean(path: Path) -> Cleaning:
    """Read the parquet file and drop what is not a sale of goods to a known customer.

    Each dropped line is counted under the first rule it breaks, so the counts add up to
    the raw total minus the kept lines.
    """
    table = pq.ParquetFile(path).read()
    invoice, code = table.column("Invoice"), table.column("StockCode")
    quantity = table.column("Quantity").to_numpy()
    price = table.column("Price").to_numpy()
    customer = pc.fill_null(table.column("Customer ID"), -1.0).to_numpy()
    pence = np.rint(quantity * price * 100)
    cancellation = _flags(pc.starts_with(invoice, "C"))
    rules = [
        ("cancellation (invoice starts with C)", cancellation),
        ("bad-debt adjustment (invoice starts with A)", _flags(pc.starts_with(invoice, "A"))),
        ("no customer id", customer < 0),
        ("quantity zero or negative", quantity <= 0),
        ("price zero or negative, or line worth under ½p", (price <= 0) | (pence <= 0)),
        ("not a product (postage, manual, fees, ...)",
         _flags(pc.is_in(code, pa.array(sorted(NON_PRODUCT_CODES))))
         | _flags(pc.starts_with(code, GIFT_VOUCHER_PREFIX))),
    ]
    keep = np.ones(table.num_rows, dtype=bool)
    dropped = []
    for reason, breaks in rules:
        dropped.append((reason, int((keep & breaks).sum())))
        keep &= ~breaks
    kept_table = table.filter(pa.array(keep))
    stamp = pc.strptime(kept_table.column("InvoiceDate"), "%Y-%m-%d %H:%M:%S", "s")
    day = (stamp.to_numpy().astype("datetime64[D]") - ORIGIN).astype(np.int64)
    kept = Purchases(customer[keep].astype(np.int64), day, pence[keep].astype(np.int64),
                     kept_table.column("Invoice").to_numpy())
    cancelled = -pence[cancellation & (customer >= 0)].sum()
    return Cleaning(table.num_rows, dropped, kept, _duplicates(kept_table), int(cancelled))


@dataclass(frozen=True)
class Holdout:
    """BG/NBD + Gamma-Gamma fitted on the calibration period and checked on the holdout."""

    calibration_end_day: int
    holdout_weeks: float
    summary: Summary
    bg: BgNbdParams
    gg: GammaGammaParams
    predicted: np.ndarray[Any, np.dtype[np.float64]]
    actual: np.ndarray[Any, np.dtype[np.int64]]
    weekly_visits: tuple[float, float]  # all customers' purchase days per week, cal / holdout


def holdout_check(purchases: Purchases, last_day: int) -> Holdout:
    """Fit on days ``0 .. calibration_end_day`` (the first two thirds), predict each
    calibration customer's repeat purchase days in the rest and count the actual ones."""
    if last_day >= DAY_SPAN:
        raise ValueError(f"last_day must be below {DAY_SPAN}, got {last_day}")
    end_day = int(np.floor((last_day + 1) * CALIBRATION_SHARE)) - 1
    # Calibration ends with the end of end_day; purchases on one day are one purchase.
    calibration = purchases.day <= end_day
    summary = summarise(purchases.customer[calibration],
                        purchases.day[calibration] / DAYS_PER_WEEK,
                        purchases.pence[calibration] / 100.0, (end_day + 1) / DAYS_PER_WEEK)
    bg = fit_bgnbd(summary.x, summary.t_x, summary.T)
    repeaters = summary.x > 0
    gg = fit_gamma_gamma(summary.x[repeaters], summary.mean_spend[repeaters])
    holdout_weeks = (last_day - end_day) / DAYS_PER_WEEK
    predicted = conditional_expected_purchases(bg, holdout_weeks, summary.x, summary.t_x,
                                               summary.T)
    later = ~calibration
    # One purchase per customer and day: customer * DAY_SPAN + day is unique per pair.
    visit_keys = purchases.customer * DAY_SPAN + purchases.day
    visits = np.unique(visit_keys[later]) // DAY_SPAN  # the customer of each holdout visit
    known = np.isin(visits, summary.customer_ids)
    actual = np.zeros(len(summary.customer_ids), dtype=np.int64)
    np.add.at(actual, np.searchsorted(summary.customer_ids, visits[known]), 1)
    before = len(np.unique(visit_keys[calibration]))
    weekly = (before / ((end_day + 1) / DAYS_PER_WEEK), len(visits) / holdout_weeks)
    return Holdout(end_day, holdout_weeks, summary, bg, gg, predicted, actual, weekly)


def _pounds(pence: float) -> str:
    return f"£{pence / 100:,.0f}"


def _share(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _day(day: int) -> str:
    return str(ORIGIN + np.timedelta64(day, "D"))


def render_cleaning(cleaning: Cleaning) -> list[str]:
    """Markdown: the drop rules with their counts and what is left."""
    kept = cleaning.kept
    remaining = cleaning.raw_lines
    lines = ["### Cleaning", "", "| rule (applied in order) | lines dropped | lines left |",
             "| --- | ---: | ---: |", f"| raw file | | {remaining:,} |"]
    for reason, count in cleaning.dropped:
        remaining -= count
        lines.append(f"| {reason} | {count:,} | {remaining:,} |")
    lines += [
        "",
        f"Kept: {len(kept.day):,} lines, {len(np.unique(kept.invoice)):,} invoices, "
        f"{len(np.unique(kept.customer)):,} customers, {_pounds(float(kept.pence.sum()))} "
        f"revenue, {_day(int(kept.day.min()))} .. {_day(int(kept.day.max()))}. "
        f"Exact duplicate lines among them (kept): {cleaning.duplicate_lines:,}. Cancellation"
        f" lines of known customers total {_pounds(cleaning.cancelled_pence)}"
        f" ({cleaning.cancelled_pence / kept.pence.sum():.1%} of the kept revenue), not netted"
        " off.",
        "",
    ]
    return lines


def render_rfm(table: RfmTable, as_of: int) -> list[str]:
    """Markdown: the eight RFM groups with customers and revenue shares."""
    total = float(table.monetary_fen.sum())
    lines = [
        "### RFM",
        "",
        f"as_of = {_day(as_of)}, window {WINDOW_DAYS} days (from {_day(as_of - WINDOW_DAYS + 1)}),"
        f" {len(table):,} customers, quintile scores by mid-rank, high = above the mean score"
        f" (R {table.r_score.mean():.2f}, F {table.f_score.mean():.2f},"
        f" M {table.m_score.mean():.2f}).",
        "",
        "| group | 中文 | customers | share of customers | revenue | share of revenue |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for group in GROUPS:
        members = table.group == group.code
        revenue = float(table.monetary_fen[members].sum())
        lines.append(f"| `{group.code}` | {group.label_zh} | {int(members.sum()):,} | "
                     f"{members.mean():.1%} | {_pounds(revenue)} | {revenue / total:.1%} |")
    return [*lines, ""]


def _dropout(bg: BgNbdParams) -> str:
    """``a`` and ``b``, or the statement that the fit found no dropout: at ``a → 0`` the
    likelihood is flat along ``a`` and ``b``, so their values there mean nothing."""
    if bg.a / (bg.a + bg.b) < NO_DROPOUT:
        return (f"a / (a + b) < {NO_DROPOUT} (a → 0: no dropout detected, the likelihood is"
                " flat along a and b)")
    return f"a = {bg.a:.3f}, b = {bg.b:.1f}"


def render_holdout(check: Holdout) -> list[str]:
    """Markdown: fitted parameters and predicted vs actual holdout purchases by decile."""
    bg, gg = check.bg, check.gg
    lines = [
        "### CLV models: calibration and holdout",
        "",
        f"Calibration: {_day(0)} .. {_day(check.calibration_end_day)} (the first two thirds);"
        f" holdout: the next {check.holdout_weeks:.1f} weeks. Weeks as the period, purchases"
        " on one day merged, customers acquired in the calibration period only.",
        "",
        f"- customers {bg.n:,} (repeat buyers for Gamma-Gamma: {gg.n:,})",
        f"- BG/NBD: r = {bg.r:.3f}, alpha = {bg.alpha:.3f}, {_dropout(bg)},"
        f" log-likelihood {bg.log_likelihood:.1f}",
        f"- Gamma-Gamma (pounds): p = {gg.p:.3f}, q = {gg.q:.3f}, v = {gg.v:.1f},"
        f" log-likelihood {gg.log_likelihood:.1f}",
        f"- holdout repeat purchase days: predicted {check.predicted.sum():,.1f}, actual"
        f" {int(check.actual.sum()):,} ({check.predicted.sum() / check.actual.sum() - 1:+.1%})",
        f"- purchase days per week, all customers: calibration {check.weekly_visits[0]:,.0f},"
        f" holdout {check.weekly_visits[1]:,.0f}",
        "",
        "| decile of prediction (1 = lowest) | customers | predicted | actual |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for decile, (predicted, actual) in enumerate(deciles(check.predicted, check.actual), 1):
        lines.append(f"| {decile} | {len(predicted):,} | {predicted.sum():,.1f} | "
                     f"{int(actual.sum()):,} |")
    return [*lines, ""]


def deciles(predicted: np.ndarray[Any, np.dtype[np.float64]],
            actual: np.ndarray[Any, np.dtype[np.int64]]
            ) -> list[tuple[np.ndarray[Any, np.dtype[Any]], np.ndarray[Any, np.dtype[Any]]]]:
    """Customers sorted by prediction (ties by position) and cut into ten equal parts."""
    order = np.argsort(predicted, kind="stable")
    return [(predicted[part], actual[part]) for part in np.array_split(order, 10)]


def _figure_rows(figures: list[GroupFigures], names: Sequence[str]) -> list[str]:
    rows = []
    for figure, name in zip(figures, names, strict=True):
        average = "–" if figure.average_spend is None else _pounds(figure.average_spend)
        multiple = "–" if figure.spend_multiple is None else f"{figure.spend_multiple:.1f}×"
        rows.append(f"| {name} | {figure.customers:,} | {_share(figure.gmv_share)} | "
                    f"{average} | {multiple} | {_share(figure.repurchase_rate)} |")
    return rows


def render_tiers(value: CustomerValue) -> list[str]:
    """Markdown: the five tiers' figures on all-time spend and purchase days."""
    bg, gg = value.bgnbd, value.gamma_gamma
    assert bg is not None
    assert gg is not None
    clv = value.clv_fen
    cuts = np.quantile(clv, (0.5, 0.8))
    figures = group_figures(value.value_tier, value.spend_fen, value.orders, base=5,
                            labels=range(1, 6))
    names = [f"`{code}` {TIER_NAMES[code][0]} / {TIER_NAMES[code][1]}" for code in TIER_CODES]
    dormant_below = DEFAULT_CONFIG.dormant_p_alive
    dormant = value.p_alive < dormant_below
    return [
        "### Five-tier value matrix",
        "",
        f"`customer_value` at as_of = {_day(int(value.last_day.max()))}: {len(value):,} buyers"
        f" ({int((value.frequency == 0).sum()):,} with nothing in the RFM window score 1/1/1);"
        f" BG/NBD r = {bg.r:.3f}, alpha = {bg.alpha:.3f}, {_dropout(bg)};"
        f" Gamma-Gamma p = {gg.p:.3f}, q = {gg.q:.3f}, v = {gg.v:.1f}. CLV = 52 weeks at 10 %"
        f" a year: median {_pounds(float(np.median(clv)))}, CLV band cuts (50th / 80th"
        f" percentile) about {_pounds(cuts[0])} / {_pounds(cuts[1])}; {int(dormant.sum()):,}"
        f" customers with p_alive < {dormant_below} are capped at"
        f" t{DEFAULT_CONFIG.dormant_best_tier}. Spend and orders (purchase days) are over the"
        " whole file.",
        "",
        "| tier | customers | share of GMV | average spend | × t5 | repurchase rate |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        *_figure_rows(figures, names),
        "",
    ]


def render_membership(table: RfmTable) -> list[str]:
    """Markdown: membership tiers on the last 12 months' spend, thresholds from the data."""
    spend = table.monetary_fen
    thresholds = [float(np.floor(np.percentile(spend, p) / 100) * 100)
                  for p in MEMBERSHIP_PERCENTILES]
    tiers = assign_tiers(spend, thresholds)
    figures = group_figures(tiers, spend, table.frequency, base=0, labels=range(4))
    names = ["none", *TIERS]
    stated = ", ".join(f"{name} from {_pounds(cut)} ({p:.0f}th)" for name, cut, p in
                       zip(TIERS, thresholds, MEMBERSHIP_PERCENTILES, strict=True))
    return [
        "### Membership tiers on 12-month spend",
        "",
        f"Rolling 12-month spend = the RFM window; the {len(table):,} customers with a purchase"
        f" in it (all positive spenders). Thresholds, percentiles of their spend rounded down"
        f" to the pound: {stated}.",
        "",
        "| tier | customers | share of GMV | average spend | × none | repurchase rate |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        *_figure_rows(figures, names),
        "",
    ]


@dataclass(frozen=True)
class Report:
    """Everything the block shows, kept for the tests."""

    cleaning: Cleaning
    as_of: int
    rfm: RfmTable
    holdout: Holdout
    value: CustomerValue


def build_report(data: Path) -> Report:
    """Load, clean and run every model on the file under ``data``."""
    cleaning = load_and_clean(data / RELATIVE)
    kept = cleaning.kept
    as_of = int(kept.day.max())
    table = rfm_table(kept.customer, kept.day, kept.pence, as_of=as_of,
                      window_days=WINDOW_DAYS)
    check = holdout_check(kept, as_of)
    value = customer_value(kept.customer, kept.day, kept.pence, as_of=as_of)
    return Report(cleaning, as_of, table, check, value)


def render(report: Report) -> str:
    """The generated results block (markdown, between the BEGIN/END markers)."""
    lines = [BEGIN, "", *render_cleaning(report.cleaning), *render_rfm(report.rfm, report.as_of),
             *render_holdout(report.holdout), *render_tiers(report.value),
             *render_membership(report.rfm), END]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    """Print (and, with ``--out``, write) the generated block."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=None)
    arguments = parser.parse_args(argv)
    block = render(build_report(arguments.data))
    print(block, end="")
    if arguments.out is not None:
        BLOCK.write(arguments.out, block)


if __name__ == "__main__":
    main()
