"""The drift policy on simulated companies: quiet on ``baseline``, alert on ``new-segment``.

Both run the real policy code (``judge_window`` and ``decide``) on real simulated companies,
read through the feature store's point-in-time join. The champion is stood in for by a small
real XGBoost model fitted on each company's training window (``tiny_reference``), since a full
tuned training per seed would cost minutes and the model only sets the features' weights and
the predictions whose drift is judged.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from csa.monitoring import DriftPolicy, WindowVerdict, decide, judge_window, load_policy
from csa.monitoring.judgement import RETRAIN_DUE, attach_history
from csa.monitoring.reference import PREDICTION, Reference
from csa.monitoring.windows import cut_windows
from tests.monitoring.scenario import all_snapshots, day, predict, scenario_company, tiny_reference

pytestmark = pytest.mark.slow

SEEDS = range(1, 21)
# The reference: days 90-120, the first whose 90-day usage windows are complete.
REFERENCE_DAY = 90


def replay(
    reference: Reference, rows: pd.DataFrame, policy: DriftPolicy, first: int, last: int
) -> list[tuple[int, str, WindowVerdict]]:
    """A pass every ``window_days`` from day ``first`` to ``last``, retraining when due.

    A retraining here is only counted: the reference stays, so a persistent false alarm would
    be counted again once the cooldown is over.
    """
    horizon = 30
    step = policy.window_days
    attach_history(reference, rows, policy)
    verdicts: dict[int, WindowVerdict] = {}

    def verdict(end: int) -> WindowVerdict:
        if end not in verdicts:
            window = cut_windows(rows, day(end), step, 1)[0]
            labelled = cut_windows(rows, day(end - horizon), step, 1)[0]
            verdicts[end] = judge_window(reference, window, policy, labelled=labelled)
        return verdicts[end]

    passes, last_retraining = [], None
    for end in range(first, last + 1, step):
        newest = [verdict(end - k * step) for k in range(policy.consecutive_windows)]
        decision = decide(newest, policy, last_retraining, retrain=True)
        if decision.decision == RETRAIN_DUE:
            last_retraining = newest[0].end
        passes.append((end, decision.decision, newest[0]))
    return passes


def test_baseline_companies_rarely_retrain_on_noise(tmp_path: Path) -> None:
    policy = load_policy()
    retrainings = {}
    for seed in SEEDS:
        # Small companies (40 accounts) are the hard case: each account moves the distributions.
        settings = scenario_company(tmp_path / f"seed{seed}", 40, 240, seed)
        rows = all_snapshots(settings, "churn")
        reference, booster, space = tiny_reference(settings, "churn", rows, REFERENCE_DAY)
        rows[PREDICTION] = predict(booster, space, rows)
        # Training ends 90 days after the reference starts (30-day tuning and 60-day test windows).
        passes = replay(reference, rows, policy, REFERENCE_DAY + 90, 240)
        retrainings[seed] = [end for end, decision, _ in passes if decision == RETRAIN_DUE]
    false_alarms = sum(len(ends) for ends in retrainings.values())
    assert false_alarms <= 1, retrainings


def test_new_segment_is_detected_after_it_arrives(tmp_path: Path) -> None:
    policy = load_policy()
    change = 240
    settings = scenario_company(
        tmp_path / "company", 200, 420, seed=4, scenario="new-segment", change_day=change
    )
    rows = all_snapshots(settings, "churn")
    reference, booster, space = tiny_reference(settings, "churn", rows, change - 90)
    rows[PREDICTION] = predict(booster, space, rows)

    passes = replay(reference, rows, policy, change - 28, 420)
    before = [(end, decision) for end, decision, _ in passes if end < change]
    after = [(end, decision, verdict) for end, decision, verdict in passes if end >= change]
    assert all(decision == "no_drift" for _, decision in before), before
    alarms = [(end, verdict) for end, decision, verdict in after if decision == RETRAIN_DUE]
    assert alarms, [(end, decision) for end, decision, _ in after]
    _, first = alarms[0]
    segment_features = {"billing_period", "seats", "mrr"} | {
        f"events_{event}_{days}d" for event in ("api_call", "login") for days in (7, 30, 90)
    }
    assert segment_features & set(first.drifted_features), first.drifted_features
