"""Calibration/holdout report of the CLV models on the CDNOW 2,357-customer sample.

Calibration: 39 weeks from 1997-01-01 (through 1997-09-30); holdout: the next 39 weeks
(1997-10-01 .. 1998-06-30). Purchases on the same day are merged, times are in weeks.

    python scripts/clv_cdnow_report.py [--data DIR] [--lifetimes-python /tmp/lt/bin/python]

With ``--lifetimes-python`` (a separate virtualenv with ``lifetimes`` installed; it is not a
project dependency) the same holdout figure is computed by lifetimes for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shequ.stats.bgnbd import conditional_expected_purchases, fit_bgnbd
from shequ.stats.clv import Summary, customer_lifetime_value, summarise
from shequ.stats.gamma_gamma import conditional_expected_spend, fit_gamma_gamma

START = np.datetime64("1997-01-01")
CALIBRATION_END_DAY = 272  # 1997-09-30
HOLDOUT_END_DAY = CALIBRATION_END_DAY + 39 * 7  # 1998-06-30
HOLDOUT_WEEKS = 39
DEFAULT_DATA = Path(
    os.environ.get("SHEQU_EVAL_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)

LIFETIMES_SNIPPET = """
import json, sys, warnings
warnings.filterwarnings("ignore")
import pandas as pd
from lifetimes import BetaGeoFitter, GammaGammaFitter
from lifetimes.utils import calibration_and_holdout_data
raw = pd.read_csv(sys.argv[1], sep=r"\\s+", header=None,
                  names=["id", "customer", "date", "cds", "dollars"], dtype={"date": str})
raw["date"] = pd.to_datetime(raw["date"], format="%Y%m%d")
data = calibration_and_holdout_data(
    raw, "customer", "date", calibration_period_end="1997-09-30",
    observation_period_end="1998-06-30", freq="D", freq_multiplier=7,
    monetary_value_col="dollars")
bg = BetaGeoFitter().fit(data["frequency_cal"], data["recency_cal"], data["T_cal"])
predicted = bg.conditional_expected_number_of_purchases_up_to_time(
    39, data["frequency_cal"], data["recency_cal"], data["T_cal"]).sum()
repeaters = data[data["frequency_cal"] > 0]
gg = GammaGammaFitter().fit(repeaters["frequency_cal"], repeaters["monetary_value_cal"])
print(json.dumps({"bgnbd": {k: float(v) for k, v in bg.params_.items()},
                  "gamma_gamma": {k: float(v) for k, v in gg.params_.items()},
                  "predicted": float(predicted),
                  "actual": float(data["frequency_holdout"].sum())}))
"""


@dataclass(frozen=True)
class Transactions:
    customer: np.ndarray
    day: np.ndarray
    dollars: np.ndarray


def load_transactions(path: Path) -> Transactions:
    columns = np.loadtxt(path, dtype=str)
    dates = np.array([f"{d[:4]}-{d[4:6]}-{d[6:]}" for d in columns[:, 2]], dtype="datetime64[D]")
    day = (dates - START).astype(np.int64)
    return Transactions(columns[:, 1].astype(int), day, columns[:, 4].astype(float))


def holdout_totals(transactions: Transactions) -> tuple[int, float]:
    """Same-day-merged purchase count and revenue after calibration, up to the holdout end."""
    in_holdout = (transactions.day > CALIBRATION_END_DAY) & (transactions.day <= HOLDOUT_END_DAY)
    purchase_days = {
        (int(customer), int(day))
        for customer, day in zip(
            transactions.customer[in_holdout], transactions.day[in_holdout], strict=True
        )
    }
    return len(purchase_days), float(transactions.dollars[in_holdout].sum())


def lifetimes_comparison(python: str, sample: Path) -> dict[str, object] | None:
    try:
        completed = subprocess.run(
            [python, "-c", LIFETIMES_SNIPPET, str(sample)],
            capture_output=True, text=True, check=True, timeout=600,
        )
    except (OSError, subprocess.SubprocessError) as error:
        print(f"lifetimes comparison unavailable: {error}")
        return None
    result: dict[str, object] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def print_report(summary: Summary, transactions: Transactions, lifetimes_python: str | None,
                 sample: Path) -> None:
    bg = fit_bgnbd(summary.x, summary.t_x, summary.T)
    repeaters = summary.x > 0
    gg = fit_gamma_gamma(summary.x[repeaters], summary.mean_spend[repeaters])
    expected = conditional_expected_purchases(
        bg, HOLDOUT_WEEKS, summary.x, summary.t_x, summary.T
    )
    spend = conditional_expected_spend(gg, summary.x, summary.mean_spend)
    revenue = customer_lifetime_value(
        bg, gg, summary.x, summary.t_x, summary.T, summary.mean_spend, HOLDOUT_WEEKS, 0.0
    )
    actual_purchases, actual_revenue = holdout_totals(transactions)
    print(f"customers: {bg.n} (repeaters for Gamma-Gamma: {gg.n})")
    print(f"BG/NBD (ours):      r={bg.r:.4f} alpha={bg.alpha:.4f} a={bg.a:.4f} b={bg.b:.4f} "
          f"LL={bg.log_likelihood:.2f}")
    print(f"Gamma-Gamma (ours): p={gg.p:.4f} q={gg.q:.4f} v={gg.v:.4f} "
          f"LL={gg.log_likelihood:.2f}")
    print(f"holdout repeat purchases, {HOLDOUT_WEEKS} weeks: predicted (ours) "
          f"{expected.sum():.1f}, actual {actual_purchases}")
    print(f"holdout revenue, E[Y] x E[M] undiscounted: predicted (ours) {revenue.sum():.2f}, "
          f"actual {actual_revenue:.2f}")
    print(f"mean E[M | x, mean spend] over all customers: {spend.mean():.2f}")
    if lifetimes_python is None:
        print("lifetimes comparison: skipped (no --lifetimes-python given)")
        return
    other = lifetimes_comparison(lifetimes_python, sample)
    if other is not None:
        print(f"lifetimes 0.11.3: BG/NBD {other['bgnbd']}")
        print(f"lifetimes 0.11.3: Gamma-Gamma {other['gamma_gamma']}")
        print(f"holdout repeat purchases (lifetimes): predicted {other['predicted']:.1f}, "
              f"actual {other['actual']:.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--lifetimes-python", default=None)
    arguments = parser.parse_args()
    sample = arguments.data / "retail" / "cdnow" / "CDNOW_sample.txt"
    transactions = load_transactions(sample)
    calibration = transactions.day <= CALIBRATION_END_DAY
    summary = summarise(
        transactions.customer[calibration], transactions.day[calibration] / 7,
        transactions.dollars[calibration], CALIBRATION_END_DAY / 7,
    )
    print_report(summary, transactions, arguments.lifetimes_python, sample)


if __name__ == "__main__":
    main()
