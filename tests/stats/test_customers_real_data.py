"""scripts/customers_real_data.py on the real UCI Online Retail II file: the cleaning against
an independent pandas count, every kept customer grouped and tiered, plausible fits, the
holdout check within its tolerance, and the doc's generated block against the output.

The whole file is used (the report builds in about 5 s)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from script_modules import load_script
from shequ.stats.rfm import GROUPS
from shequ.stats.value_tiers import group_figures

REPO = Path(__file__).resolve().parents[2]
EVAL_DATA = Path(os.environ.get("SHEQU_EVAL_DATA", REPO.parent / "shared" / "data"))
DOC = REPO / "docs" / "customers-on-real-data.md"
# The BG/NBD forecast of holdout purchase days may miss by this much (it measures -12.8 %:
# the holdout holds the autumn peak the stationary model cannot know about).
HOLDOUT_TOLERANCE = 0.20


script = load_script(REPO / "scripts" / "customers_real_data.py")


@pytest.fixture(scope="module")
def report() -> Any:
    path = EVAL_DATA / script.RELATIVE
    if not path.exists():
        pytest.skip(f"real evaluation data absent: {path} (set SHEQU_EVAL_DATA)")
    return script.build_report(EVAL_DATA)


def _pandas_clean(path: Path) -> pd.DataFrame:
    """The same rules written independently with pandas, all at once."""
    raw = pd.read_parquet(path)
    code = raw["StockCode"].astype(str)
    keep = (
        ~raw["Invoice"].str.startswith(("C", "A"))
        & raw["Customer ID"].notna()
        & (raw["Quantity"] > 0)
        & (raw["Price"] > 0)
        & ((raw["Quantity"] * raw["Price"] * 100).round() > 0)
        & ~code.isin(script.NON_PRODUCT_CODES)
        & ~code.str.startswith("gift_0001_")
    )
    return raw[keep]


def test_cleaning_counts_add_up_and_match_pandas(report: Any) -> None:
    cleaning = report.cleaning
    kept = cleaning.kept
    assert cleaning.raw_lines == 525_461  # the file's size, as the data README states
    assert cleaning.raw_lines - sum(count for _, count in cleaning.dropped) == len(kept.day)
    reference = _pandas_clean(EVAL_DATA / script.RELATIVE)
    assert len(reference) == len(kept.day)
    pence = (reference["Quantity"] * reference["Price"] * 100).round().astype(np.int64)
    assert int(pence.sum()) == int(kept.pence.sum())
    assert reference["Customer ID"].nunique() == len(np.unique(kept.customer))
    assert (kept.pence > 0).all()


def test_every_kept_customer_gets_a_group_and_a_tier(report: Any) -> None:
    kept, value, table = report.cleaning.kept, report.value, report.rfm
    assert value.customer_ids.tolist() == np.unique(kept.customer).tolist()
    assert set(np.unique(value.value_tier).tolist()) == {1, 2, 3, 4, 5}
    in_window = kept.day > report.as_of - script.WINDOW_DAYS
    assert table.customer_ids.tolist() == np.unique(kept.customer[in_window]).tolist()
    assert set(table.group.tolist()) == {group.code for group in GROUPS}
    assert int(value.spend_fen.sum()) == int(kept.pence.sum())


def test_fits_converge_with_plausible_parameters(report: Any) -> None:
    for bg in (report.holdout.bg, report.value.bgnbd):
        assert 0.1 < bg.r < 5
        assert 1 < bg.alpha < 50  # weeks: a customer buys every few weeks
        assert np.isfinite(bg.log_likelihood)
    # The calibration fit finds no dropout; the full year finds a little.
    assert report.holdout.bg.a / (report.holdout.bg.a + report.holdout.bg.b) < 1e-3
    full = report.value.bgnbd
    assert 1e-4 < full.a / (full.a + full.b) < 0.05
    for gg in (report.holdout.gg, report.value.gamma_gamma):
        assert gg.p > 0
        assert gg.q > 1  # a finite mean spend
        assert 100 < gg.p * gg.v / (gg.q - 1) < 2_000  # mean purchase-day spend in pounds


def test_holdout_prediction_within_tolerance(report: Any) -> None:
    check = report.holdout
    predicted, actual = float(check.predicted.sum()), int(check.actual.sum())
    assert abs(predicted / actual - 1) < HOLDOUT_TOLERANCE
    parts = script.deciles(check.predicted, check.actual)
    predicted_by_decile = [float(p.sum()) for p, _ in parts]
    actual_by_decile = [int(a.sum()) for _, a in parts]
    assert predicted_by_decile == sorted(predicted_by_decile)
    assert actual_by_decile[-1] > 5 * actual_by_decile[0]  # the ranking is informative


def test_tier_figures_fall_from_t1_to_t5(report: Any) -> None:
    value = report.value
    figures = group_figures(value.value_tier, value.spend_fen, value.orders, base=5)
    assert sum(f.customers for f in figures) == len(value)
    assert [f.customers > 0 for f in figures] == [True] * 5
    assert sum(f.gmv_share or 0.0 for f in figures) == pytest.approx(1.0)
    averages = [f.average_spend or 0.0 for f in figures]
    assert averages == sorted(averages, reverse=True)
    assert figures[-1].spend_multiple == 1.0


def test_membership_thresholds_split_at_the_stated_percentiles(report: Any) -> None:
    block = script.render_membership(report.rfm)
    counts = [int(line.split("|")[2].replace(",", "")) for line in block if
              line.startswith(("| none", "| silver", "| gold", "| black_gold"))]
    shares = np.array(counts) / len(report.rfm)
    assert shares == pytest.approx([0.70, 0.20, 0.08, 0.02], abs=0.005)


def test_the_doc_holds_the_scripts_output_verbatim(report: Any) -> None:
    block = script.render(report)
    assert script.BLOCK.extract(DOC.read_text(encoding="utf-8")) == block


def test_write_block_replaces_only_the_marked_part(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(f"intro\n{script.BEGIN}\nold\n{script.END}\nafter\n", encoding="utf-8")
    script.BLOCK.write(doc, f"{script.BEGIN}\nnew\n{script.END}\n")
    expected = ["intro", script.BEGIN, "new", script.END, "after"]
    assert doc.read_text(encoding="utf-8").splitlines() == expected
