"""Batch scoring rate: ``score_accounts`` (online store reads + drivers) against in-memory scoring.

A small simulated company (the demo's size by default) goes through ingest and the feature store
in a scratch ``CSA_HOME`` and a churn model is trained and registered on it. Simulating 100,000
accounts would take far longer than scoring them, so the scored accounts are synthetic: each
is a snapshot (account, day) drawn at random from every snapshot of the real feature tables,
the same draw for every feature view, given a new account id and the tables' newest snapshot
time. Those tables replace the real ones and are materialized into the online store with
``materialize_latest``, so every synthetic account is an active account of the store.

- ours: ``csa.training.scoring.score_accounts`` as ``csa score`` runs it: the model loaded from
  the registry, the active accounts listed, each batch's features read from the online store
  through ``OnlineFeatureReader``, scored with calibrated probability, band and drivers (JSON),
  the playbook's actions evaluated per account (``_plays``), sorted and written to Parquet. The
  seconds inside each of those steps are reported too (``score_frame`` holds the model call).
- baseline: the same model's ``ScoringModel.score(frame, top=<top_drivers>)`` on the same
  features already in one in-memory DataFrame (read once through the online path beforehand,
  untimed): no store reads, no playbook, no JSON, no file.

Afterwards every account's probability from both sides must agree.
Run: ``python bench/bench_scoring.py [--scored-accounts 100000] [--trials 10]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xgboost as xgb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import peak_rss_mb, report
from simulated_company import DEFAULT_ACCOUNTS, DEFAULT_DAYS, DEFAULT_SEED, build_company

from csa.features import OnlineFeatureReader, materialize_latest
from csa.features.build import feature_table_path
from csa.features.definitions import BATCH_GROUPS, JOIN_KEY, SNAPSHOT_TIME
from csa.settings import Settings
from csa.training import load_model, train_model
from csa.training import scoring as scoring_module

GOAL_PER_MINUTE = 100_000
MODEL = "churn"


def write_synthetic_accounts(settings: Settings, count: int, seed: int) -> list[str]:
    """Replace the feature tables with ``count`` synthetic accounts at the newest snapshot.

    Returns the synthetic account ids.
    """
    tables = {
        group.name: pq.read_table(feature_table_path(settings.features_dir, group.name))
        for group in BATCH_GROUPS
    }
    # The build writes every group in the snapshot grid's order: row i is one (account, day).
    first = tables[BATCH_GROUPS[0].name]
    for name, table in tables.items():
        same = table.column(JOIN_KEY).equals(first.column(JOIN_KEY)) and table.column(
            SNAPSHOT_TIME
        ).equals(first.column(SNAPSHOT_TIME))
        assert same, f"feature table {name} is not in the grid's row order"

    rows = np.random.default_rng(seed).integers(0, first.num_rows, count)
    ids = [f"SYN-{n:07d}" for n in range(count)]
    newest = pc.max(first.column(SNAPSHOT_TIME))
    for name, table in tables.items():
        drawn = table.take(pa.array(rows))
        drawn = drawn.set_column(
            drawn.schema.get_field_index(JOIN_KEY), JOIN_KEY, pa.array(ids, pa.string())
        )
        drawn = drawn.set_column(
            drawn.schema.get_field_index(SNAPSHOT_TIME),
            drawn.schema.field(SNAPSHOT_TIME),
            pa.array(np.full(count, newest.value), drawn.schema.field(SNAPSHOT_TIME).type),
        )
        pq.write_table(drawn, feature_table_path(settings.features_dir, name))
    return ids


STEPS = ("load_model", "active_accounts", "online_frame", "score_frame", "_plays")
CONTRIBUTIONS = "tree_contributions"  # XGBoost's per-row SHAP values, inside score_frame


@contextmanager
def step_timer() -> Iterator[dict[str, float]]:
    """Seconds ``score_accounts`` spends in each of its steps (wrapped, otherwise unchanged).

    The seconds of XGBoost's contribution calls, part of ``score_frame``, are counted apart.
    """
    seconds: dict[str, float] = {}
    originals = {name: getattr(scoring_module, name) for name in STEPS}
    predict = xgb.Booster.predict

    def timed_predict(booster: xgb.Booster, *args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("pred_contribs"):
            return predict(booster, *args, **kwargs)
        started = time.perf_counter()
        try:
            return predict(booster, *args, **kwargs)
        finally:
            seconds[CONTRIBUTIONS] = seconds.get(CONTRIBUTIONS, 0.0) + (
                time.perf_counter() - started
            )

    def timed(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - started

        return call

    for name, original in originals.items():
        setattr(scoring_module, name, timed(name, original))
    xgb.Booster.predict = timed_predict  # type: ignore[method-assign]
    try:
        yield seconds
    finally:
        xgb.Booster.predict = predict  # type: ignore[method-assign]
        for name, original in originals.items():
            setattr(scoring_module, name, original)


def in_memory_frame(settings: Settings, ids: list[str]) -> pd.DataFrame:
    """The accounts' features as the online path serves them, in one frame."""
    reader = OnlineFeatureReader(settings)
    parts = [
        scoring_module.online_frame(reader, MODEL, ids[start : start + 5_000])
        for start in range(0, len(ids), 5_000)
    ]
    return pd.concat(parts, ignore_index=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=DEFAULT_ACCOUNTS, help="simulated")
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--trials", type=int, default=10, help="Optuna trials of the model")
    parser.add_argument("--scored-accounts", type=int, default=100_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        print(f"simulating {args.accounts:,} accounts over {args.days} days ...")
        settings, _ = build_company(Path(folder), args.accounts, args.days, args.seed)
        print(f"training {MODEL} ({args.trials} trials) ...")
        version = train_model(settings, MODEL, trials=args.trials).version
        assert version is not None
        model = load_model(settings, MODEL, version)

        print(f"writing and materializing {args.scored_accounts:,} synthetic accounts ...")
        started = time.perf_counter()
        ids = write_synthetic_accounts(settings, args.scored_accounts, args.seed)
        written = materialize_latest(settings)
        print(f"  {written.total_rows:,} rows online in {time.perf_counter() - started:.1f} s")

        print("scoring with score_accounts (online store) ...")
        out = Path(folder) / "scores.parquet"
        with step_timer() as steps:
            started = time.perf_counter()
            result = scoring_module.score_accounts(settings, MODEL, out, ref=version)
            ours = time.perf_counter() - started
        assert result.accounts == len(ids), f"scored {result.accounts}, expected {len(ids)}"
        ours_rss = peak_rss_mb()

        print("scoring the same features in memory with ScoringModel.score ...")
        frame = in_memory_frame(settings, ids)
        top = settings.training.top_drivers
        started = time.perf_counter()
        scores = model.score(frame, top=top)
        baseline = time.perf_counter() - started
        assert scores.drivers is not None and len(scores.drivers) == len(ids)

        # Both sides scored the same accounts alike
        written_scores = pd.read_parquet(out, columns=[JOIN_KEY, "probability"])
        expected = pd.Series(scores.probability, index=frame[JOIN_KEY])
        difference = np.abs(
            written_scores["probability"].to_numpy()
            - expected.loc[written_scores[JOIN_KEY]].to_numpy()
        ).max()
        assert difference < 1e-6, f"probabilities differ by up to {difference}"

    ours_rate = len(ids) / ours * 60
    baseline_rate = len(ids) / baseline * 60
    other = ours - sum(steps.get(name, 0.0) for name in STEPS)
    report(
        "scoring",
        {
            "name": "csa.training.scoring.score_accounts (online store, drivers, Parquet)",
            "seconds": round(ours, 2),
            "accounts_per_minute": round(ours_rate),
            "seconds_by_step": {
                **{name: round(steps.get(name, 0.0), 2) for name in STEPS},
                "other: reader, playbook file, concat, sort, write": round(other, 2),
            },
            "seconds_in_tree_contributions_of_score_frame": round(steps.get(CONTRIBUTIONS, 0.0), 2),
            "peak_rss_mb": round(ours_rss),
        },
        {
            "name": "ScoringModel.score(frame, top=drivers) on one in-memory DataFrame",
            "seconds": round(baseline, 2),
            "accounts_per_minute": round(baseline_rate),
        },
        ours_rate / baseline_rate,
        f"ours / baseline accounts per minute; goal for ours at least {GOAL_PER_MINUTE:,}/min",
        {
            "accounts": len(ids),
            "simulated_accounts": args.accounts,
            "model_trees": model.booster.num_boosted_rounds(),
            "features": len(model.space.columns),
            "top_drivers": top,
            "goal_accounts_per_minute": GOAL_PER_MINUTE,
            "goal_met": ours_rate >= GOAL_PER_MINUTE,
        },
    )
    print(
        "  steps:    "
        + ", ".join(f"{name} {steps.get(name, 0.0):.1f} s" for name in STEPS)
        + f", other (reader, concat, sort, write) {other:.1f} s; of score_frame, "
        f"{steps.get(CONTRIBUTIONS, 0.0):.1f} s in XGBoost's per-row contributions (TreeSHAP)"
    )
    print(
        f"  goal:     at least {GOAL_PER_MINUTE:,} accounts a minute: "
        f"{'met' if ours_rate >= GOAL_PER_MINUTE else 'MISSED'} ({ours_rate:,.0f})"
    )


if __name__ == "__main__":
    main()
