"""Drift on a large table: our statistics against Evidently's plain ``DataDriftPreset``.

The table is synthetic and shaped like account snapshots: 80% numeric columns (normal,
log-normal money, Poisson counts, ratios in [0, 1], small integers with at most five values)
and 20% categorical ones (plans, regions, billing periods). The current table is drawn from
the same generators with a shift applied to some columns, at strengths from none to well past
the threshold, so that some verdicts are close calls.

- ours: ``csa.monitoring.feature_drift`` with the drift policy's ``max_rows`` (200,000 rows
  per side drawn at random; quantile and frequency summaries; normed Wasserstein and
  Jensen-Shannon distances, threshold 0.1 each).
- baseline: ``Report([DataDriftPreset()]).run(current, reference)`` of Evidently 0.7 on every
  row, with its defaults (which pick the same two statistics and thresholds for tables over
  1,000 rows).

Reported: both times, their ratio (goal: ours at least 10 times faster), and the share of
columns whose drifted / not-drifted verdict agrees (goal: at least 95%), with every column
where they differ. Run: ``python bench/bench_drift.py [--rows 1000000] [--columns 50]``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import peak_rss_mb, report

from csa.monitoring import feature_drift
from csa.monitoring.policy import DriftPolicy

GOAL_SPEEDUP = 10.0
GOAL_AGREEMENT = 0.95
THRESHOLD = 0.1
# Shift strengths cycled over the columns: none, small, near the threshold, clear.
STRENGTHS = (0.0, 0.0, 0.03, 0.08, 0.1, 0.12, 0.2, 0.5)


def make_tables(rows: int, columns: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Reference and current tables, and the names of the categorical columns."""
    rng = np.random.default_rng(seed)
    reference, current, categorical = {}, {}, []
    n_categorical = max(1, columns // 5)
    for index in range(columns):
        strength = STRENGTHS[index % len(STRENGTHS)]
        if index >= columns - n_categorical:
            name = f"category_{index}"
            categorical.append(name)
            values = np.array(["starter", "growth", "enterprise", "trial", "legacy"])
            base = np.array([0.4, 0.3, 0.15, 0.1, 0.05])
            moved = base + strength * np.array([-0.6, 0.2, 0.2, 0.1, 0.1])
            moved = np.clip(moved, 0.001, None) / np.clip(moved, 0.001, None).sum()
            reference[name] = rng.choice(values, size=rows, p=base)
            current[name] = rng.choice(values, size=rows, p=moved)
            continue
        kind = index % 5
        name = f"feature_{index}"
        if kind == 0:  # a trend or score: normal; the shift moves the mean
            reference[name] = rng.normal(0.0, 1.0, rows)
            current[name] = rng.normal(strength, 1.0, rows)
        elif kind == 1:  # money: log-normal; the shift scales it
            reference[name] = rng.lognormal(6.0, 1.0, rows)
            current[name] = rng.lognormal(6.0 + strength, 1.0, rows)
        elif kind == 2:  # counts of actions: Poisson; the shift raises the rate
            reference[name] = rng.poisson(20.0, rows).astype("float64")
            current[name] = rng.poisson(20.0 * (1.0 + strength), rows).astype("float64")
        elif kind == 3:  # a utilization ratio in [0, 1]
            reference[name] = rng.beta(2.0, 3.0, rows)
            current[name] = rng.beta(2.0 + 2 * strength, 3.0, rows)
        else:  # a small integer (open tickets): Evidently compares it as categories
            reference[name] = rng.binomial(4, 0.2, rows).astype("float64")
            current[name] = rng.binomial(4, 0.2 + strength / 2, rows).astype("float64")
    return pd.DataFrame(reference), pd.DataFrame(current), categorical


def evidently_scores(
    reference: pd.DataFrame, current: pd.DataFrame, categorical: list[str]
) -> dict[str, float]:
    """Evidently's per-column drift value with the preset's defaults."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecations inside Evidently's own dependencies
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset

    definition = DataDefinition(
        numerical_columns=[c for c in reference.columns if c not in categorical],
        categorical_columns=categorical,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snapshot = Report([DataDriftPreset()]).run(
            Dataset.from_pandas(current, data_definition=definition),
            Dataset.from_pandas(reference, data_definition=definition),
        )
    scores = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config.get("type", "").endswith("ValueDrift"):
            scores[config["column"]] = float(metric["value"])
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows per side")
    parser.add_argument("--columns", type=int, default=50)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    policy = DriftPolicy()

    print(f"== drift: {args.rows:,} rows x {args.columns} columns per side")
    reference, current, categorical = make_tables(args.rows, args.columns, args.seed)
    columns = list(reference.columns)

    started = time.perf_counter()
    ours = feature_drift(
        reference,
        current,
        columns,
        categorical,
        THRESHOLD,
        THRESHOLD,
        max_rows=policy.max_rows,
    )
    ours_seconds = time.perf_counter() - started

    started = time.perf_counter()
    theirs = evidently_scores(reference, current, categorical)
    theirs_seconds = time.perf_counter() - started

    verdicts = {d.feature: d for d in ours}
    disagreements = []
    for name in columns:
        evidently_drifted = theirs[name] >= THRESHOLD
        if verdicts[name].drifted != evidently_drifted:
            disagreements.append(
                {"column": name, "ours": round(verdicts[name].score, 4), "evidently": theirs[name]}
            )
    agreement = 1 - len(disagreements) / len(columns)
    max_gap = max(abs(verdicts[c].score - theirs[c]) for c in columns)
    speedup = theirs_seconds / ours_seconds
    print(
        f"  verdicts agree on {agreement:.0%} of {len(columns)} columns "
        f"(goal {GOAL_AGREEMENT:.0%}); largest score gap {max_gap:.4f}; "
        f"{sum(d.drifted for d in ours)} drifted by ours, "
        f"{sum(v >= THRESHOLD for v in theirs.values())} by Evidently"
    )
    for item in disagreements:
        print(f"  differs: {item}")
    report(
        "drift",
        {"seconds": round(ours_seconds, 2), "rows_read_per_side": min(args.rows, policy.max_rows)},
        {"seconds": round(theirs_seconds, 2), "rows_read_per_side": args.rows},
        speedup,
        f"DataDriftPreset time / ours; goal >= {GOAL_SPEEDUP:g}",
        extra={
            "rows": args.rows,
            "columns": args.columns,
            "agreement": round(agreement, 4),
            "agreement_goal": GOAL_AGREEMENT,
            "largest_score_gap": round(max_gap, 6),
            "disagreements": disagreements,
            "peak_rss_mb": round(peak_rss_mb()),
        },
    )


if __name__ == "__main__":
    main()
